"""Revoked tokens stop working within about a second on every instance, open streams included.

Tokens are revoked in the database (``stageless tokens revoke`` writes it directly), which any
instance may share, and the store announces document changes but not token changes. So each
instance's ``Revocations`` reads the token table every ``TOKEN_CHECK_S`` seconds (one small
query, in a worker thread) and, for every token newly found revoked:

* authentication refuses it from then on, even where a result is still cached
  (``Auth.authenticate`` consults ``revoked``), and so do the signed stream tokens issued from
  it (``Auth.verify_stream_token``);
* every open event stream that token opened (directly, or through a stream token issued from
  it) is ended: the client sees the stream close, and its reconnection is refused with 401.

Streams register with ``track`` while they are open. Token names are unique and a revoked
token's row stays in the table, so a name, once revoked, is revoked for good.

If the database does not answer a check, the last known set stays in force and the next check
tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection

from starlette.concurrency import run_in_threadpool

from stageless.errors import StagelessError
from stageless.service import TokenService

log = logging.getLogger("stageless.api.revocation")

#: Seconds between two reads of the token table.
TOKEN_CHECK_S = 1.0

End = Callable[[], None]


class Revocations:
    """The revoked token names of one app, and the open streams to end when a token is."""

    def __init__(
        self,
        tokens: TokenService,
        forget: Callable[[Collection[str]], None],
        *,
        interval_s: float = TOKEN_CHECK_S,
    ) -> None:
        self._tokens = tokens
        self._forget = forget
        self._interval = interval_s
        self._streams: dict[str, dict[int, End]] = {}
        self._next_id = 0
        self._task: asyncio.Task[None] | None = None
        self.revoked: frozenset[str] = frozenset()

    async def start(self) -> None:
        """Read the revoked tokens once, then keep checking in a task on the running loop."""
        await self.check(announce=False)
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="stageless-token-revocations"
        )

    def close(self) -> None:
        """Stop checking (idempotent)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.check()

    async def check(self, *, announce: bool = True) -> frozenset[str]:
        """Read the token table now; end what newly revoked tokens had open. Returns them."""
        try:
            tokens = await run_in_threadpool(self._tokens.list_all)
        except StagelessError as exc:
            log.warning("cannot read the token table to find revoked tokens: %s", exc)
            return frozenset()
        revoked = frozenset(token.name for token in tokens if token.revoked)
        new = revoked - self.revoked
        self.revoked = revoked | self.revoked  # a revoked name never comes back
        if new:
            self._forget(new)
            ended = 0
            for name in new:
                for end in list(self._streams.get(name, {}).values()):
                    end()
                    ended += 1
            if announce:
                names = ", ".join(sorted(new))
                log.info("tokens revoked: %s; %d open streams ended", names, ended)
        return new

    def track(self, name: str, end: End) -> End:
        """Register an open stream of token ``name``; ``end()`` stops it if the token is revoked.

        Returns the function to call when the stream ends by itself. A token already revoked
        ends the stream at once.
        """
        if name in self.revoked:
            end()
            return _nothing
        ident = self._next_id = self._next_id + 1
        self._streams.setdefault(name, {})[ident] = end

        def untrack() -> None:
            streams = self._streams.get(name)
            if streams is not None:
                streams.pop(ident, None)
                if not streams:
                    del self._streams[name]

        return untrack

    @property
    def open_streams(self) -> int:
        """How many streams are tracked."""
        return sum(len(streams) for streams in self._streams.values())


def _nothing() -> None:
    """Untracking a stream that was never tracked."""
