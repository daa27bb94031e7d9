"""The review of waits (2026-12-03), each finding a test that failed before its fix.

1. A held wait's task and the connection's reader sealed their answers
   outside the link's lock: Noise nonces went out of order, and the device
   could read nothing more on that connection.
2. A stranger ended the relay process by opening more connections than it
   had file descriptors (an accept error ended the serving task group).
3. Waits on one inbox from many connections made each put into it cost a
   store fetch per wait: now at most `wake.MAX_PER_INBOX` per inbox.
4. A PostgreSQL relay process whose clock ran a day ahead dropped items
   still live for the others: sweeps go by the database's clock.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest

from covey.core import relayitems
from covey.core.relaylink import RelayLink
from covey.errors import RelaySlowDown
from covey.net.relay import RelayConnection
from covey.relay import client, session, store, wake
from covey.relay.limits import DAY, ITEM_SIZES
from covey.relay.postgres import PostgresRelayStore
from covey.relay.requests import MAX_NUMBER
from tests.conftest import SeededRng
from tests.relay.test_server_silence import ACCESS, IDENTITY, AsyncMemory, served

pytestmark = pytest.mark.anyio
ITEM = b"\x03" * ITEM_SIZES[0]
TOKEN = b"t" * 32
GUARD = 30  # (a guard against a hang, never an assertion about time)
ROOT = Path(__file__).parent.parent.parent


class Gated(AsyncMemory):
    """The reference store; actions of the kinds in `gated` wait for `gate`."""

    def __init__(self) -> None:
        super().__init__()
        self.gated: set[type] = set()
        self.gate = anyio.Event()
        self.entered = anyio.Event()

    async def execute(self, action: store.Action | store.Expire, now: int) -> store.Result:
        if type(action) in self.gated:
            self.entered.set()
            await self.gate.wait()
        return await super().execute(action, now)


async def owner(link: RelayLink) -> tuple[RelayConnection, bytes]:
    conn = await RelayConnection.open(link, SeededRng("owner"))
    seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, IDENTITY.public)
    auth = client.inbox_auth(seed, conn.ready.challenge)
    assert await conn.call("inbox-auth", **auth) is True
    await conn.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(TOKEN)])
    return conn, auth["box"]


async def read_all(conn: RelayConnection, numbers: list[int]) -> dict[int, Any]:
    """Read answers until all `numbers` were answered; raises if a message
    cannot be decrypted."""
    got: dict[int, Any] = {}
    while not set(numbers) <= set(got):
        for event in await conn.receive():
            got[event.number] = event
    return got


async def test_a_wait_that_times_out_during_a_slow_request_keeps_the_nonce_order() -> None:
    backend = Gated()
    async with served(backend) as (_, link):
        with anyio.fail_after(GUARD):
            conn, box = await owner(link)
            wait = await conn.send("inbox-wait", box=box, after=0, seconds=1)
            probe = await conn.send("inbox-ack", box=box, numbers=[])
            await read_all(conn, [probe])  # (the wait is held)
            # A request whose store action is slow, sent while the wait is held.
            backend.gated = {store.MirrorGet}
            slow = await conn.send("mirror-get", read=b"r" * 32, after=0)
            await backend.entered.wait()
            await anyio.sleep(1.5)  # (the wait's time is up: its empty page is encrypted now)
            backend.gate.set()
            # Both answered, and readable (a nonce out of order cannot be decrypted).
            got = await read_all(conn, [wait, slow])
            assert got[wait].value == {"items": [], "more": False}
            await conn.aclose()


async def test_an_answer_during_a_woken_waits_fetch_keeps_the_nonce_order() -> None:
    backend = Gated()
    async with served(backend) as (_, link):
        with anyio.fail_after(GUARD):
            conn, box = await owner(link)
            wait = await conn.send("inbox-wait", box=box, after=0, seconds=60)
            probe = await conn.send("inbox-ack", box=box, numbers=[])
            await read_all(conn, [probe])  # (the wait is held)
            backend.gated = {store.InboxFetch}
            sender = await RelayConnection.open(link, SeededRng("sender"))
            assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
            await backend.entered.wait()  # (the woken wait's fetch holds the link's lock)
            # A request the session answers itself (it used to be sealed outside the lock).
            quick = await conn.send("access", secret=ACCESS)
            await anyio.sleep(0.3)
            backend.gate.set()
            got = await read_all(conn, [wait, quick])
            assert got[quick].value is True
            await sender.aclose()
            await conn.aclose()


def test_more_connections_than_file_descriptors_do_not_end_the_relay() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.relay.fd_limited_relay", "64"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    sockets = []
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline())
        for i in range(100):  # (four source addresses, 25 each: under 32 per address)
            s = socket.socket()
            s.bind((f"127.0.0.{2 + i // 25}", 0))
            s.connect(("127.0.0.1", port))
            s.send(b"cv1r")
            sockets.append(s)
        time.sleep(1.0)  # (held while the relay accepts what it can: not a measurement)
        for s in sockets:
            s.close()
        sockets.clear()

        async def still_serves() -> None:
            with anyio.fail_after(GUARD):
                while True:  # (connections closed a moment ago may still count)
                    try:
                        conn = await RelayConnection.open(
                            RelayLink("127.0.0.1", port, IDENTITY.public, ACCESS),
                            SeededRng("after"),
                        )
                        break
                    except (OSError, anyio.EndOfStream, anyio.BrokenResourceError):
                        await anyio.sleep(0.1)
                assert await conn.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 1
                await conn.aclose()

        anyio.run(still_serves)
        assert process.poll() is None  # (the process lives on)
    finally:
        for s in sockets:
            s.close()
        process.kill()
        process.communicate()


async def test_waits_on_one_inbox_are_bounded() -> None:
    backend = AsyncMemory()
    async with served(backend) as (relay, link):
        with anyio.fail_after(GUARD):
            seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, IDENTITY.public)
            held = []
            for i in range(wake.MAX_PER_INBOX + 1):
                conn = await RelayConnection.open(link, SeededRng(f"w{i}"))
                auth = client.inbox_auth(seed, conn.ready.challenge)
                assert await conn.call("inbox-auth", **auth) is True
                if i == 0:
                    hashes = [session.writer_hash(TOKEN)]
                    await conn.call("inbox-writers", box=auth["box"], hashes=hashes)
                wait = await conn.send("inbox-wait", box=auth["box"], after=MAX_NUMBER, seconds=300)
                probe = await conn.send("inbox-ack", box=auth["box"], numbers=[])
                got = await read_all(conn, [probe] if i < wake.MAX_PER_INBOX else [wait])
                held.append(conn)
            assert isinstance(got[wait], client.Refused)
            assert isinstance(got[wait].refusal, RelaySlowDown)
            assert relay.waiters.count == wake.MAX_PER_INBOX
            for conn in held:
                await conn.aclose()


def test_a_relay_process_ahead_of_the_database_drops_nothing_live(fresh_postgres: str) -> None:
    box, writer = b"b" * 32, b"w" * 32
    start = 20_790 * DAY + DAY // 2  # (noon UTC, by the database's clock below)

    async def database_clock() -> int:
        return start

    async def run() -> None:
        async with (
            PostgresRelayStore.open(fresh_postgres, database_clock=database_clock) as right,
            PostgresRelayStore.open(fresh_postgres, database_clock=database_clock) as ahead,
        ):
            await right.execute(store.InboxWriters(box, (writer,), True), start)
            await right.execute(store.InboxPut(box, writer, ITEM, start + 6 * 3600), start)
            await ahead.execute(store.Expire(), start + 100 * DAY)  # (its clock: far ahead)
            page = await right.execute(store.InboxFetch(box, 0), start + 60)
            assert isinstance(page, store.Items)
            assert [n for n, _, _ in page.items] == [1]  # (live: neither dropped nor idle)

    anyio.run(run)
