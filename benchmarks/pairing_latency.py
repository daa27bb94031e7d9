"""Pairing latency across two hosts, beside magic-wormhole on the same hosts.

Run by hand, as root (it builds two network namespaces on a bridge):
`pip install -e '.[bench]' && python benchmarks/pairing_latency.py [--runs 20]`.

covey: host 0 runs `covey invite`; host 1 runs `covey join CODE`, timed from
process start to exit (mDNS discovery, SPAKE2 inside the Noise handshake,
the add op, the group's log, the new group stored), each time with a fresh
joining device. magic-wormhole: host 0 runs a local mailbox server and
`wormhole send --text`; host 1 runs `wormhole receive CODE`, timed the same
way. The two alternate, run by run. Target: covey's join faster than
wormhole's receive. Traffic stays inside the two namespaces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.net.netns import Lan, can_make_namespaces

from _common import machine, spread_ms, table

BIN = Path(sys.executable).parent


def timed(lan: Lan, host: int, args: list[str]) -> float:
    start = time.perf_counter()
    process = lan.run(host, args)
    _, err = process.communicate(timeout=120)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {err.strip()[-300:]}")
    return elapsed


def covey_round(lan: Lan, laptop: Path, phone: Path) -> float:
    covey = str(BIN / "covey")
    subprocess.run([covey, "init", "--home", str(phone)], capture_output=True, check=True)
    inviter = lan.run(0, [covey, "invite", "-g", "family", "--json", "--home", str(laptop)])
    code = json.loads(inviter.stdout.readline())["code"]  # type: ignore[union-attr]
    try:
        return timed(lan, 1, [covey, "join", code, "--home", str(phone)])
    finally:
        inviter.communicate(timeout=60)


def wormhole_round(lan: Lan, relay: str) -> float:
    wormhole = str(BIN / "wormhole")
    sender = lan.run(0, [wormhole, "--relay-url", relay, "send", "--text", "the wifi password"])
    code = None
    for line in sender.stderr:  # type: ignore[union-attr]
        if "Wormhole code is:" in line:
            code = line.split("Wormhole code is:")[1].strip()
            break
    assert code, "wormhole send printed no code"
    try:
        return timed(lan, 1, [wormhole, "--relay-url", relay, "receive", code])
    finally:
        sender.communicate(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    reason = can_make_namespaces()
    if reason:
        sys.exit(f"cannot run: {reason}")
    if not (BIN / "wormhole").exists():
        sys.exit("install the bench extra first: pip install -e '.[bench]'")
    lan = Lan(2)
    mailbox = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            root.chmod(0o700)
            laptop = root / "laptop"
            covey = str(BIN / "covey")
            subprocess.run([covey, "init", "--home", str(laptop)], capture_output=True, check=True)
            subprocess.run(
                [covey, "group", "create", "family", "--home", str(laptop)],
                capture_output=True,
                check=True,
            )
            mailbox = lan.run(
                0,
                [
                    str(BIN / "twist"),
                    "wormhole-mailbox",
                    f"--port=tcp:4000:interface={lan.addresses[0]}",
                    f"--channel-db={root / 'channel.sqlite'}",
                ],
            )
            time.sleep(2)
            relay = f"ws://{lan.addresses[0]}:4000/v1"
            covey_times, wormhole_times = [], []
            for run in range(args.runs):
                covey_times.append(covey_round(lan, laptop, root / f"phone{run}"))
                wormhole_times.append(wormhole_round(lan, relay))
    finally:
        if mailbox is not None:
            mailbox.terminate()
            mailbox.communicate(timeout=20)
        lan.close()
    print(f"Pairing across two network namespaces, {args.runs} runs each, alternating; {machine()}")
    print()
    print(
        table(
            ["what (new process to exit)", "median ms", "p10 ms", "p90 ms"],
            [
                [
                    "covey join CODE (mDNS, SPAKE2 in Noise_XXpsk3, add, log, store)",
                    *spread_ms(covey_times),
                ],
                [
                    "wormhole receive CODE (local mailbox server, a short text)",
                    *spread_ms(wormhole_times),
                ],
            ],
        )
    )
    faster = statistics.median(covey_times) < statistics.median(wormhole_times)
    print(f"\ncovey's join is {'faster' if faster else 'SLOWER'} than wormhole's receive (median).")


if __name__ == "__main__":
    main()
