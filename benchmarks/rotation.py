"""Rotation cost by group size, beside the bare crypto_box calls it is built on.

Run by hand: `python benchmarks/rotation.py [--sizes 10,100,1000,10000]`.

For each size N, a group with N members (this device and N-1 others) is set
up, then `Group.rotate()` runs through the normal path: a fresh key, N
crypto_box wraps, the op encoded, signed, parsed back, checked against the
rule table and applied. Beside it, in the same run and interleaved: N bare
crypto_box calls (libsodium through PyNaCl) with fresh nonces. Target: at
most 1.4 times the bare calls at 1,000 members.

The members are placed in the group state directly: building a
10,000-member group through 10,000 `add` ops would cost N²/2 wraps before the
measurement starts. Everything measured is the real code path.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nacl.bindings as sodium

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, interleaved, machine, table
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.membership import Member

NOW = 1_793_491_200
TARGET = 1.4


def group_of(size: int) -> Group:
    rng = SeededRng(f"rotation-{size}")
    me = create_identity("bench", NOW, rng)
    group = Group.create(me, "bench", "forward", NOW, os.urandom)
    state = group.log.state
    assert state is not None
    for i in range(size - 1):
        other = create_identity(f"m{i}", NOW, rng)
        state.members[other.device_id.raw] = Member(other.record, "member", i + 1)
    return group


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000,10000")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rows = []
    ratios = {}
    for size in (int(s) for s in args.sizes.split(",")):
        group = group_of(size)
        state = group.log.state
        assert state is not None
        sender = group.me.secrets.box_secret
        recipients = [m.record.box_key for m in state.members.values()]
        key = os.urandom(32)
        sizes = []

        def rotate(group: Group = group, sizes: list[int] = sizes) -> None:
            op = group.rotate(NOW, os.urandom)
            sizes.append(len(op.raw))

        def bare(
            recipients: list[bytes] = recipients, key: bytes = key, sender: bytes = sender
        ) -> None:
            for public in recipients:
                sodium.crypto_box_easy(key, os.urandom(24), public, sender)

        repeats = args.repeats if size <= 1000 else max(2, args.repeats // 2)
        medians = interleaved(repeats, covey=rotate, bare=bare)
        ratio = medians["covey"] / medians["bare"]
        ratios[size] = ratio
        rows.append(
            [
                f"{size:,}",
                f"{medians['covey'] * 1000:.1f}",
                f"{medians['bare'] * 1000:.1f}",
                f"{ratio:.2f}",
                f"{sizes[-1]:,}",
                f"{sizes[-1] / size:.0f}",
            ]
        )
    print(f"Rotation cost, median of interleaved runs; {machine()}")
    print()
    print(
        table(
            [
                "members",
                "covey rotate ms",
                "bare crypto_box x N ms",
                "ratio",
                "op bytes",
                "bytes/member",
            ],
            rows,
        )
    )
    if 1000 in ratios:
        verdict = "meets" if ratios[1000] <= TARGET else "MISSES"
        print(f"\nAt 1,000 members covey takes {ratios[1000]:.2f}x the bare calls:", end=" ")
        print(f"{verdict} the {TARGET}x target.")


if __name__ == "__main__":
    main()
