"""`python -m covey.sim`: run scenarios by seed, list scenarios and mutants.

    python -m covey.sim run --scenario family --seed 7 [--days 3] [--mutant NAME] [--json]
    python -m covey.sim run --scenario family --seeds 0-99 [--json]
    python -m covey.sim scenarios
    python -m covey.sim mutants

A run with a violation exits with status 1 and prints the invariant, the
step, and the command that replays it.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def _seeds(text: str) -> range:
    low, _, high = text.partition("-")
    if not low.isdigit() or (high and not high.isdigit()):
        raise argparse.ArgumentTypeError("seeds look like 0-99")
    return range(int(low), int(high or low) + 1)


def _scenario(name: str) -> str:
    from covey.sim.scenarios import SCENARIOS, lookup

    try:
        lookup(name)
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{name!r}: one of {', '.join(sorted(SCENARIOS))}, or admission-odds-nN-kK-pP-wM"
        ) from None
    return name


def _report(result: dict[str, Any]) -> str:
    line = (
        f"seed {result['seed']}: {result['steps']} steps, "
        f"{result['virtual_seconds'] / 86400:.2f} days in {result['wall_seconds']:.2f} s "
        f"({result['virtual_per_wall']:g}x), trace {result['trace_digest'][:16]}"
    )
    for v in result["violations"]:
        line += (
            f"\n  VIOLATION {v['invariant']} at step {v['step']}: {v['detail']}"
            f"\n  replay: {v['replay']}"
        )
    return line


def main(argv: list[str] | None = None) -> int:
    from covey.sim.mutants import MUTANTS
    from covey.sim.runner import run
    from covey.sim.scenarios import SCENARIOS

    parser = argparse.ArgumentParser(prog="python -m covey.sim")
    commands = parser.add_subparsers(dest="command", required=True)
    run_cmd = commands.add_parser("run", help="run a scenario")
    run_cmd.add_argument("--scenario", required=True, type=_scenario)
    which = run_cmd.add_mutually_exclusive_group(required=True)
    which.add_argument("--seed", type=int)
    which.add_argument("--seeds", type=_seeds)
    run_cmd.add_argument("--days", type=float)
    run_cmd.add_argument("--mutant", choices=sorted(MUTANTS))
    run_cmd.add_argument("--json", action="store_true")
    run_cmd.add_argument(
        "--inviter-leaves",
        action="store_true",
        help="inviters go offline for a few hours right after each pairing",
    )
    run_cmd.add_argument(
        "--trace", action="store_true", help="print the trace's tail on a violation"
    )
    commands.add_parser("scenarios", help="list the scenarios")
    commands.add_parser("mutants", help="list the planted faults")
    args = parser.parse_args(argv)

    if args.command == "scenarios":
        for name, spec in sorted(SCENARIOS.items()):
            print(f"{name:<10} {spec.days:g} days  {spec.description}")
        print("admission-odds-nN-kK-pP-wM  2.5 days  measure: N holders, each on P% of days,")
        print("    threshold K, an M-minute veto window (simulations/recovery_odds.py)")
        return 0
    if args.command == "mutants":
        for name, what in sorted(MUTANTS.items()):
            print(f"{name:<20} {what}")
        return 0

    seeds = [args.seed] if args.seed is not None else list(args.seeds)
    failed = 0
    for seed in seeds:
        result = run(
            args.scenario,
            seed,
            days=args.days,
            mutant=args.mutant,
            inviter_leaves=args.inviter_leaves,
        )
        failed += bool(result["violations"])
        if args.json:
            if args.seed is None:  # one line per seed
                result = {k: v for k, v in result.items() if k != "metrics"}
                for v in result["violations"]:
                    v.pop("trace", None)
                print(json.dumps(result), flush=True)
            else:
                print(json.dumps(result, indent=2))
        else:
            print(_report(result), flush=True)
            if args.trace:
                for v in result["violations"]:
                    print("\n".join("    " + line for line in v["trace"]))
    if len(seeds) > 1:
        summary = {"seeds": len(seeds), "failed": failed, "passed": len(seeds) - failed}
        print(json.dumps(summary) if args.json else f"{summary['passed']} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
