"""Shared fixtures: deterministic randomness, hypothesis profiles, fresh homes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("dev", max_examples=100, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


class SeededRng:
    """A deterministic `rng(n)` for the core: BLAKE2b in counter mode over a seed."""

    def __init__(self, seed: bytes | str = b"covey-tests") -> None:
        self._seed = seed.encode() if isinstance(seed, str) else seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            block = hashlib.blake2b(
                self._counter.to_bytes(8, "big"), key=self._seed[:64], digest_size=64
            )
            out += block.digest()
            self._counter += 1
        return out[:n]


@pytest.fixture
def rng() -> Callable[[int], bytes]:
    return SeededRng()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A store directory that does not exist yet."""
    return tmp_path / "home"


#: A fixed time in Unix seconds for core tests (2026-11-01).
NOW = 1_793_491_200
