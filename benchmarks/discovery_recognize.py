"""What recognizing a new advert costs a device, by the number of devices it knows.

Run by hand: `python benchmarks/discovery_recognize.py`.

Every advert has its own random salt, which enters every tag, so a looker
cannot keep a table of the tags it expects: for each advert it has not
seen before it hashes the advert's salt for every device it knows, in its
hour and the hours either side (`Discovery.recognize`). Beside it, in the
same run and interleaved: the bare keyed BLAKE2b calls of the same count
(hashlib, one call each, key and data as the tag's), and a look at an
advert seen before (mDNS refreshes adverts).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, interleaved, machine, table
from covey.core import crypto
from covey.core.discovery import SKEW_HOURS, Discovery, decode_advert
from covey.core.identity import create_identity

NOW = 1_793_491_200
KNOWN = [10, 100, 1000]
ADVERTS = 50
REPEATS = 5


def measure(count: int) -> list[str]:
    me = create_identity("me", NOW, SeededRng("me"))
    records = [create_identity(f"k{i}", NOW, SeededRng(f"k{i}")).record for i in range(count)]
    known = {r.device_id.raw: r for r in records}
    looker = Discovery(me)
    stranger = Discovery(records[0])
    rng = SeededRng(f"adverts-{count}")
    looker.recognize(decode_advert(stranger.advert([], NOW, rng)), known, NOW)  # pair keys, hour
    hashes = count * (2 * SKEW_HOURS + 1)
    key, data = bytes(32), bytes(8 + 32 + 16)

    fresh = [decode_advert(stranger.advert([], NOW, rng)) for _ in range(REPEATS * ADVERTS)]

    def new_adverts() -> None:
        for _ in range(ADVERTS):  # each with a fresh salt: never seen before
            looker.recognize(fresh.pop(), known, NOW)

    seen = decode_advert(stranger.advert([], NOW, rng))
    looker.recognize(seen, known, NOW)

    def bare() -> None:
        for _ in range(ADVERTS):
            for _ in range(hashes):
                crypto.blake2b(data, crypto.HashDomain.DISCOVERY_TAG, size=8, key=key)

    def again() -> None:
        for _ in range(ADVERTS):
            looker.recognize(seen, known, NOW)

    t = interleaved(REPEATS, new=new_adverts, bare=bare, again=again)
    ms = {name: t[name] / ADVERTS * 1000 for name in t}
    return [
        f"{count:,}",
        f"{hashes:,}",
        f"{ms['new']:.2f}",
        f"{ms['bare']:.2f}",
        f"{ms['new'] / ms['bare']:.2f}",
        f"{ms['again'] * 1000:.1f}",
    ]


def main() -> None:
    print(f"# discovery: recognizing an advert ({machine()})")
    rows = [measure(n) for n in KNOWN]
    headers = [
        "known devices",
        "hashes",
        "new advert ms",
        "bare BLAKE2b x hashes ms",
        "ratio",
        "seen before µs",
    ]
    print(table(headers, rows))


if __name__ == "__main__":
    main()
