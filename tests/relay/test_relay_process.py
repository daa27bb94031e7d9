"""`covey relay serve` as a real process on loopback: a device's items survive a restart.

The relay runs as `python -m covey relay serve`; devices talk to it over
real TCP with the pure client (`covey.relay.client`), as a device's node
will. What the owner fetches after the relay was stopped and started again
is what was put before.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from covey.core import relayitems
from covey.core.relaylink import RelayLink, parse_link
from covey.net.relay import RelayConnection
from covey.relay import client, session
from covey.relay.limits import ITEM_SIZES
from tests.conftest import SeededRng

pytestmark = pytest.mark.anyio

ITEM = b"\x05" * ITEM_SIZES[0]
TOKEN = b"t" * 32


@contextmanager
def relay_process(data: Path, db: str | None = None) -> Iterator[RelayLink]:
    extra = [] if db is None else ["--db", db]
    process = subprocess.Popen(
        [sys.executable, "-m", "covey", "relay", "serve", "--listen", "127.0.0.1:0",
         "--data", str(data), "--json", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, process.stderr.read() if process.stderr else ""
        yield parse_link(json.loads(line)["link"])
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)  # (waits, and closes its pipes)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise


async def test_items_put_before_a_restart_are_fetched_after_it(tmp_path: Path) -> None:
    inbox_seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, b"r" * 32)
    with relay_process(tmp_path / "relay") as link:
        owner = await RelayConnection.open(link, SeededRng("owner"))
        auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
        assert await owner.call("inbox-auth", **auth) is True
        box = auth["box"]
        assert await owner.call("inbox-writers", box=box, hashes=[session.writer_hash(TOKEN)]) == 1
        sender = await RelayConnection.open(link, SeededRng("sender"))
        assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
        await owner.aclose()
        await sender.aclose()
    with relay_process(tmp_path / "relay") as again:
        assert again.key == link.key  # the same relay: its key was kept
        owner = await RelayConnection.open(again, SeededRng("owner-again"))
        auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
        assert await owner.call("inbox-auth", **auth) is True
        got = await owner.call("inbox-fetch", box=box, after=0)
        assert [(n, data) for n, data, _ in got["items"]] == [(1, ITEM)]
        await owner.aclose()


def test_a_wildcard_listen_without_a_host_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "covey", "relay", "serve", "--listen", "0.0.0.0:0",
         "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "--host NAME" in done.stderr


async def test_two_relay_processes_on_one_postgres_serve_one_population(
    tmp_path: Path, postgres_dsn: str
) -> None:
    inbox_seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, b"r" * 32)
    data = tmp_path / "relay"  # (one key, so both answer for one link)
    with relay_process(data, postgres_dsn) as first, relay_process(data, postgres_dsn) as second:
        assert first.key == second.key
        assert first.port != second.port
        owner = await RelayConnection.open(first, SeededRng("owner"))
        auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
        assert await owner.call("inbox-auth", **auth) is True
        box = auth["box"]
        assert await owner.call("inbox-writers", box=box, hashes=[session.writer_hash(TOKEN)]) == 1
        sender = await RelayConnection.open(second, SeededRng("sender"))
        assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
        got = await owner.call("inbox-fetch", box=box, after=0)
        assert [(n, item) for n, item, _ in got["items"]] == [(1, ITEM)]
        await owner.aclose()
        await sender.aclose()


def test_an_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "covey", "relay", "serve", "--listen", "127.0.0.1:0",
         "--data", str(tmp_path), "--db", f"postgresql://covey:s3cret@/x?host={tmp_path}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "cannot reach the PostgreSQL database" in done.stderr
    assert "s3cret" not in done.stderr


async def test_a_wait_on_one_relay_process_is_woken_by_a_put_through_another(
    tmp_path: Path, postgres_dsn: str
) -> None:
    """Two `covey relay serve` processes on one PostgreSQL: the owner waits at the
    first, a sender puts through the second; the first hears it (LISTEN/NOTIFY)
    and answers the wait with the item (unheard, the wait would end with an
    empty page after its 100 seconds)."""
    inbox_seed, _ = relayitems.inbox_key(b"w" * 32, b"g" * 32, b"r" * 32)
    data = tmp_path / "relay"
    with relay_process(data, postgres_dsn) as first, relay_process(data, postgres_dsn) as second:
        with anyio.fail_after(120):  # (a guard against a hang, not a measure)
            owner = await RelayConnection.open(first, SeededRng("owner"))
            auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
            assert await owner.call("inbox-auth", **auth) is True
            box = auth["box"]
            assert await owner.call("inbox-writers", box=box, hashes=[session.writer_hash(TOKEN)])
            wait = await owner.send("inbox-wait", box=box, after=0, seconds=100)
            # (answered before the wait only if the wait's fetch found nothing: it is held)
            probe = await owner.send("inbox-ack", box=box, numbers=[])
            [event] = await next_events(owner)
            assert isinstance(event, client.Answer)
            assert event.number == probe
            sender = await RelayConnection.open(second, SeededRng("sender"))
            assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
            [event] = await next_events(owner)
            assert isinstance(event, client.Answer)
            assert event.number == wait
            items, more = client.read_items(event.value)
            assert (items, more) == ([(1, ITEM)], False)  # (the empty page would say [])
            await owner.aclose()
            await sender.aclose()


async def next_events(conn: RelayConnection) -> list[client.Event]:
    """What the next whole messages from the relay carry (a read may hold a part)."""
    while True:
        events = await conn.receive()
        if events:
            return events
