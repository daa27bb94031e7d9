"""Seeded randomness for the simulator that gives the same numbers on every machine.

Everything random in a simulation (delays, faults, uptime, users' choices,
and every node's `rng`) comes from BLAKE2b in counter mode over the seed and
a label, so a seed replays exactly: no Mersenne Twister whose helpers changed
between Python versions, no hash randomisation.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Stream:
    """An endless stream of bytes from (seed, label); also a node's `rng(n)`."""

    def __init__(self, seed: int, label: str) -> None:
        self._key = hashlib.blake2b(f"{seed}:{label}".encode(), digest_size=32).digest()
        self._counter = 0
        self._buffer = b""

    def __call__(self, n: int) -> bytes:
        while len(self._buffer) < n:
            block = hashlib.blake2b(self._counter.to_bytes(8, "big"), key=self._key, digest_size=64)
            self._buffer += block.digest()
            self._counter += 1
        out, self._buffer = self._buffer[:n], self._buffer[n:]
        return out


class Rand:
    """Uniform choices drawn from a `Stream`."""

    def __init__(self, seed: int, label: str) -> None:
        self.stream = Stream(seed, label)

    def random(self) -> float:
        """A float in [0, 1)."""
        return int.from_bytes(self.stream(7), "big") / float(1 << 56)

    def chance(self, p: float) -> bool:
        return p > 0 and self.random() < p

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def below(self, n: int) -> int:
        """An integer in [0, n)."""
        return min(n - 1, int(self.random() * n))

    def choice(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def exponential(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.random())
