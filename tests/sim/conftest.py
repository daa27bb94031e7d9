"""Print the fresh random seeds the simulator tests ran, so any run replays."""

from __future__ import annotations

from typing import Any

#: "python -m covey.sim run ..." lines, appended by the tests that draw seeds.
SEEDS_RUN: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SEEDS_RUN:
        terminalreporter.section("simulator: fresh seeds this run")
        for line in SEEDS_RUN:
            terminalreporter.write_line(line)
