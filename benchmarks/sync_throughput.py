"""Sync throughput: 10,000 ops between two nodes, beside the core applying them.

Run by hand: `python benchmarks/sync_throughput.py [--ops 10000]`.

Device A holds a group with N ops (one causal chain by two admins, one in
ten a rotation); device B holds only its first two. A runs in a child
process (another node, as it would be), and the two sync once over a real
TCP connection on loopback: Noise channel, sync messages, B verifying and
applying every op and unwrapping its key from every rotation. Persisting is
left out (the store is the other edge; its tests cover it). Beside it, in
the same run: B's replica applying the same ops straight from memory, the
rate the core alone achieves. Target: sync at least half that rate.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, machine, table
from covey.core import encoding
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.sync import SyncSession
from covey.gcpause import collector_paused
from covey.net import tcp
from covey.runtime.syncer import sync_once

NOW = 1_793_491_200
TARGET = 0.5
LIMITS = encoding.Limits(
    total=1 << 30,
    bin_len=1 << 20,
    str_len=64,
    array_len=1 << 22,
    map_len=8,
    depth=3,
    objects=1 << 23,
)


def identities() -> tuple[Identity, Identity]:
    rng = SeededRng("sync-bench")
    return create_identity("a", NOW, rng), create_identity("b", NOW, rng)


def build(count: int) -> list[bytes]:
    a_id, b_id = identities()
    a = Group.create(a_id, "bench", "forward", NOW, os.urandom)
    a.add(b_id.record_bytes, "admin", NOW, os.urandom)
    policy = "forward"
    while len(a.log) < count:
        if len(a.log) % 10 == 0:
            a.rotate(NOW, os.urandom)
        else:
            policy = "shared" if policy == "forward" else "forward"
            a.set_policy(policy, NOW)  # type: ignore[arg-type]
    return [op.raw for op in a.log.order]


def serve_a(path: str) -> None:
    """The child: node A, serving one sync."""
    raws = encoding.decode(Path(path).read_bytes(), LIMITS)
    a_id, b_id = identities()
    a = Group.replica(a_id, _genesis_id(raws), raws)

    async def run() -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        print(listener.extra(anyio.abc.SocketAttribute.local_port), flush=True)
        done = anyio.Event()

        async def nothing(_: set[bytes]) -> None:
            return None

        async def serve(stream) -> None:  # type: ignore[no-untyped-def]
            async with stream:
                channel = await tcp.handshake(
                    stream, a_id, initiator=False, rng=os.urandom, knows=lambda r: True
                )
                await sync_once(channel, SyncSession({a.id: a}, b_id.device_id.raw), nothing)
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            await done.wait()
            tg.cancel_scope.cancel()

    with collector_paused():
        anyio.run(run)


def _genesis_id(raws: list[bytes]) -> bytes:
    from covey.core.ops import parse_op

    return parse_op(raws[0]).id


async def sync_b(b: Group, a_device: bytes, port: int) -> float:
    async def nothing(_: set[bytes]) -> None:
        return None

    start = time.perf_counter()
    stream = await anyio.connect_tcp("127.0.0.1", port)
    async with stream:
        channel = await tcp.handshake(
            stream, b.me, initiator=True, rng=os.urandom, knows=lambda r: True
        )
        await sync_once(channel, SyncSession({b.id: b}, a_device), nothing)
    return time.perf_counter() - start


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve_a(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"building {args.ops:,} ops ...", file=sys.stderr)
    raws = build(args.ops)
    group_id = _genesis_id(raws)
    a_id, b_id = identities()
    moved = len(raws) - 2
    sync_times, core_times = [], []
    with tempfile.NamedTemporaryFile(suffix=".ops") as file:
        file.write(encoding.encode(raws, LIMITS))
        file.flush()
        for _ in range(args.repeats):
            child = subprocess.Popen(
                [sys.executable, __file__, "--serve", file.name], stdout=subprocess.PIPE, text=True
            )
            port = int(child.stdout.readline())  # type: ignore[union-attr]
            b = Group.replica(b_id, group_id, raws[:2])
            with collector_paused():
                sync_times.append(anyio.run(sync_b, b, a_id.device_id.raw, port))
            child.wait(timeout=60)
            assert len(b.log) == len(raws), "B must hold every op after one sync"
            core = Group.replica(b_id, group_id, raws[:2])
            start = time.perf_counter()
            with collector_paused():
                for raw in raws[2:]:
                    core.receive(raw)
            core_times.append(time.perf_counter() - start)
    sync_s, core_s = min(sync_times), min(core_times)
    ratio = core_s / sync_s
    print(f"One sync of {moved:,} ops over loopback TCP, best of {args.repeats}; {machine()}")
    print()
    print(
        table(
            ["what", "seconds", "ops per second", "x core"],
            [
                [
                    "sync (B's side): channel, messages, verify, apply, unwrap",
                    f"{sync_s:.2f}",
                    f"{moved / sync_s:,.0f}",
                    f"{ratio:.2f}",
                ],
                [
                    "core alone (B's replica): verify, apply, unwrap",
                    f"{core_s:.2f}",
                    f"{moved / core_s:,.0f}",
                    "1.00",
                ],
            ],
        )
    )
    verdict = "meets" if ratio >= TARGET else "MISSES"
    print(f"\nSync runs at {ratio:.2f} of the core's rate: {verdict} the {TARGET} target.")


if __name__ == "__main__":
    main()
