"""Run many seeds of every scenario and summarise: the by-hand 10,000-seed sweep.

    python simulations/sweep.py --seeds 10000 --workers 2

Seed k runs scenario SWEEP[k % len(SWEEP)] for a short span (so that the
sweep covers every scenario evenly in about 40 minutes on two cores).
Writes `results/sweep.json`: how many runs, how many failed, each failure's
invariant and replay command, and speed; prints the same summary.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

#: (scenario, days) in turn.
SWEEP = [
    ("lan-pair", 1.0),
    ("family", 1.0),
    ("partition", 1.0),
    ("churn", 0.5),
    ("household", 1.0),
    ("away", 0.5),
]
RESULTS = Path(__file__).parent / "results"


def one(seed: int) -> dict[str, Any]:
    from covey.sim.runner import run

    scenario, days = SWEEP[seed % len(SWEEP)]
    result = run(scenario, seed, days=days)
    return {
        "seed": seed,
        "scenario": scenario,
        "steps": result["steps"],
        "virtual_seconds": result["virtual_seconds"],
        "wall_seconds": result["wall_seconds"],
        "violations": [
            {k: v[k] for k in ("invariant", "detail", "step", "replay")}
            for v in result["violations"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=10_000)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    seeds = range(args.first, args.first + args.seeds)
    runs: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for i, result in enumerate(pool.map(one, seeds, chunksize=20)):
            runs.append(result)
            if (i + 1) % 500 == 0:
                failed = sum(1 for r in runs if r["violations"])
                print(f"{i + 1} runs, {failed} failed", flush=True)
    failures = [
        {"seed": r["seed"], "scenario": r["scenario"], **r["violations"][0]}
        for r in runs
        if r["violations"]
    ]
    per_scenario: dict[str, dict[str, float]] = {}
    for scenario, _ in SWEEP:
        mine = [r for r in runs if r["scenario"] == scenario]
        if mine:
            wall = sum(r["wall_seconds"] for r in mine)
            per_scenario[scenario] = {
                "runs": len(mine),
                "failed": sum(1 for r in mine if r["violations"]),
                "steps": sum(r["steps"] for r in mine),
                "virtual_per_wall": round(sum(r["virtual_seconds"] for r in mine) / wall, 1),
            }
    summary = {
        "seeds": [args.first, args.first + args.seeds - 1],
        "runs": len(runs),
        "failed": len(failures),
        "wall_minutes": round((time.perf_counter() - started) / 60, 1),
        "workers": args.workers,
        "per_scenario": per_scenario,
        "failures": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sweep.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "failures"}, indent=1))
    for failure in failures[:20]:
        print(f"{failure['invariant']}: {failure['replay']}")


if __name__ == "__main__":
    main()
