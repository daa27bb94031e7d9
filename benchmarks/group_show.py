"""`covey group show` on a group with a long log, beside `covey --help`.

Run by hand: `python benchmarks/group_show.py [--ops 100000] [--runs 9]`.

A store is built in a temporary home the way a device fills one: a group
that grew by adds (one founder, 8 members) and then wrote OPS ops (a mix
of set-policy and rotations), saved as they came in batches. (The group's
history is `forward`: building a `shared` one of 10,000 epochs costs the
history-gap check per rotation, which is its own benchmark's business.) Then
`covey group show` and `covey --help` run as processes, interleaved, and
the table shows their medians and the ratio. Target: `group show` at most
2 times `covey --help` at 100,000 ops (it reads the view the store keeps
beside the ops: no replay, no passphrase). Beside it, for scale: loading
the same group with its keys (`Store.load_group`: parsing every op, no
signature checked again) and a full replay with every signature checked.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, machine, table
from cli_startup import covey_command
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.store.sqlite import Store

NOW = 1_793_491_200
TARGET = 2.0
SAVE_EVERY = 5_000


async def build(home: Path, ops: int) -> None:
    rng = SeededRng("show")
    async with Store.open(home, create=True) as store:
        me = create_identity("laptop", NOW, rng)
        await store.create_identity(me, None, rng, opslimit=1, memlimit=8192)
        _, data_key = await store.open_identity(None)
        group = Group.create(me, "family", "forward", NOW, rng)
        await store.create_group(group, data_key, rng)
        for i in range(8):
            other = create_identity(f"d{i}", NOW, SeededRng(f"d{i}"))
            group.add(other.record_bytes, "member", NOW, rng)
        for i in range(ops - len(group.log)):
            if i % 10 == 0:
                group.rotate(NOW + i, rng)
            else:
                group.set_policy("forward", NOW + i)
            if i % SAVE_EVERY == 0:
                await store.save_group(group, data_key, rng)
        await store.save_group(group, data_key, rng)


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, capture_output=True, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        started = time.perf_counter()
        anyio.run(build, home, args.ops)
        built = time.perf_counter() - started
        env = dict(os.environ, COVEY_HOME=str(home), PYTHONDONTWRITEBYTECODE="1")
        show = [*covey_command(), "group", "show", "family"]
        helps = [*covey_command(), "--help"]
        timed(show, env)  # warm-up (and the view is checked against the ops)
        timed(helps, env)
        runs: dict[str, list[float]] = {"show": [], "help": []}
        for _ in range(args.runs):
            runs["show"].append(timed(show, env))
            runs["help"].append(timed(helps, env))

        async def load() -> float:
            async with Store.open(home) as store:
                group_id, _ = await store.find_group("family")
                me, data_key = await store.open_identity(None)
                start = time.perf_counter()
                await store.load_group(group_id, me, data_key)
                return time.perf_counter() - start

        async def replay() -> float:
            async with Store.open(home) as store:
                group_id, _ = await store.find_group("family")
                start = time.perf_counter()
                await store.load_log(group_id, verify=True)
                return time.perf_counter() - start

        loading = anyio.run(load)
        replaying = anyio.run(replay)
    show_ms = statistics.median(runs["show"]) * 1000
    help_ms = statistics.median(runs["help"]) * 1000
    print(f"`covey group show` on a group of {args.ops:,} ops; {machine()}")
    print(f"(store built in {built:.0f} s)")
    print()
    rows = [
        ["covey --help", f"{help_ms:.0f}", "1.00"],
        ["covey group show", f"{show_ms:.0f}", f"{show_ms / help_ms:.2f}"],
        ["load_group (in process: parse, no verify)", f"{loading * 1000:.0f}", ""],
        ["full replay, every signature checked", f"{replaying * 1000:.0f}", ""],
    ]
    print(table(["what", "median ms", "x covey --help"], rows))
    print()
    verdict = "meets" if show_ms <= TARGET * help_ms else "MISSES"
    print(f"target: group show <= {TARGET} x covey --help: {verdict}")


if __name__ == "__main__":
    main()
