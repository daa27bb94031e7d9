"""A store that fails (not a refusal: its database gone, a disk full) ends the
one connection whose request it was serving, never the relay process.

Found by the review of waits (2026-12-03): any store error, in a request,
in a woken wait or in the sweep, ended the whole relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import pytest

from covey.core.relaylink import RelayLink
from covey.net.relay import RelayConnection
from covey.relay import server, session, store
from covey.relay.limits import ITEM_SIZES
from tests.conftest import SeededRng
from tests.relay.test_server_silence import IDENTITY, AsyncMemory, served

pytestmark = pytest.mark.anyio

ITEM = b"\x03" * ITEM_SIZES[0]
TOKEN = b"t" * 32
GUARD = 30  # (a guard against a hang, never an assertion about time)


class Failing(AsyncMemory):
    """The reference store, failing every action of the kinds in `broken`."""

    def __init__(self) -> None:
        super().__init__()
        self.broken: set[type] = set()

    async def execute(self, action: store.Action | store.Expire, now: int) -> store.Result:
        if type(action) in self.broken:
            raise RuntimeError("the database went away")
        return await super().execute(action, now)


@asynccontextmanager
async def serving(backend: Failing) -> AsyncIterator[tuple[RelayLink, list[tuple[str, dict]]]]:
    """The relay serving `backend`, and what it reported."""
    reports: list[tuple[str, dict[str, Any]]] = []
    report = lambda event, data: reports.append((event, data))  # noqa: E731
    async with served(backend, report=report) as (_, link):
        yield link, reports


async def test_a_failing_store_ends_that_connection_and_the_relay_serves_on() -> None:
    backend = Failing()
    backend.broken = {store.MirrorPut}
    async with serving(backend) as (link, reports):
        with anyio.fail_after(GUARD):
            hit = await RelayConnection.open(link, SeededRng("hit"))
            bystander = await RelayConnection.open(link, SeededRng("bystander"))
            with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                await hit.call("mirror-put", token=TOKEN, item=ITEM, ttl=0)
            # The other connection, and new ones, are served as before.
            assert len(await bystander.call("blob-put", token=TOKEN, blob=ITEM, ttl=0)) == 32
            backend.broken.clear()
            again = await RelayConnection.open(link, SeededRng("again"))
            assert await again.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 1
            for conn in (hit, bystander, again):
                await conn.aclose()
    assert reports == [("store_failed", {"action": "MirrorPut", "error": "RuntimeError"})]


async def test_a_woken_wait_whose_fetch_fails_ends_only_its_connection() -> None:
    from covey.core import relayitems
    from covey.relay import client

    backend = Failing()
    async with serving(backend) as (link, reports):
        with anyio.fail_after(GUARD):
            owner = await RelayConnection.open(link, SeededRng("owner"))
            seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, IDENTITY.public)
            auth = client.inbox_auth(seed, owner.ready.challenge)
            await owner.call("inbox-auth", **auth)
            box = auth["box"]
            await owner.call("inbox-writers", box=box, hashes=[session.writer_hash(TOKEN)])
            async with anyio.create_task_group() as tasks:
                failed = anyio.Event()

                async def wait() -> None:
                    with pytest.raises((anyio.EndOfStream, anyio.BrokenResourceError)):
                        await owner.call("inbox-wait", box=box, after=0, seconds=60)
                    failed.set()

                tasks.start_soon(wait)
                await anyio.sleep(0.2)  # (the wait is held: the put wakes it)
                backend.broken = {store.InboxFetch}
                sender = await RelayConnection.open(link, SeededRng("sender"))
                await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
                await failed.wait()
            assert await sender.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 1
            await sender.aclose()
            await owner.aclose()
    assert ("store_failed", {"action": "InboxFetch", "error": "RuntimeError"}) in reports


async def test_a_failing_sweep_is_reported_and_the_next_one_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "EXPIRE_EVERY", 0.05)
    backend = Failing()
    backend.broken = {store.Expire}
    async with serving(backend) as (link, reports):
        with anyio.fail_after(GUARD):
            while len(reports) < 2:
                await anyio.sleep(0.05)
            conn = await RelayConnection.open(link, SeededRng("after"))
            assert await conn.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 1
            await conn.aclose()
    assert reports[:2] == [("sweep_failed", {"error": "RuntimeError"})] * 2
