"""Items through one relay process per second, beside a bare anyio echo server.

Run by hand: `python benchmarks/relay_throughput.py [--items 2000] [--connections 8]`.

A relay process (`covey relay serve`, its SQLite store in a temporary
directory) on loopback; C senders each put N/C items of 1 KiB (the smallest
padded size) into an inbox of their own, then each inbox's owner fetches
them page by page and acknowledges them (one inbox per connection, as the
relay allows). Messages per second counts every request
answered (puts, fetches, acks). Beside it, in the same run: a bare anyio
echo server in a process of its own, which C connections send the same
number of messages of the same size, each waiting for its echo, as a relay
client waits for its answer. Target (issue 10): the relay at least 0.5 of
the echo server's messages per second.

What the relay does that the echo server does not: Noise encryption both
ways (on both ends), strict msgpack, and a SQLite transaction per request
with `synchronous=FULL` (a put is durable before it is answered). The
relay runs with its per-connection rate limit lifted
(`--requests-per-second`), which would otherwise hold each connection to
50 requests a second.

Beside the rates, the CPU each message cost (the server process and the
benchmark's clients together, from /proc and `time.process_time`), which
a busy machine disturbs less than the rates; and a floor: the relay's
per-message work that the echo server does not do, with no socket and no
store (in this process, one core: the client's request, the relay
session's decryption, strict parse and checks, its answer, the client's
reading of it). No relay can beat that row on this machine's cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
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
from covey.core.relaylink import RelayLink, parse_link
from covey.net.relay import RelayConnection
from covey.relay import client, session, store
from covey.relay.limits import DEFAULT_LIMITS, ITEM_SIZES

TARGET = 0.5
ITEM = b"\x01" * ITEM_SIZES[0]
TOKEN = b"t" * 32

ECHO = """
import sys, anyio
async def handle(stream):
    async with stream:
        try:
            while True:
                await stream.send(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            pass
async def main():
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    print(port, flush=True)
    await listener.serve(handle)
import anyio.abc
anyio.run(main)
"""


def source(i: int) -> str:
    """The loopback address connection pair `i` comes from: 16 pairs an address,
    since a relay takes 32 connections from one address (an owner's and a
    sender's per pair); the echo server's connections come from the same ones."""
    return f"127.0.0.{1 + i // 16}"


async def relay_run(
    link: RelayLink, items: int, connections: int, sender_link: RelayLink | None = None
) -> tuple[float, int]:
    """C inboxes, each with its owner's connection and a sender's: puts, then fetches.

    With `sender_link` (another process of the same relay, on one database),
    the senders put through it and the owners fetch through `link`."""
    boxes, owners, senders = [], [], []
    for i in range(connections):
        owner = await RelayConnection.open(link, SeededRng(f"owner{i}"), local_host=source(i))
        inbox_seed, _ = relayitems.inbox_key(bytes([i]) * 32, b"g" * 32, link.key)
        auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
        await owner.call("inbox-auth", **auth)
        await owner.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(TOKEN)])
        boxes.append(auth["box"])
        owners.append(owner)
        senders.append(
            await RelayConnection.open(
                sender_link or link, SeededRng(f"sender{i}"), local_host=source(i)
            )
        )
    each = items // connections
    counts = [0] * connections
    start = time.perf_counter()

    async def send(i: int) -> None:
        for _ in range(each):
            await senders[i].call("inbox-put", box=boxes[i], token=TOKEN, item=ITEM, ttl=0)
        counts[i] += each

    async def fetch(i: int) -> None:
        fetched = 0
        while True:
            page = await owners[i].call("inbox-fetch", box=boxes[i], after=0)
            counts[i] += 1
            if not page["items"]:
                break
            fetched += len(page["items"])
            numbers = [n for n, _, _ in page["items"]]
            await owners[i].call("inbox-ack", box=boxes[i], numbers=numbers)
            counts[i] += 1
        assert fetched == each, fetched

    for step in (send, fetch):
        async with anyio.create_task_group() as tasks:
            for i in range(connections):
                tasks.start_soon(step, i)
    elapsed = time.perf_counter() - start
    for conn in [*owners, *senders]:
        await conn.aclose()
    return elapsed, sum(counts)


async def echo_run(port: int, messages: int, connections: int) -> float:
    payload = b"\x02" * (len(ITEM) + 200)  # (an item and a request's fields)
    streams = [
        await anyio.connect_tcp("127.0.0.1", port, local_host=source(i)) for i in range(connections)
    ]

    async def talk(stream: Any, count: int) -> None:
        for _ in range(count):
            await stream.send(payload)
            got = 0
            while got < len(payload):
                got += len(await stream.receive())

    start = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for stream in streams:
            tasks.start_soon(talk, stream, messages // connections)
    elapsed = time.perf_counter() - start
    for stream in streams:
        await stream.aclose()
    return elapsed


def cpu_seconds(pid: int) -> float:
    """CPU time (user and system) a process used so far; 0 where /proc is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def floor_seconds(messages: int = 5000) -> float:
    """Seconds per message of the relay's own work, on both ends, with no socket
    and no store: a put's request made, decrypted, parsed and checked by the
    session, answered, and the answer read by the client."""
    identity = session.RelayIdentity.from_seed(b"f" * 32)
    limits = dataclasses.replace(DEFAULT_LIMITS, requests_per_second=10**9, request_burst=10**9)
    device = client.RelayClient(identity.public, SeededRng("floor-client"))
    relay = session.RelaySession(identity, limits, 0.0, b"a" * 32)
    rng = SeededRng("floor-relay")
    for output in relay.receive(device.start(), 0.0, rng):
        assert isinstance(output, session.Send)
        device.receive(output.data)
    box = b"b" * 32
    start = time.perf_counter()
    for number in range(1, messages + 1):
        _, data = device.request("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
        (run,) = relay.receive(data, 1.0, rng)
        assert isinstance(run, session.Run)
        for output in relay.answer(run.number, store.Stored(number)):
            assert isinstance(output, session.Send)
            (answer,) = device.receive(output.data)
            assert isinstance(answer, client.Answer)
    return (time.perf_counter() - start) / messages


def start_relay(data: str, db: str | None = None) -> tuple[subprocess.Popen[str], RelayLink]:
    """A `covey relay serve` process on loopback (its store SQLite in `data`, or `db`)."""
    args = [sys.executable, "-m", "covey", "relay", "serve", "--listen", "127.0.0.1:0",
            "--data", data, "--json", "--requests-per-second", "100000"]  # fmt: skip
    if db is not None:
        args += ["--db", db]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, parse_link(json.loads(process.stdout.readline())["link"])


def stop(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        process.terminate()
        process.communicate(timeout=10)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="also PostgreSQL (Debian's, started for the run, fsync on): one relay process,"
        " and two sharing it",
    )
    args = parser.parse_args()
    echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
    assert echo.stdout is not None
    port = int(echo.stdout.readline())
    rows: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    echo_rates: list[float] = []
    floors: list[float] = []

    def measure(label: str, link: RelayLink, servers: list[int], other: RelayLink | None) -> None:
        for _ in range(args.repeats):
            before = time.process_time() + sum(cpu_seconds(pid) for pid in servers)
            seconds, messages = anyio.run(relay_run, link, args.items, args.connections, other)
            used = time.process_time() + sum(cpu_seconds(pid) for pid in servers) - before
            before = time.process_time() + cpu_seconds(echo.pid)
            echo_seconds = anyio.run(echo_run, port, messages, args.connections)
            echo_used = time.process_time() + cpu_seconds(echo.pid) - before
            floors.append(floor_seconds())
            rows.setdefault(label, []).append(messages / seconds)
            cpu.setdefault(label, []).append(used / messages)
            echo_rates.append(messages / echo_seconds)
            cpu.setdefault("echo", []).append(echo_used / messages)

    try:
        with tempfile.TemporaryDirectory() as folder:
            relay, link = start_relay(folder)
            try:
                measure("covey relay (SQLite, durable, group commit)", link, [relay.pid], None)
            finally:
                stop([relay])
        if args.postgres:
            from tests.relay.pgcluster import binaries, throwaway_postgres

            bindir = binaries()
            if bindir is None:
                raise SystemExit("PostgreSQL is not installed (apt install postgresql)")
            with throwaway_postgres(bindir, fsync=True) as dsn, tempfile.TemporaryDirectory() as d:
                first, link = start_relay(d, dsn)
                second, other = start_relay(d, dsn)  # (one key: both answer for one link)
                try:
                    measure("covey relay (PostgreSQL, one process)", link, [first.pid], None)
                    measure(
                        "covey relay (PostgreSQL, two processes)",
                        link,
                        [first.pid, second.pid],
                        other,
                    )
                finally:
                    stop([first, second])
    finally:
        stop([echo])
    echo_rate = median(echo_rates)
    print(f"relay messages per second, {args.connections} connections; {machine()}")
    print()
    table_rows = [
        [
            label,
            f"{median(rates):,.0f}",
            f"{median(rates) / echo_rate:.2f}",
            f"{median(cpu[label]) * 1e6:,.0f}",
        ]
        for label, rates in rows.items()
    ]
    table_rows.append(
        ["bare anyio echo server", f"{echo_rate:,.0f}", "1.00", f"{median(cpu['echo']) * 1e6:,.0f}"]
    )
    floor = median(floors)
    table_rows.append(
        [
            "floor: the relay's Noise and msgpack work alone (both ends, no socket, no store)",
            f"{1 / floor:,.0f}",
            f"{1 / floor / echo_rate:.2f}",
            f"{floor * 1e6:,.0f}",
        ]
    )
    headers = ["what", "messages per second", "x echo", "CPU µs per message (server + clients)"]
    print(table(headers, table_rows))
    print()
    best = max(median(rates) for rates in rows.values())
    verdict = "meets" if best / echo_rate >= TARGET else "MISSES"
    print(f"the relay {verdict} the target of {TARGET} x the echo server")


if __name__ == "__main__":
    main()
