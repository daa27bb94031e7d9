"""Idle device connections one relay process holds, and the memory each costs.

Run by hand: `python benchmarks/relay_connections.py [--connections 10000]`.

A relay process (`covey relay serve`, SQLite) on loopback; this script opens
C connections to it, each through the handshake (the relay's proof checked,
the access secret presented), and leaves them idle. The relay's resident
memory (VmRSS) before and after gives the memory per connection. Beside it,
in the same run: a bare anyio echo server holding the same number of idle
connections. The relay's connections-per-address limit is for devices, so
the connections come from C/30 loopback addresses (127.0.0.2, ...).
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
from covey.core.relaylink import RelayLink, parse_link
from covey.net.relay import RelayConnection
from relay_throughput import ECHO

PER_ADDRESS = 30  # (under the relay's 32 per address)


def rss(pid: int) -> int:
    """A process's resident memory in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


async def hold_relay(link: RelayLink, count: int, pid: int) -> tuple[int, int, float]:
    before = rss(pid)
    streams: list[Any] = []
    start = time.perf_counter()
    for i in range(count):
        source = f"127.0.{1 + i // PER_ADDRESS // 250}.{2 + i // PER_ADDRESS % 250}"
        streams.append(await RelayConnection.open(link, SeededRng(f"c{i}"), local_host=source))
    elapsed = time.perf_counter() - start
    await anyio.sleep(1)
    after = rss(pid)
    for stream in streams:
        await stream.aclose()
    return before, after, elapsed


async def hold_echo(port: int, count: int, pid: int) -> tuple[int, int]:
    before = rss(pid)
    streams = []
    for i in range(count):
        source = f"127.0.{1 + i // PER_ADDRESS // 250}.{2 + i // PER_ADDRESS % 250}"
        stream = await anyio.connect_tcp("127.0.0.1", port, local_host=source)
        await stream.send(b"x")
        await stream.receive()
        streams.append(stream)
    await anyio.sleep(1)
    after = rss(pid)
    for stream in streams:
        await stream.aclose()
    return before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=10_000)
    args = parser.parse_args()
    count = args.connections
    with tempfile.TemporaryDirectory() as folder:
        relay = subprocess.Popen(
            [sys.executable, "-m", "covey", "relay", "serve", "--listen", "127.0.0.1:0",
             "--data", folder, "--json"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        echo = subprocess.Popen([sys.executable, "-c", ECHO], stdout=subprocess.PIPE, text=True)
        try:
            assert relay.stdout is not None
            assert echo.stdout is not None
            link = parse_link(json.loads(relay.stdout.readline())["link"])
            port = int(echo.stdout.readline())
            r_before, r_after, seconds = anyio.run(hold_relay, link, count, relay.pid)
            e_before, e_after = anyio.run(hold_echo, port, count, echo.pid)
        finally:
            for process in (relay, echo):
                process.terminate()
                process.communicate(timeout=30)
    per_relay = (r_after - r_before) / count
    per_echo = (e_after - e_before) / count
    print(f"{count:,} idle connections held; {machine()}")
    print()
    print(
        table(
            ["what", "RSS before MB", "RSS after MB", "bytes per connection", "x echo"],
            [
                [
                    "covey relay (after handshake and access)",
                    f"{r_before / 1e6:.1f}",
                    f"{r_after / 1e6:.1f}",
                    f"{per_relay:,.0f}",
                    f"{per_relay / per_echo:.1f}",
                ],
                [
                    "bare anyio echo server",
                    f"{e_before / 1e6:.1f}",
                    f"{e_after / 1e6:.1f}",
                    f"{per_echo:,.0f}",
                    "1.0",
                ],
            ],
        )
    )
    print()
    print(f"handshakes: {count / seconds:,.0f} a second (client and relay on one machine)")


if __name__ == "__main__":
    main()
