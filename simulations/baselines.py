"""The first results of the simulator: the baselines that relays and recovery will move.

    python simulations/baselines.py [--seeds 60] [--workers 2]
    python simulations/plots.py            # figures from the JSON (needs matplotlib)

Writes three JSON files in `results/`:

* `key_delay.json`: per scenario, the seconds from a device's join until it
  holds the group's current key, with every inviter going offline (1 to 6
  hours) right after its pairing, so later keys must come from others.
* `partition.json`: syncs (completed on each side, so two per session),
  bytes and seconds until every member agrees once a partition of an hour,
  a day or a week heals.
* `healing.json`: healing rotations per removal, per scenario.

Every number comes from `covey.sim.runner.run` on seeds 0..N-1, so any one
of them replays with `python -m covey.sim run --scenario S --seed N`.
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
#: (scenario, days) for the key-delay and healing runs.
SCENARIOS = [("family", 3.0), ("partition", 3.0), ("churn", 2.0), ("household", 1.0)]
#: Partition lengths, in days, and the label of each.
PARTITIONS = [(1 / 24, "1 hour"), (1.0, "1 day"), (7.0, "1 week")]


def _run(job: tuple[str, int, float, bool]) -> dict[str, Any]:
    from covey.sim.runner import run

    scenario, seed, days, leaves = job
    result = run(scenario, seed, days=days, inviter_leaves=leaves)
    return {
        "scenario": scenario,
        "seed": seed,
        "days": days,
        "violations": [v["replay"] for v in result["violations"]],
        "metrics": {k: v for k, v in result["metrics"].items() if k != "refused"},
        "virtual_per_wall": result["virtual_per_wall"],
    }


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": ordered[-1]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--only",
        choices=["key_delay", "healing", "partition", "relays"],
        help="run one part only",
    )
    args = parser.parse_args()
    parts = [args.only] if args.only else ["key_delay", "healing", "partition", "relays"]
    RESULTS.mkdir(exist_ok=True)
    with ProcessPoolExecutor(args.workers) as pool:
        if "key_delay" in parts:
            _key_delay(pool, args.seeds)
        if "healing" in parts:
            _healing(pool, args.seeds)
        if "partition" in parts:
            _partition(pool, args.seeds)
        if "relays" in parts:
            _relays(pool, args.seeds)
    for name in parts:
        document = json.loads((RESULTS / f"{name}.json").read_text())
        for key, value in document.items():
            brief = {k: v for k, v in value.items() if k not in ("delays", "removal_delays")}
            print(name, key, json.dumps(brief))


def _key_delay(pool: ProcessPoolExecutor, seeds: int) -> None:
    """Time to the current key with the inviter gone."""
    jobs = [(s, seed, d, True) for s, d in SCENARIOS for seed in range(seeds)]
    runs = list(pool.map(_run, jobs))
    key_delay: dict[str, Any] = {}
    for scenario, days in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        delays = [d for r in mine for d in r["metrics"].get("key_delays", [])]
        key_delay[scenario] = {
            "days": days,
            "runs": len(mine),
            "violations": [v for r in mine for v in r["violations"]],
            "joins": len(delays),
            "never_got_key": sum(r["metrics"].get("never_got_key", 0) for r in mine),
            "at_once": sum(1 for d in delays if d < 1),
            "seconds": _quantiles(delays),
            "delays": sorted(delays),
        }
    (RESULTS / "key_delay.json").write_text(json.dumps(key_delay, indent=1) + "\n")


def _healing(pool: ProcessPoolExecutor, seeds: int) -> None:
    """Healing rotations per removal (honest users, inviters stay)."""
    jobs = [(s, seed, d, False) for s, d in SCENARIOS for seed in range(seeds)]
    runs = list(pool.map(_run, jobs))
    healing: dict[str, Any] = {}
    for scenario, days in SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario and not r["violations"]]
        removals = sum(r["metrics"]["removals"] for r in mine)
        heals = sum(r["metrics"]["heals"] for r in mine)
        healing[scenario] = {
            "days": days,
            "runs": len(mine),
            "removals": removals,
            "healing_rotations": heals,
            "per_removal": round(heals / removals, 3) if removals else None,
            "speed_virtual_per_wall": round(
                statistics.median(r["virtual_per_wall"] for r in mine), 1
            ),
        }
    (RESULTS / "healing.json").write_text(json.dumps(healing, indent=1) + "\n")


def _partition(pool: ProcessPoolExecutor, seeds_wanted: int) -> None:
    """Converging after a partition of an hour, a day, a week."""
    partition: dict[str, Any] = {}
    for days, label in PARTITIONS:
        seeds = seeds_wanted if days < 7 else max(10, seeds_wanted // 3)
        mine = list(pool.map(_run, [("partition", s, days, False) for s in range(seeds)]))
        done = [r["metrics"]["convergence"] for r in mine if r["metrics"].get("convergence")]
        partition[label] = {
            "days": days,
            "runs": len(mine),
            "violations": [v for r in mine for v in r["violations"]],
            "converged": len(done),
            "syncs": _quantiles([c["syncs"] for c in done]),
            "kilobytes": _quantiles([c["bytes"] / 1000 for c in done]),
            "seconds": _quantiles([c["seconds"] for c in done]),
        }
    (RESULTS / "partition.json").write_text(json.dumps(partition, indent=1) + "\n")


def _relays(pool: ProcessPoolExecutor, seeds: int) -> None:
    """The same family with and without a relay: time to the current key with the
    inviter gone, and time for a removal's new key to reach each remaining member."""
    jobs = [(s, seed, RELAY_DAYS, True) for s in RELAY_SCENARIOS for seed in range(seeds)]
    runs = list(pool.map(_run, jobs))
    relays: dict[str, Any] = {}
    for scenario in RELAY_SCENARIOS:
        mine = [r for r in runs if r["scenario"] == scenario]
        delays = [d for r in mine for d in r["metrics"].get("key_delays", [])]
        removal = [d for r in mine for d in r["metrics"].get("removal_delays", [])]
        relays[scenario] = {
            "days": RELAY_DAYS,
            "runs": len(mine),
            "violations": [v for r in mine for v in r["violations"]],
            "joins": len(delays),
            "never_got_key": sum(r["metrics"].get("never_got_key", 0) for r in mine),
            "seconds": _quantiles(delays),
            "removal_reached": len(removal),
            "removal_seconds": _quantiles(removal),
            "speed_virtual_per_wall": round(
                statistics.median(r["virtual_per_wall"] for r in mine), 1
            ),
            "delays": sorted(delays),
            "removal_delays": sorted(removal),
        }
    (RESULTS / "relays.json").write_text(json.dumps(relays, indent=1) + "\n")


#: The relay comparison: `family` as it is, and with a relay (`family-relay`).
RELAY_SCENARIOS = ("family", "family-relay")
RELAY_DAYS = 3.0


if __name__ == "__main__":
    main()
