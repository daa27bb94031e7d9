"""Rotation cost in a group grown by adds, beside the bare crypto_box calls it is built on.

Run by hand: `python benchmarks/rotation.py [--sizes 10,100,300,1000] [--history shared]`.

For each size N, one admin founds a group and adds N-1 devices one at a
time through real `add` ops (each a new epoch wrapped for every member and
carrying that history policy's history), as a group grows in use; nothing
is placed in the state, and nothing is kept from one size to the next.
Building costs about N²/2 crypto_box wraps, so it is timed and shown too.
The group is then replayed from its ops, as `covey group rotate` loads it
from the store, and `Group.rotate()` runs through the normal path, once
alone ("first", as the command runs it) and then interleaved: what the new epoch
must carry, a fresh key, N crypto_box wraps, the op encoded, signed, parsed
back, checked against the rule table and applied, and its key learnt.
Beside it, in the same run and interleaved: N bare crypto_box calls
(libsodium through PyNaCl) with fresh nonces. Target: at most 1.4 times the
bare calls at 1,000 members.

The second table is what history costs in bytes as the group grows: the
`hist` field of the last add and of the rotation, the whole last add, and
the whole log as grown (every op's bytes, before the rotations timed here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nacl.bindings as sodium

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, interleaved, machine, table
from covey.core import encoding
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.ops import Op

NOW = 1_793_491_200
TARGET = 1.4


def grown(size: int, history: str) -> tuple[Group, Op | None, float]:
    """A group of `size` members grown by one admin's adds; its last add; seconds spent."""
    rng = SeededRng(f"rotation-{size}")
    me = create_identity("bench", NOW, rng)
    others = [create_identity(f"m{i}", NOW, rng) for i in range(size - 1)]
    start = time.perf_counter()
    group = Group.create(me, "bench", history, NOW, os.urandom)  # type: ignore[arg-type]
    last = None
    for other in others:
        last = group.add(other.record_bytes, "member", NOW, os.urandom)
    return group, last, time.perf_counter() - start


def hist_bytes(op: Op | None) -> int:
    """The encoded size of an op's `hist` field (0 for none)."""
    if op is None:
        return 0
    wire = op.body.to_wire()
    return len(encoding.encode(wire["hist"])) if "hist" in wire else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,300,1000")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--history", default="shared", choices=("shared", "forward"))
    args = parser.parse_args()

    rows = []
    byte_rows = []
    ratios = {}
    for size in (int(s) for s in args.sizes.split(",")):
        print(f"growing a group to {size:,} members by adds ...", file=sys.stderr)
        grower, last_add, build_s = grown(size, args.history)
        # As `covey group rotate` finds it: replayed from the stored ops.
        group = Group.replica(grower.me, grower.id, [op.raw for op in grower.log.order])
        del grower
        state = group.state
        epochs = len(state.epochs)
        log_bytes = sum(len(op.raw) for op in group.log.ops.values())
        assert len(state.members) == size
        sender = group.me.secrets.box_secret
        recipients = [m.record.box_key for m in state.members.values()]
        key = os.urandom(32)
        made: list[Op] = []

        def rotate(group: Group = group, made: list[Op] = made) -> None:
            made.append(group.rotate(NOW, os.urandom))

        def bare(
            recipients: list[bytes] = recipients, key: bytes = key, sender: bytes = sender
        ) -> None:
            for public in recipients:
                sodium.crypto_box_easy(key, os.urandom(24), public, sender)

        start = time.perf_counter()
        rotate()  # the first, on a group just loaded (nothing computed before)
        first = time.perf_counter() - start
        repeats = max(args.repeats, 1000 // size)  # small sizes are cheap: more runs
        medians = interleaved(repeats, covey=rotate, bare=bare)
        ratio = medians["covey"] / medians["bare"]
        ratios[size] = ratio
        rows.append(
            [
                f"{size:,}",
                f"{epochs:,}",
                f"{build_s:.1f}",
                f"{first * 1000:.1f}",
                f"{medians['covey'] * 1000:.1f}",
                f"{medians['bare'] * 1000:.1f}",
                f"{ratio:.2f}",
                f"{len(made[-1].raw):,}",
            ]
        )
        byte_rows.append(
            [
                f"{size:,}",
                f"{hist_bytes(last_add):,}",
                f"{len(last_add.raw) if last_add else 0:,}",
                f"{hist_bytes(made[-1]):,}",
                f"{log_bytes:,}",
            ]
        )
    print(f"Rotation in a group grown by adds ({args.history} history), median of")
    print(f"at least {args.repeats} interleaved runs; {machine()}")
    print()
    headers = [
        "members",
        "epochs",
        "build s",
        "first rotate ms",
        "covey rotate ms",
        "bare crypto_box x N ms",
        "ratio",
        "rotate op bytes",
    ]
    print(table(headers, rows))
    print()
    headers = ["members", "last add: hist bytes", "last add bytes", "rotate: hist bytes"]
    print(table([*headers, "whole log bytes"], byte_rows))
    if 1000 in ratios:
        verdict = "meets" if ratios[1000] <= TARGET else "MISSES"
        print(f"\nAt 1,000 members covey takes {ratios[1000]:.2f}x the bare calls:", end=" ")
        print(f"{verdict} the {TARGET}x target.")


if __name__ == "__main__":
    main()
