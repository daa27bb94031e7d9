"""Idle device connections held by relay processes, the memory each costs, and wake latency.

Run by hand: `python benchmarks/relay_connections.py [--connections 10000] [--no-postgres]`.

A relay process (`covey relay serve`) on loopback; this script opens C
connections to it, each through the handshake (the relay's proof checked,
the access secret presented), and leaves them idle. The relay's resident
memory (VmRSS) before and after gives the memory per connection. Rows:
SQLite, PostgreSQL with one relay process, and PostgreSQL with two relay
processes sharing it (the connections split between them; the memory is
both processes' together). Beside them, in the same run: a bare anyio echo
server holding the same number of idle connections. The relay's
connections-per-address limit is for devices, so the connections come from
C/30 loopback addresses (127.0.0.2, ...).

With PostgreSQL (Debian's, started for the run, fsync on), also the wake
latency of an `inbox-wait` across the two processes: the owner's wait is
held at the first, a sender puts through the second, and the time from
sending the put to the wait's answer (the item) is measured (LISTEN/NOTIFY
between them), beside the put's own round trip and a bare loopback round
trip to the echo server.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from _common import SeededRng, machine, table
from covey.core import relayitems
from covey.core.relaylink import RelayLink
from covey.net.relay import RelayConnection
from covey.relay import client, session
from covey.relay.limits import ITEM_SIZES
from relay_throughput import ECHO, start_relay, stop

PER_ADDRESS = 30  # (under the relay's 32 per address)
#: Wake latency samples.
WAKES = 300
ITEM = b"\x03" * ITEM_SIZES[0]
TOKEN = b"t" * 32


def rss(pid: int) -> int:
    """A process's resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def source(i: int) -> str:
    return f"127.0.{1 + i // PER_ADDRESS // 250}.{2 + i // PER_ADDRESS % 250}"


async def hold_relays(relays: list[tuple[RelayLink, int]], count: int) -> tuple[int, int, float]:
    """Open `count` connections, split between `relays` ((link, pid) each), and
    hold them: (RSS before, RSS after, seconds to open them), all processes'."""
    before = sum(rss(pid) for _, pid in relays)
    streams: list[Any] = []
    start = time.perf_counter()
    for i in range(count):
        link = relays[i % len(relays)][0]
        streams.append(await RelayConnection.open(link, SeededRng(f"c{i}"), local_host=source(i)))
    elapsed = time.perf_counter() - start
    await anyio.sleep(1)
    after = sum(rss(pid) for _, pid in relays)
    for stream in streams:
        await stream.aclose()
    return before, after, elapsed


async def hold_echo(port: int, count: int, pid: int) -> tuple[int, int]:
    before = rss(pid)
    streams = []
    for i in range(count):
        stream = await anyio.connect_tcp("127.0.0.1", port, local_host=source(i))
        await stream.send(b"x")
        await stream.receive()
        streams.append(stream)
    await anyio.sleep(1)
    after = rss(pid)
    for stream in streams:
        await stream.aclose()
    return before, after


async def events(conn: RelayConnection) -> list[client.Event]:
    while True:
        got = await conn.receive()
        if got:
            return got


async def wake_latency(waiting: RelayLink, putting: RelayLink) -> tuple[list[float], list[float]]:
    """(put sent -> wait answered, put sent -> put answered), seconds, WAKES each."""
    owner = await RelayConnection.open(waiting, SeededRng("owner"))
    inbox_seed, _ = relayitems.inbox_key(b"o" * 32, b"g" * 32, waiting.key)
    auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
    await owner.call("inbox-auth", **auth)
    box = auth["box"]
    await owner.call("inbox-writers", box=box, hashes=[session.writer_hash(TOKEN)])
    sender = await RelayConnection.open(putting, SeededRng("sender"))
    woke: list[float] = []
    answered: list[float] = []
    for k in range(WAKES):
        wait = await owner.send("inbox-wait", box=box, after=k, seconds=60)
        probe = await owner.send("inbox-ack", box=box, numbers=[k] if k else [])
        [event] = await events(owner)
        assert event.number == probe, "the wait was not held"
        start = time.perf_counter()

        async def put(start: float = start) -> None:
            assert await sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
            answered.append(time.perf_counter() - start)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(put)
            [event] = await events(owner)
            woke.append(time.perf_counter() - start)
            assert event.number == wait
            assert isinstance(event, client.Answer)
            assert event.value["items"], "woken by its time, not by the put"
    await owner.aclose()
    await sender.aclose()
    return woke, answered


async def echo_latency(port: int) -> list[float]:
    stream = await anyio.connect_tcp("127.0.0.1", port)
    times = []
    for _ in range(WAKES):
        start = time.perf_counter()
        await stream.send(b"x" * 100)
        await stream.receive()
        times.append(time.perf_counter() - start)
    await stream.aclose()
    return times


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    count = args.connections
    held: dict[str, tuple[int, int]] = {}
    latencies: dict[str, list[float]] = {}
    seconds = 0.0
    echo_process = start_echo()
    try:
        port = int(echo_process.stdout.readline())  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as folder:
            relay, link = start_relay(folder)
            try:
                before, after, seconds = anyio.run(hold_relays, [(link, relay.pid)], count)
                held["covey relay, SQLite (after handshake and access)"] = (before, after)
            finally:
                stop([relay])
        if not args.no_postgres:
            postgres_rows(count, held, latencies)
        held["bare anyio echo server"] = anyio.run(hold_echo, port, count, echo_process.pid)
        latencies["bare loopback round trip (echo server)"] = anyio.run(echo_latency, port)
    finally:
        stop([echo_process])
    per_echo = (held["bare anyio echo server"][1] - held["bare anyio echo server"][0]) / count
    rows = []
    for label, (before, after) in held.items():
        per = (after - before) / count
        rows.append(
            [
                label,
                f"{before / 1e6:.1f}",
                f"{after / 1e6:.1f}",
                f"{per:,.0f}",
                f"{per / per_echo:.1f}",
            ]
        )
    print(f"{count:,} idle connections held; {machine()}")
    print()
    print(table(["what", "RSS before MB", "RSS after MB", "bytes per connection", "x echo"], rows))
    print()
    print(f"handshakes: {count / seconds:,.0f} a second (client and relay on one machine)")
    if len(latencies) > 1:
        print()
        print(f"wake latency, {WAKES} waits, loopback")
        print()
        print(
            table(
                ["what", "median ms", "p99 ms"],
                [
                    [label, f"{quantile(v, 0.5) * 1e3:.2f}", f"{quantile(v, 0.99) * 1e3:.2f}"]
                    for label, v in latencies.items()
                ],
            )
        )


def start_echo() -> Any:
    import subprocess

    return subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)


def postgres_rows(
    count: int, held: dict[str, tuple[int, int]], latencies: dict[str, list[float]]
) -> None:
    """The PostgreSQL rows: one relay process, then two sharing the database."""
    from tests.relay.pgcluster import binaries, throwaway_postgres

    bindir = binaries()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed (apt install postgresql), or --no-postgres")
    with throwaway_postgres(bindir, fsync=True) as dsn, tempfile.TemporaryDirectory() as folder:
        relay, link = start_relay(folder, dsn)
        try:
            before, after, _ = anyio.run(hold_relays, [(link, relay.pid)], count)
            held["covey relay, PostgreSQL, one process"] = (before, after)
        finally:
            stop([relay])
        first, link = start_relay(folder, dsn)
        second, other = start_relay(folder, dsn)  # (one key: both answer for one link)
        try:
            pair = [(link, first.pid), (other, second.pid)]
            before, after, _ = anyio.run(hold_relays, pair, count)
            held["covey relay, PostgreSQL, two processes (both)"] = (before, after)
            woke, answered = anyio.run(wake_latency, link, other)
            latencies["inbox-wait woken across two processes (put sent -> item)"] = woke
            latencies["the put's own round trip (put sent -> stored)"] = answered
        finally:
            stop([first, second])


if __name__ == "__main__":
    main()
