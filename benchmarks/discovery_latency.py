"""Discovery latency: from an advert's start to another host seeing it.

Run by hand, as root (two network namespaces on a bridge):
`python benchmarks/discovery_latency.py [--runs 20]`.

Host 1 browses for `_covey._tcp.local.` and waits for a fresh tag; host 0
starts an advert carrying it. Both print CLOCK_MONOTONIC (one clock for the
whole machine, namespaces included), so the difference is the latency:
advert registration without probing, the announcement, the browser's
resolution of the TXT record. Beside it, the same measured for an advert
already up when the browser starts (what `covey join` usually meets).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from tests.net.netns import Lan, can_make_namespaces

from _common import machine, spread_ms, table

ADVERTISE = """
import anyio, sys, time
from covey.core.discovery import padded_advert
from covey.entropy import system_rng
from covey.net.discovery import Advertiser, open_zeroconf
async def main():
    zc = open_zeroconf()
    await anyio.sleep(float(sys.argv[2]))
    advert = Advertiser(zc, 7777, padded_advert([bytes.fromhex(sys.argv[1])], system_rng))
    print(time.monotonic(), flush=True)
    await advert.start()
    await anyio.sleep(float(sys.argv[3]))
    await advert.stop()
    await zc.async_close()
anyio.run(main)
"""

BROWSE = """
import anyio, sys, time
from covey.net.discovery import Browser, open_zeroconf
async def main():
    zc = open_zeroconf()
    browser = Browser(zc)
    start = time.monotonic()
    await browser.start()
    wanted = bytes.fromhex(sys.argv[1])
    await browser.wait_for(lambda s: wanted in s.tags, 20)
    print(start, time.monotonic(), flush=True)
    await browser.stop()
    await zc.async_close()
anyio.run(main)
"""


def one(lan: Lan, advert_first: bool) -> float:
    tag = secrets.token_hex(8)
    if advert_first:
        advertiser = lan.python(0, ADVERTISE, tag, "0", "5")
        float(advertiser.stdout.readline())  # type: ignore[union-attr]
        time.sleep(1.0)  # the advert is up and announced
        browser = lan.python(1, BROWSE, tag)
        out, _ = browser.communicate(timeout=30)
        started, seen = map(float, out.split())
        advertiser.kill()
        advertiser.communicate()
        return seen - started
    browser = lan.python(1, BROWSE, tag)
    time.sleep(1.0)  # the browser is up
    advertiser = lan.python(0, ADVERTISE, tag, "0.2", "3")
    announced = float(advertiser.stdout.readline())  # type: ignore[union-attr]
    out, _ = browser.communicate(timeout=30)
    seen = float(out.split()[1])
    advertiser.kill()
    advertiser.communicate()
    return seen - announced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    reason = can_make_namespaces()
    if reason:
        sys.exit(f"cannot run: {reason}")
    lan = Lan(2)
    try:
        new_advert = [one(lan, advert_first=False) for _ in range(args.runs)]
        existing = [one(lan, advert_first=True) for _ in range(args.runs)]
    finally:
        lan.close()

    def row(label: str, times: list[float]) -> list[str]:
        return [label, *spread_ms(times)]

    print(f"mDNS discovery across two network namespaces, {args.runs} runs each; {machine()}")
    print()
    print(
        table(
            ["what", "median ms", "p10 ms", "p90 ms"],
            [
                row("a new advert, from its start to being seen", new_advert),
                row("an existing advert, from the browser's start", existing),
            ],
        )
    )


if __name__ == "__main__":
    main()
