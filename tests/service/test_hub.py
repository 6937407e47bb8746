"""ChangeHub: store change events (from store threads) delivered to asyncio subscribers."""

from __future__ import annotations

import asyncio

import pytest

from stageless.service import ChangeHub, Closed, Precondition, Service

DOC = '{"flags": {}}'


async def test_changes_reach_subscribers_of_that_flag_set_only(service: Service) -> None:
    hub = ChangeHub(service.store)
    await hub.start()
    web, api = hub.listen("web"), hub.listen("api")
    every = hub.listen()
    await asyncio.to_thread(
        service.flag_sets.put, "web", DOC, precondition=Precondition(), actor="t"
    )
    event = await web.get(timeout=2)
    assert event is not None
    assert (event.flag_set, event.version, event.deleted) == ("web", 1, False)
    assert await every.get(timeout=2) == event
    assert await api.get(timeout=0.2) is None  # timed out: nothing for api
    hub.close()


async def test_close_ends_every_subscription(service: Service) -> None:
    hub = ChangeHub(service.store)
    await hub.start()
    listener = hub.listen("web")
    received = []

    async def consume() -> None:
        received.extend([event async for event in hub.changes("web")])

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.05)
    assert hub.subscribers == 2
    hub.close_soon()
    await asyncio.wait_for(task, 2)
    with pytest.raises(Closed):
        await listener.get(timeout=1)
    with pytest.raises(Closed):
        await hub.listen("late").get(timeout=1)
    assert received == []
