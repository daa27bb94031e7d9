"""One simulation run, start to finish, as a JSON-friendly result.

`run(scenario, seed)` builds the scenario's world, runs it for its days,
then the heal phase (every device on, every home linked, no faults, for
`HEAL_PHASE` seconds), then the final invariants. The result always has
`seed`, `scenario`, `steps`, `virtual_seconds`, `trace_digest` and
`violations` (empty when every invariant held), plus measurements
(`metrics`) for `simulations/`.
"""

from __future__ import annotations

import time
from typing import Any, Final

from covey.sim import mutants
from covey.sim.invariants import Invariants
from covey.sim.network import QUIET
from covey.sim.scenarios import lookup
from covey.sim.users import Users
from covey.sim.world import DAY, EPOCH, Violation, World

#: Seconds of the final heal phase: every change must have reached every
#: member by then (a few sync rounds: adverts are seen within a second, and
#: each change triggers a sync with every recognized advert).
HEAL_PHASE: Final = 1800.0


def replay_command(
    scenario: str, seed: int, days: float | None, mutant: str | None, inviter_leaves: bool = False
) -> str:
    command = f"python -m covey.sim run --scenario {scenario} --seed {seed}"
    if days is not None:
        command += f" --days {days:g}"
    if mutant is not None:
        command += f" --mutant {mutant}"
    if inviter_leaves:
        command += " --inviter-leaves"
    return command


class Convergence:
    """Measures the heal: time, sync sessions and bytes until the members agree."""

    def __init__(self, world: World, invariants: Invariants) -> None:
        self.world = world
        self.invariants = invariants
        self.start = world.now
        self.bytes = world.network.bytes_sent
        self.syncs = world.counters.get("syncs", 0)
        self.result: dict[str, float] | None = None
        world.after_step.append(self.check)

    def check(self) -> None:
        if self.result is not None:
            return
        for truth in self.invariants.truth.values():
            state = truth.state
            if state is None:
                continue
            required = {i for i, op in truth.ops.items() if op.author in state.members}
            held = set()
            for device in self.world.devices:
                if device.id not in state.members or device.gone:
                    continue
                node = device.node
                group = node.groups.get(truth.group_id) if node is not None else None
                if group is None or group.log.state is None or not required <= group.log.ops.keys():
                    return
                if group.state.needs_healing or group.state.current_epoch.id not in group.keys:
                    return
                held.add(frozenset(group.log.ops))
            if len(held) > 1:
                return
        self.result = {
            "seconds": self.world.now - self.start,
            "syncs": self.world.counters.get("syncs", 0) - self.syncs,
            "bytes": self.world.network.bytes_sent - self.bytes,
        }


def run(
    scenario: str,
    seed: int,
    *,
    days: float | None = None,
    mutant: str | None = None,
    inviter_leaves: bool = False,
) -> dict[str, Any]:
    """Run one scenario on one seed; the result document (see `__main__`)."""
    spec = lookup(scenario)
    length = spec.days if days is None else days
    wall = time.perf_counter()
    world = World(
        seed, spec.homes, spec.faults, send_before_persist=mutant == "send-before-persist"
    )
    invariants = Invariants(world)
    violations: list[dict[str, Any]] = []
    metrics: dict[str, Any] = {}
    with mutants.planted(mutant):
        users: Users | None = None
        try:
            users = Users(world, invariants, inviter_leaves=inviter_leaves)
            spec.build(world, users, length)
            end = EPOCH + length * DAY
            world.run_until(end)
            users.done = True
            heal = _heal_phase(world, invariants, spec.homes)
            world.run_until(end + HEAL_PHASE)
            metrics.update(invariants.final())
            metrics["askings"] = users.final()
            metrics["convergence"] = heal.result
        except Violation as violation:
            violations.append(
                {
                    "invariant": violation.invariant,
                    "detail": violation.detail,
                    "step": world.steps,
                    "virtual_time": round(world.now - EPOCH, 6),
                    "replay": replay_command(scenario, seed, days, mutant, inviter_leaves),
                    "trace": list(world.tail),
                }
            )
    if users is not None:
        metrics.update(
            {
                "joins": users.joins,
                "removals": users.removals,
                "notes": users.notes,
                "key_delays": [round(d, 3) for d in users.key_delays],
                "removal_delays": [round(d, 3) for d in users.removal_delays],
                "never_got_key": len(users.waiting),
                "refused": dict(sorted(users.refused.items())),
            }
        )
    metrics["syncs"] = world.counters.get("syncs", 0)
    lies: dict[str, int] = {}
    for relay in world.relays.values():
        for kind, count in relay.lied.items():
            lies[kind] = lies.get(kind, 0) + count
    metrics["relay_lies"] = dict(sorted(lies.items()))
    metrics["heals"] = world.counters.get("notify:healed", 0)
    metrics["crashes"] = world.counters.get("crashes", 0)
    metrics["bytes_sent"] = world.network.bytes_sent
    elapsed = time.perf_counter() - wall
    virtual = world.now - EPOCH
    return {
        "seed": seed,
        "scenario": scenario,
        "mutant": mutant,
        "days": length,
        "steps": world.steps,
        "virtual_seconds": round(virtual, 6),
        "wall_seconds": round(elapsed, 3),
        "virtual_per_wall": round(virtual / elapsed, 1) if elapsed > 0 else None,
        "trace_digest": world.trace_digest,
        "violations": violations,
        "metrics": metrics,
    }


def _heal_phase(world: World, invariants: Invariants, homes: int) -> Convergence:
    """Every device on, every home linked, the network and devices reliable."""
    world.faults = QUIET
    world.network.faults = QUIET
    world.trace("heal phase")
    for a in range(homes):
        for b in range(a + 1, homes):
            world.network.link(a, b, True)
    for device in world.devices:
        world.set_online(device, True)
    for relay in world.relays.values():
        world.set_relay_up(relay, True)
    return Convergence(world, invariants)
