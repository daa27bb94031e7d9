"""How fast `covey --help` starts, beside the bare interpreter it runs on.

Run by hand (not a test): `python benchmarks/cli_startup.py [--runs N]`.
Prints one table: the median and spread of wall time for each command, and
the ratio to the bare `python -c pass` measured in the same run (these shared
machines are noisy; the ratio holds better than the absolute times).
Target: `covey --help` under 150 ms median on the 2-core reference machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_MS = 150.0


def covey_command() -> list[str]:
    script = Path(sys.executable).parent / "covey"
    return [str(script)] if script.exists() else [sys.executable, "-m", "covey"]


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Wall time in milliseconds of each of `runs` runs, after one warm-up run."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    subprocess.run(argv, capture_output=True, check=True, env=env)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env=env)
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    runs = parser.parse_args().runs

    rows = [
        ("python -c pass (the floor)", [sys.executable, "-c", "pass"]),
        ("python -c 'import click'", [sys.executable, "-c", "import click"]),
        ("covey --version", [*covey_command(), "--version"]),
        ("covey --help", [*covey_command(), "--help"]),
    ]
    results = [(label, time_runs(argv, runs)) for label, argv in rows]
    floor = statistics.median(results[0][1])

    print(f"CLI start-up, {runs} runs each; {platform.python_version()}, {os.cpu_count()} cores")
    print()
    print("| command | median ms | p10 ms | p90 ms | x bare python |")
    print("|---|---:|---:|---:|---:|")
    for label, times in results:
        deciles = statistics.quantiles(times, n=10)
        median = statistics.median(times)
        print(
            f"| {label} | {median:.1f} | {deciles[0]:.1f} | {deciles[-1]:.1f} "
            f"| {median / floor:.2f} |"
        )
    help_median = statistics.median(results[-1][1])
    verdict = "meets" if help_median < TARGET_MS else "MISSES"
    print()
    print(f"`covey --help` median {help_median:.1f} ms: {verdict} the {TARGET_MS:.0f} ms target.")


if __name__ == "__main__":
    main()
