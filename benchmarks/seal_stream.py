"""Sealing and opening a large stream, beside bare libsodium secretstream.

Run by hand: `python benchmarks/seal_stream.py [--mib 1024]`.

Throughput: N MiB of data in 64 KiB blocks through covey's `Sealer` and
`Opener` (in memory, so the disk does not blur the figure), beside bare
secretstream push and pull of the same blocks, measured in the same run,
interleaved. covey's stream adds, per object, two signatures and a key wrap,
and per byte a BLAKE2b digest that the trailer signs (so a member cannot
reuse another's header with other content). The commands hash on a second
thread while the first encrypts (`covey.digests`); the single-thread figure
is shown too. Target: at least 0.8 of bare secretstream's throughput.

Peak memory: `covey seal` and `covey open` on an N MiB file, each in a child
process, reporting its peak resident set; beside it, the peak of a child
that only imports covey and opens the store. Target: under 64 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nacl.bindings as sodium

sys.path.insert(0, str(Path(__file__).parent))
from _common import machine, table
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.seal import CHUNK_SIZE, Opener, Sealer
from covey.digests import BackgroundDigest

NOW = 1_793_491_200
TARGET_RATIO = 0.8
TARGET_MB = 64


def covey_seal(group: Group, blocks: int, block: bytes) -> bytes:
    sealer = Sealer(group, b"", os.urandom)
    out = [sealer.header]
    for _ in range(blocks):
        out += sealer.update(block)
    out += sealer.finish()
    return b"".join(out)


def bare_push(blocks: int, block: bytes) -> None:
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_push(state, os.urandom(32))
    tag = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
    for _ in range(blocks):
        sodium.crypto_secretstream_xchacha20poly1305_push(state, block, None, tag)


def peak_rss(script: str, *args: str) -> int:
    """Peak resident set (VmHWM) of a child running `script`, in bytes.

    VmHWM belongs to the process's address space, which exec replaces, so it
    counts only the child (ru_maxrss would carry this process's peak over).
    """
    probe = (
        "import runpy, sys\n"
        f"sys.argv = {[script, *args]!r}\n"
        "try:\n    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exit:\n    assert not exit.code, exit.code\n"
        "status = open('/proc/self/status').read()\n"
        "print([l.split()[1] for l in status.splitlines() if l.startswith('VmHWM')][0])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    blocks = args.mib * 1024 * 1024 // CHUNK_SIZE
    block = os.urandom(CHUNK_SIZE)
    me = create_identity("bench", NOW, os.urandom)
    group = Group.create(me, "bench", "forward", NOW, os.urandom)

    # Throughput, in memory. Sealing N MiB at once would hold N MiB of output:
    # seal and discard block by block instead.
    def seal_only(digest_factory=None) -> None:  # type: ignore[no-untyped-def]
        digest = digest_factory() if digest_factory else None
        sealer = Sealer(group, b"", os.urandom, digest)
        for _ in range(blocks):
            sealer.update(block)
        sealer.finish()

    sealed_one = covey_seal(group, 64, block)  # 4 MiB object, opened blocks/64 times

    def open_only(digest_factory=None) -> None:  # type: ignore[no-untyped-def]
        for _ in range(blocks // 64):
            digest = digest_factory() if digest_factory else None
            opener = Opener(lambda _g: group, digest)
            position = 0
            while wanted := opener.next_size():  # as `covey open` reads a file
                opener.feed(sealed_one[position : position + wanted])
                position += wanted
            opener.close()

    def push_only() -> None:
        bare_push(blocks, block)

    # The bare counterpart of open_only: a 4 MiB stream pulled blocks/64 times.
    key = os.urandom(32)
    push_state = sodium.crypto_secretstream_xchacha20poly1305_state()
    header = sodium.crypto_secretstream_xchacha20poly1305_init_push(push_state, key)
    stream = [
        sodium.crypto_secretstream_xchacha20poly1305_push(push_state, block, None, 0)
        for _ in range(64)
    ]

    def bare_pull() -> None:
        for _ in range(blocks // 64):
            state = sodium.crypto_secretstream_xchacha20poly1305_state()
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, header, key)
            for ciphertext in stream:
                sodium.crypto_secretstream_xchacha20poly1305_pull(state, ciphertext, None)

    runs = {
        "seal": seal_only,
        "seal2": lambda: seal_only(BackgroundDigest),
        "push": push_only,
        "open": open_only,
        "open2": lambda: open_only(BackgroundDigest),
        "pull": bare_pull,
    }
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, func in runs.items():
            start = time.perf_counter()
            func()
            times[name].append(time.perf_counter() - start)
    best = {k: min(v) for k, v in times.items()}
    mib = args.mib

    def rate(seconds: float) -> str:
        return f"{mib / seconds:,.0f}"

    print(f"{mib:,} MiB in 64 KiB chunks, best of {args.repeats} interleaved runs; {machine()}")
    print()
    print(
        table(
            ["what", "MiB/s", "x bare"],
            [
                [
                    "covey seal, digest on a 2nd thread (as `covey seal`)",
                    rate(best["seal2"]),
                    f"{best['push'] / best['seal2']:.2f}",
                ],
                [
                    "covey seal, one thread",
                    rate(best["seal"]),
                    f"{best['push'] / best['seal']:.2f}",
                ],
                ["bare secretstream push", rate(best["push"]), "1.00"],
                [
                    "covey open, digest on a 2nd thread (as `covey open`)",
                    rate(best["open2"]),
                    f"{best['pull'] / best['open2']:.2f}",
                ],
                [
                    "covey open, one thread",
                    rate(best["open"]),
                    f"{best['pull'] / best['open']:.2f}",
                ],
                ["bare secretstream pull", rate(best["pull"]), "1.00"],
            ],
        )
    )

    # Peak memory of the real commands on a real file.
    covey = str(Path(sys.executable).parent / "covey")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "COVEY_HOME": str(home)}
        env.pop("COVEY_PASSPHRASE", None)
        subprocess.run(
            [covey, "init"], env=env, capture_output=True, check=True, stdin=subprocess.DEVNULL
        )
        subprocess.run(
            [covey, "group", "create", "bench"], env=env, capture_output=True, check=True
        )
        data = Path(tmp) / "data.bin"
        with data.open("wb") as out:
            for _ in range(blocks):
                out.write(block)
        os.environ["COVEY_HOME"] = str(home)
        peaks = {
            "covey id (baseline: start-up and store)": peak_rss(covey, "id", "--json"),
            f"covey seal, {mib:,} MiB file": peak_rss(
                covey, "seal", "-g", "bench", str(data), "-o", str(data) + ".covey", "--json"
            ),
            f"covey open, {mib:,} MiB file": peak_rss(
                covey, "open", str(data) + ".covey", "-o", str(data) + ".out", "--json"
            ),
        }
        same = data.read_bytes() == Path(str(data) + ".out").read_bytes() if mib <= 64 else None
        if same is not None:
            assert same, "the opened file must equal the original"
    print()
    print(table(["process", "peak RSS MB"], [[k, f"{v / 1e6:.1f}"] for k, v in peaks.items()]))
    seal_ok = best["push"] / best["seal2"] >= TARGET_RATIO
    open_ok = best["pull"] / best["open2"] >= TARGET_RATIO
    memory_ok = max(peaks.values()) < TARGET_MB * 1e6
    print()
    print(
        json.dumps(
            {
                "throughput_target_met": {"seal": seal_ok, "open": open_ok},
                "memory_target_met": memory_ok,
            }
        )
    )


if __name__ == "__main__":
    main()
