"""What the node's history-gap check costs per new op, as groups grow.

Run by hand: `python benchmarks/history_gaps.py`.

`covey up` asks every group, after any change, whether a member lacks a key
its history policy allows (`Group.history_gaps`, recomputed once per change
of the log). Measured on the shape that makes gaps: a group grown by adds
(one device adding the others one at a time), split in two; one side
rotates R times while the other adds M devices; the sides merge; then a
healing rotation closes the gaps. Beside it, in the same run and
interleaved: the core's cost per op of replaying the same log (verify,
apply), the work each new op already costs. Since history links (issue 9,
5h) the check looks at the tops of the chain (a handful) and the members,
not at every (member, epoch): it should stay flat as epochs grow.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, interleaved, machine, table
from covey.core.group import Group
from covey.core.identity import create_identity

NOW = 1_793_491_200
SHAPES = [(10, 5, 50), (25, 25, 250), (50, 25, 500)]


def build(side_a: int, side_b: int, rotations: int) -> tuple[Group, Group, bytes]:
    """(the healed group, a replica lacking its last op, that op's bytes)."""
    rng = SeededRng(f"gaps-{side_a}-{side_b}-{rotations}")
    ids = [create_identity(f"d{i}", NOW, SeededRng(f"d{i}")) for i in range(side_a + side_b)]
    clock = NOW
    a = Group.create(ids[0], "g", "shared", clock, rng)
    a.add(ids[1].record_bytes, "admin", clock, rng)
    for i in range(2, side_a):
        a.add(ids[i].record_bytes, "member", clock, rng)
    b = Group.replica(ids[1], a.id, [op.raw for op in a.log.order])
    for _ in range(rotations):  # apart
        a.rotate(clock, rng)
    for i in range(side_a, side_a + side_b):
        b.add(ids[i].record_bytes, "member", clock, rng)
    for op in b.log.order:
        a.receive(op.raw)
    a.rotate(clock, rng)  # the healing rotation
    ops = [op.raw for op in a.log.order]
    lagging = Group.replica(ids[0], a.id, ops[:-1])
    lagging.keys.update(a.keys)
    return a, lagging, ops[-1]


def measure(side_a: int, side_b: int, rotations: int) -> list[str]:
    group, lagging, _ = build(side_a, side_b, rotations)
    raws = [op.raw for op in lagging.log.order]

    def check() -> None:
        group._gaps = group._tops = None  # (as after a new op)
        group.history_gaps()

    def replay() -> None:
        Group.replica(lagging.me, lagging.id, raws)

    times = interleaved(5, check=check, replay=replay)
    per_op = times["replay"] / len(raws)  # receiving one op: verify, apply
    return [
        f"{len(group.state.members)} members, {len(group.state.epochs)} epochs",
        f"{times['check'] * 1000:.2f}",
        f"{per_op * 1000:.3f}",
        f"{times['check'] / per_op:.1f}",
        str(len(group.history_gaps())),
    ]


def main() -> None:
    rows = [measure(*shape) for shape in SHAPES]
    print(f"history_gaps after a partition and its heal; {machine()}")
    print()
    headers = ["group", "check ms", "one op of a replay ms", "x one op", "gaps left"]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
