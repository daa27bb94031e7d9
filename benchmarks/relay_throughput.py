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
"""

from __future__ import annotations

import argparse
import json
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
from covey.relay import client, session
from covey.relay.limits import ITEM_SIZES

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


async def relay_run(link: RelayLink, items: int, connections: int) -> tuple[float, int]:
    """C inboxes, each with its owner's connection and a sender's: puts, then fetches."""
    boxes, owners, senders = [], [], []
    for i in range(connections):
        owner = await RelayConnection.open(link, SeededRng(f"owner{i}"))
        inbox_seed, _ = relayitems.inbox_key(bytes([i]) * 32, b"g" * 32, link.key)
        auth = client.inbox_auth(inbox_seed, owner.ready.challenge)
        await owner.call("inbox-auth", **auth)
        await owner.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(TOKEN)])
        boxes.append(auth["box"])
        owners.append(owner)
        senders.append(await RelayConnection.open(link, SeededRng(f"sender{i}")))
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
    streams = [await anyio.connect_tcp("127.0.0.1", port) for _ in range(connections)]

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        relay = subprocess.Popen(
            [sys.executable, "-m", "covey", "relay", "serve", "--listen", "127.0.0.1:0",
             "--data", folder, "--json", "--requests-per-second", "100000"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
        try:
            assert relay.stdout is not None
            assert echo.stdout is not None
            link = parse_link(json.loads(relay.stdout.readline())["link"])
            port = int(echo.stdout.readline())
            rows = []
            for _ in range(args.repeats):
                seconds, messages = anyio.run(relay_run, link, args.items, args.connections)
                echo_seconds = anyio.run(echo_run, port, messages, args.connections)
                rows.append((messages / seconds, messages / echo_seconds))
        finally:
            for process in (relay, echo):
                process.terminate()
                process.communicate(timeout=10)
    relay_rate = sorted(r for r, _ in rows)[len(rows) // 2]
    echo_rate = sorted(e for _, e in rows)[len(rows) // 2]
    print(f"relay messages per second, {args.connections} connections; {machine()}")
    print()
    print(
        table(
            ["what", "messages per second", "x echo"],
            [
                [
                    "covey relay (SQLite, durable)",
                    f"{relay_rate:,.0f}",
                    f"{relay_rate / echo_rate:.2f}",
                ],
                ["bare anyio echo server", f"{echo_rate:,.0f}", "1.00"],
            ],
        )
    )
    print()
    verdict = "meets" if relay_rate / echo_rate >= TARGET else "MISSES"
    print(f"the relay {verdict} the target of {TARGET} x the echo server")


if __name__ == "__main__":
    main()
