"""ASGI middleware limiting request bodies to ``max_body_bytes`` (413 in the problem shape).

A declared ``Content-Length`` over the limit is refused before the body is read (one within it
is the body's length: the server frames the body by it); a chunked body is counted as it
arrives and refused once it passes the limit.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from stageless.api.problem import Problem, problem_response


class BodyLimit:
    """Refuse request bodies larger than ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    def _problem(self) -> Problem:
        return Problem(413, f"the request body is larger than {self.limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        framed = False  # a Content-Length within the limit and no Transfer-Encoding
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1  # not a length: the body is counted as it arrives
                if declared > self.limit:
                    await problem_response(self._problem())(scope, receive, send)
                    return
                framed = declared >= 0
            elif name == b"transfer-encoding":
                framed = False
                break
        if framed:
            # The server delivers exactly Content-Length bytes (the HTTP framing), so there
            # is nothing to count; the wrapper would cost every body read a coroutine call.
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise self._problem()  # answered by the problem handler
            return message

        await self.app(scope, counting_receive, send)
