"""Will an offline admission work for my family? Simulated odds beside a binomial model.

    python simulations/recovery_odds.py --seeds 20 --workers 2
    python simulations/plots.py --only recovery

Each run is the simulator's `admission-odds-nN-kK-pP-wM` scenario
(`covey.sim.scenarios.admission_odds`): N holder persons (one device each)
and an away admin; recovery dealt with threshold K and an M-minute veto
window; each holder's device is on, on each day independently with
probability P, for the day (about 08:00 to 22:00), else off all day; a new
device asks at 09:00 on day 1. A run counts as a success when the claim
is completed in the merged log within W + 24 h of the ask. Every run
replays with `python -m covey.sim run --scenario NAME --seed SEED`.

The model beside it: P[at least K of N holders are on on the day of the
ask] = sum_{j >= K} C(N, j) P^j (1 - P)^(N - j). Writes
`results/recovery_odds.json`.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
#: (N holders, K) pairs, and the chances a holder's device is on on a day.
SHAPES = [(3, 2), (5, 2), (5, 3)]
P_DAY = [0.3, 0.5, 0.7, 0.9]
#: The veto window, in minutes.
WINDOW = 60


def model(n: int, k: int, p: float) -> float:
    """P[Binomial(n, p) >= k]."""
    return sum(math.comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def one(job: tuple[str, int]) -> dict[str, Any]:
    from covey.sim.runner import run

    scenario, seed = job
    result = run(scenario, seed)
    [asking] = result["metrics"].get("askings") or [{}]
    return {
        "scenario": scenario,
        "seed": seed,
        "wall_seconds": result["wall_seconds"],
        "claimed": asking.get("claimed"),
        "completed": asking.get("completed"),
        "member": asking.get("member"),
        "violations": [
            {k: v[k] for k in ("invariant", "detail", "replay")} for v in result["violations"]
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    configs = [(n, k, p) for n, k in SHAPES for p in P_DAY]
    jobs = [
        (f"admission-odds-n{n}-k{k}-p{round(p * 100)}-w{WINDOW}", seed)
        for n, k, p in configs
        for seed in range(args.seeds)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        runs = list(pool.map(one, jobs, chunksize=4))
    deadline = WINDOW * 60 + 24 * 3600
    rows = []
    for n, k, p in configs:
        name = f"admission-odds-n{n}-k{k}-p{round(p * 100)}-w{WINDOW}"
        mine = [r for r in runs if r["scenario"] == name]
        done = [r for r in mine if r["completed"] is not None and r["completed"] <= deadline]
        claimed = [r for r in mine if r["claimed"] is not None]
        rows.append(
            {
                "scenario": name,
                "holders": n,
                "threshold": k,
                "p_day": p,
                "runs": len(mine),
                "completed_in_time": len(done),
                "claimed": len(claimed),
                "simulated": len(done) / len(mine),
                "model": model(n, k, p),
                "failed_seeds": [r["seed"] for r in mine if r["violations"]],
            }
        )
        print(
            f"{name}: sim {len(done)}/{len(mine)} = {len(done) / len(mine):.2f}, "
            f"model {model(n, k, p):.2f}, claimed {len(claimed)}",
            flush=True,
        )
    summary = {
        "window_minutes": WINDOW,
        "deadline_seconds": deadline,
        "seeds": [0, args.seeds - 1],
        "wall_seconds": round(time.perf_counter() - started, 1),
        "violations": [v for r in runs for v in r["violations"]],
        "rows": rows,
        "runs": runs,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recovery_odds.json").write_text(json.dumps(summary, indent=1) + "\n")
    violations = len(summary["violations"])
    print(f"{len(runs)} runs in {summary['wall_seconds']} s, {violations} violations")


if __name__ == "__main__":
    main()
