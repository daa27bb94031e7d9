"""Shared helpers for the benchmark scripts (timing, tables, a seeded rng)."""

from __future__ import annotations

import hashlib
import os
import platform
import statistics
import time
from collections.abc import Callable


class SeededRng:
    """Deterministic bytes for building fixtures (never for keys that matter)."""

    def __init__(self, seed: str) -> None:
        self._seed = seed.encode()
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            out += hashlib.blake2b(self._counter.to_bytes(8, "big"), key=self._seed).digest()
            self._counter += 1
        return out[:n]


def best_of(repeats: int, func: Callable[[], object]) -> float:
    """The fastest of `repeats` runs, in seconds (the least disturbed by noise)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def interleaved(repeats: int, **funcs: Callable[[], object]) -> dict[str, float]:
    """Run each function `repeats` times, interleaved; the median time of each.

    Interleaving puts the measured code and its bare primitive under the same
    load, so their ratio means something on a shared machine.
    """
    times: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def spread_ms(times: list[float]) -> list[str]:
    """Median, 10th and 90th percentile of times in seconds, as milliseconds."""
    deciles = statistics.quantiles(times, n=10)
    return [f"{t * 1000:.0f}" for t in (statistics.median(times), deciles[0], deciles[-1])]


def machine() -> str:
    system = f"{platform.system()} {platform.machine()}"
    return f"Python {platform.python_version()}, {system}, {os.cpu_count()} cores"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
