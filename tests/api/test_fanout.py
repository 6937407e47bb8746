"""The live-sync fan-out over a real app and store: ordering, folding of a slow subscriber."""

from __future__ import annotations

import asyncio
import json

from stageless.api.fanout import Fanout, Frame, Subscriber
from stageless.errors import NotFoundError
from stageless.service import Closed
from tests.api.conftest import Api


def doc(value: str) -> str:
    variants = {"v": value}
    return json.dumps(
        {"flags": {"f": {"state": "ENABLED", "variants": variants, "defaultVariant": "v"}}}
    )


async def write(api: Api, name: str, value: str) -> int:
    def put() -> int:
        try:
            return api.store.update_flag_set(name, doc(value), expected=None, actor="t").version
        except NotFoundError:  # absent: create it
            return api.store.create_flag_set(name, doc(value), actor="t").version

    return await asyncio.to_thread(put)


async def take(subscriber: Subscriber, until: int) -> list[Frame]:
    """Frames until one of version ``until`` arrives (5 s at most)."""
    frames: list[Frame] = []
    async with asyncio.timeout(5):
        while not frames or frames[-1].version < until:
            frame = await subscriber.get(timeout=1.0)
            if frame is not None:
                frames.append(frame)
    return frames


async def test_a_subscriber_gets_every_version_in_order_with_shared_bytes(api: Api) -> None:
    await write(api, "web", "a")
    fanout = Fanout()
    ctx = api.app.state.ctx
    first, second = fanout.subscribe(ctx, "web"), fanout.subscribe(ctx, "web")
    versions = []
    for value in "bcdef":
        versions.append(await write(api, "web", value))
        await asyncio.sleep(0.15)  # one change at a time, so none coalesce
    got_first, got_second = await take(first, versions[-1]), await take(second, versions[-1])
    assert [f.version for f in got_first] == versions
    assert all(a.data is b.data for a, b in zip(got_first, got_second, strict=True))
    assert b'"v":"f"' in got_first[-1].data
    first.close()
    second.close()


async def test_a_subscriber_that_falls_behind_is_folded_to_the_newest(api: Api) -> None:
    await write(api, "web", "start")
    fanout = Fanout(queue_limit=3)
    ctx = api.app.state.ctx
    slow, fast = fanout.subscribe(ctx, "web"), fanout.subscribe(ctx, "web")
    versions = []
    fast_frames: list[Frame] = []
    for number in range(10):
        versions.append(await write(api, "web", f"v{number}"))
        fast_frames += await take(fast, versions[-1])  # the fast one keeps up meanwhile
    assert [f.version for f in fast_frames] == versions
    backlog = await take(slow, versions[-1])
    assert slow.folded >= 1
    assert len(backlog) <= 3
    assert backlog[-1].version == versions[-1]
    assert [f.version for f in backlog] == sorted(f.version for f in backlog)
    slow.close()
    fast.close()


async def test_deletion_reaches_subscribers_and_hub_close_ends_them(api: Api) -> None:
    version = await write(api, "web", "a")
    fanout = Fanout()
    subscriber = fanout.subscribe(api.app.state.ctx, "web")
    await asyncio.to_thread(api.store.delete_flag_set, "web", expected=None, actor="t")
    frames = await take(subscriber, version)
    assert frames[-1].deleted
    assert b"event: deleted" in frames[-1].data
    api.app.state.ctx.hub.close()
    async with asyncio.timeout(5):
        while True:
            try:
                await subscriber.get(timeout=1.0)
            except Closed:
                break
