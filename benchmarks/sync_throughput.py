"""Sync throughput: 10,000 ops between two nodes, beside the core applying them.

Run by hand: `python benchmarks/sync_throughput.py [--ops 10000]`.

Device A holds a group with N ops (one causal chain by two admins, one in
ten a rotation); device B holds only its first two. A runs in a child
process (another node, as it would be), and B's node, shown A's advert,
dials it and the two sync once over a real TCP connection on loopback: the
pure nodes and their drivers, Noise channel, sync messages, B verifying and
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
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, machine, table
from covey.core import encoding
from covey.core.discovery import Discovery
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, io
from covey.gcpause import collector_paused
from covey.runtime.driver import Driver

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
    """The child: node A (a real node and driver), serving until B has synced."""
    raws = encoding.decode(Path(path).read_bytes(), LIMITS)
    a_id, _ = identities()
    a = Group.replica(a_id, _genesis_id(raws), raws)
    done = anyio.Event()

    class PeerMet:
        """Stands in for the store: A is done when its node records the sync with B
        (A receives nothing, and a sync that changed nothing notifies nothing)."""

        async def commit(self, effect: io.Persist, *args: object) -> None:
            if effect.peers:
                done.set()

    async def run() -> None:
        store: Any = PeerMet()
        driver = Driver(Node(a_id, [a]), store, b"", os.urandom, time.time, host="127.0.0.1")
        async with anyio.create_task_group() as tg:
            tg.start_soon(driver.run, lambda port: print(port, flush=True))
            await done.wait()
            tg.cancel_scope.cancel()

    with collector_paused():
        anyio.run(run)


def _genesis_id(raws: list[bytes]) -> bytes:
    from covey.core.ops import parse_op

    return parse_op(raws[0]).id


async def sync_b(b: Group, port: int) -> float:
    """Node B sees A's advert (the tags A's node would publish) and syncs once."""
    a_id, _ = identities()
    txt = Discovery(a_id).advert([b.me.record], NOW, os.urandom)
    synced = anyio.Event()

    def emit(event: str, data: dict[str, object]) -> None:
        if event == "synced":
            synced.set()

    driver = Driver(Node(b.me, [b]), None, b"", os.urandom, lambda: NOW, emit=emit, port=None)
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        start = time.perf_counter()
        await driver.post(io.AdvertSeen("a", ("127.0.0.1",), port, txt))
        await synced.wait()
        elapsed = time.perf_counter() - start
        tg.cancel_scope.cancel()
    return elapsed


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
    _, b_id = identities()
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
                sync_times.append(anyio.run(sync_b, b, port))
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
