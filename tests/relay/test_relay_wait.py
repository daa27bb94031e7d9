"""`inbox-wait` through the relay process's server, in this process, over loopback TCP.

A real `RelayServer` on 127.0.0.1 with a real store (SQLite, and
PostgreSQL where it is installed); devices are `RelayConnection`s. What
is checked is what the device is told, and the server's count of waits.
Whether a wait is held before a put is made is known without a clock: a
request sent after the wait on the same connection is answered first only
if the wait's fetch came back empty and the wait is held (a connection's
requests are taken in order).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from covey.core import relayitems
from covey.core.relaylink import RelayLink
from covey.errors import RelayNotAllowed, RelaySlowDown
from covey.net.relay import RelayConnection
from covey.relay import client, session, wake
from covey.relay.limits import DEFAULT_LIMITS, ITEM_SIZES, RelayLimits
from covey.relay.postgres import PostgresRelayStore
from covey.relay.server import RelayServer
from covey.relay.sqlite import SqliteRelayStore
from tests.conftest import SeededRng
from tests.relay.conftest import simulated_clock
from tests.relay.pipe import ACCESS, RELAY

pytestmark = pytest.mark.anyio

ITEM = b"\x09" * ITEM_SIZES[0]
TOKEN = b"t" * 32
EMPTY = {"items": [], "more": False}
#: A guard against a test that hangs, never an assertion about time.
GUARD = 60


@asynccontextmanager
async def serving(backend: Any, **options: Any) -> AsyncIterator[tuple[RelayServer, RelayLink]]:
    server = RelayServer(RELAY, ACCESS, backend, **options)
    async with anyio.create_task_group() as tasks:

        async def serve(*, task_status: anyio.abc.TaskStatus[int]) -> None:
            await server.serve("127.0.0.1", 0, started=task_status.started)

        port = await tasks.start(serve)
        yield server, RelayLink("127.0.0.1", port, RELAY.public, ACCESS)
        tasks.cancel_scope.cancel()


def opener(kind: str, where: Any, limits: RelayLimits = DEFAULT_LIMITS) -> Callable[[], Any]:
    if kind == "sqlite":
        return lambda: SqliteRelayStore.open(where / "relay.db", limits)
    return lambda: PostgresRelayStore.open(where, limits, database_clock=simulated_clock)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Any]:
    if request.param == "sqlite":
        return opener("sqlite", tmp_path)
    return opener("postgres", request.getfixturevalue("fresh_postgres"))


async def owner(link: RelayLink, seed: bytes = b"o" * 32) -> tuple[RelayConnection, bytes]:
    """A connection authorized for its inbox, which TOKEN may write to."""
    conn = await RelayConnection.open(link, SeededRng(f"owner-{seed.hex()}"))
    inbox_seed, _ = relayitems.inbox_key(seed, b"g" * 32, link.key)
    auth = client.inbox_auth(inbox_seed, conn.ready.challenge)
    assert await conn.call("inbox-auth", **auth) is True
    assert await conn.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(TOKEN)])
    return conn, auth["box"]


async def wait_held(conn: RelayConnection, box: bytes, seconds: int, after: int = 0) -> int:
    """Send a wait and make sure it is held (its number)."""
    number = await conn.send("inbox-wait", box=box, after=after, seconds=seconds)
    probe = await conn.send("inbox-ack", box=box, numbers=[])
    while True:
        for event in await conn.receive():
            assert isinstance(event, client.Answer), event
            assert event.number == probe, "the wait was answered at once: nothing was held"
            return number


async def answer_of(conn: RelayConnection, number: int) -> Any:
    while True:
        for event in await conn.receive():
            if event.number == number:
                if isinstance(event, client.Refused):
                    return event.refusal
                assert isinstance(event, client.Answer)
                return event.value


async def test_a_wait_is_woken_by_a_put_through_the_same_process(
    backend: Callable[[], Any],
) -> None:
    with anyio.fail_after(GUARD):
        async with backend() as store, serving(store) as (server, link):
            conn, box = await owner(link)
            number = await wait_held(conn, box, seconds=DEFAULT_LIMITS.wait_seconds)
            assert server.waiters.count == 1
            sender = await RelayConnection.open(link, SeededRng("sender"))
            assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
            got = await answer_of(conn, number)
            assert [(n, data) for n, data in client.read_items(got)[0]] == [(1, ITEM)]
            assert server.waiters.count == 0
            await sender.aclose()
            await conn.aclose()


async def test_a_put_into_another_inbox_does_not_answer_a_wait(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        async with opener("sqlite", tmp_path)() as store, serving(store) as (_, link):
            conn, box = await owner(link)
            other, other_box = await owner(link, b"p" * 32)
            number = await wait_held(conn, box, seconds=2)
            sender = await RelayConnection.open(link, SeededRng("sender"))
            await sender.call("inbox-put", box=other_box, token=TOKEN, item=ITEM, ttl=0)
            assert await answer_of(conn, number) == EMPTY  # (its time ran out)
            for c in (conn, other, sender):
                await c.aclose()


async def test_a_wait_nothing_comes_to_is_answered_empty_and_is_not_idle(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        # (a wait four times as long as the connection may stay silent)
        async with (
            opener("sqlite", tmp_path)() as store,
            serving(store, idle_timeout=0.5) as (server, link),
        ):
            conn, box = await owner(link)
            number = await wait_held(conn, box, seconds=2)
            assert await answer_of(conn, number) == EMPTY
            assert server.waiters.count == 0
            assert await conn.call("inbox-fetch", box=box, after=0) == EMPTY  # (still open)
            await conn.aclose()


async def test_waits_past_the_process_limit_are_told_to_slow_down(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        async with (
            opener("sqlite", tmp_path)() as store,
            serving(store, waiters=wake.Waiters(limit=1)) as (server, link),
        ):
            first, box = await owner(link)
            second, other_box = await owner(link, b"p" * 32)
            number = await wait_held(first, box, seconds=1)
            refused = second.call("inbox-wait", box=other_box, after=0, seconds=60)
            with pytest.raises(RelaySlowDown):
                await refused
            assert await answer_of(first, number) == EMPTY
            assert server.waiters.count == 0  # (released: the next wait is held)
            await wait_held(second, other_box, seconds=1)
            assert server.waiters.count == 1
            await first.aclose()
            await second.aclose()


async def test_a_second_wait_on_a_connection_is_told_to_slow_down(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        async with opener("sqlite", tmp_path)() as store, serving(store) as (server, link):
            conn, box = await owner(link)
            number = await wait_held(conn, box, seconds=1)
            with pytest.raises(RelaySlowDown):
                await conn.call("inbox-wait", box=box, after=0, seconds=1)
            assert server.waiters.count == 1
            assert await answer_of(conn, number) == EMPTY
            await conn.aclose()


async def test_a_connection_that_goes_away_while_waiting_frees_its_wait(tmp_path: Path) -> None:
    with anyio.fail_after(GUARD):
        async with opener("sqlite", tmp_path)() as store, serving(store) as (server, link):
            conn, box = await owner(link)
            await wait_held(conn, box, seconds=DEFAULT_LIMITS.wait_seconds)
            assert server.waiters.count == 1
            await conn.aclose()
            while server.waiters.count:  # (until the server has read the close)
                await anyio.sleep(0.01)
            assert server.per_address == {}


async def test_answers_to_pipelined_requests_arrive_in_the_order_they_were_sealed(
    tmp_path: Path,
) -> None:
    """A put (run on the store) and then a fetch refused at once, in one write: the
    refusal is sealed first, so it must go first (Noise nonces count up)."""
    with anyio.fail_after(GUARD):
        async with opener("sqlite", tmp_path)() as store, serving(store) as (_, link):
            conn, box = await owner(link)
            sender = await RelayConnection.open(link, SeededRng("sender"))
            put, put_data = sender.relay.request(
                "inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0
            )
            fetch, fetch_data = sender.relay.request("inbox-fetch", box=box, after=0)
            await sender.stream.send(put_data + fetch_data)
            seen: dict[int, Any] = {}
            while len(seen) < 2:
                for event in await sender.receive():  # (raises if out of order)
                    seen[event.number] = event
            assert isinstance(seen[put], client.Answer)
            assert seen[put].value == 1
            assert isinstance(seen[fetch], client.Refused)
            assert isinstance(seen[fetch].refusal, RelayNotAllowed)
            await sender.aclose()
            await conn.aclose()
