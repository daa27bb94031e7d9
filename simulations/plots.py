"""Figures from `results/*.json` (run `baselines.py` first). Needs matplotlib:

pip install -e '.[sim]'
python simulations/plots.py
python simulations/plots.py --only recovery   # (after recovery_odds.py)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def key_delay_cdf() -> None:
    data = json.loads((RESULTS / "key_delay.json").read_text())
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for scenario, result in data.items():
        delays = [max(d, 1.0) for d in result["delays"]]  # (at once: drawn at 1 s)
        waiting = result["never_got_key"]
        total = len(delays) + waiting
        if not total:
            continue
        ys = [(i + 1) / total for i in range(len(delays))]
        ax.step(delays, ys, where="post", label=f"{scenario} ({total} joins)")
    ax.set_xscale("log")
    ax.set_xlabel("seconds from joining until holding the current key (log)")
    ax.set_ylabel("fraction of joins")
    ax.set_ylim(0, 1.02)
    ax.set_title("Time to the current key, inviter offline right after pairing")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(HERE / "key_delay_cdf.png", dpi=120)


def partition_bars() -> None:
    data = json.loads((RESULTS / "partition.json").read_text())
    labels = list(data)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, metric, title, scale in (
        (left, "syncs", "sync sessions to converge", 0.5),  # (each ends on both sides)
        (right, "kilobytes", "kilobytes sent to converge", 1.0),
    ):
        p50 = [data[k][metric].get("p50", 0) * scale for k in labels]
        p90 = [data[k][metric].get("p90", 0) * scale for k in labels]
        xs = range(len(labels))
        ax.bar([x - 0.2 for x in xs], p50, width=0.4, label="median")
        ax.bar([x + 0.2 for x in xs], p90, width=0.4, label="90th percentile")
        ax.set_xticks(list(xs), [f"split {k}" for k in labels])
        ax.set_title(title)
        ax.grid(axis="y", alpha=0.3)
    left.legend()
    fig.tight_layout()
    fig.savefig(HERE / "partition_heal.png", dpi=120)


def relay_cdfs() -> None:
    """With and without a relay: time to the current key (inviter offline), and
    time for a removal's new key to reach each remaining member."""
    data = json.loads((RESULTS / "relays.json").read_text())
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for scenario, result in data.items():
        label = "with a relay" if "relay" in scenario else "LAN only"
        for ax, key, missing in (
            (left, "delays", result["never_got_key"]),
            (right, "removal_delays", 0),
        ):
            delays = [max(d, 1.0) for d in result[key]]  # (at once: drawn at 1 s)
            total = len(delays) + missing
            if not total:
                continue
            ys = [(i + 1) / total for i in range(len(delays))]
            ax.step(delays, ys, where="post", label=f"{label} ({total})")
    left.set_title("new device: time to the current key\n(inviter offline right after pairing)")
    right.set_title("removal: time until each remaining\nmember holds the new key")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("seconds (log)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    left.set_ylabel("fraction")
    left.set_ylim(0, 1.02)
    fig.tight_layout()
    fig.savefig(HERE / "relay_cdf.png", dpi=120)


def recovery_odds() -> None:
    """Simulated P[an offline admission completes within W + 24 h] beside the model."""
    data = json.loads((RESULTS / "recovery_odds.json").read_text())
    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(7, 4.4))
    shapes = sorted({(r["holders"], r["threshold"]) for r in rows})
    for (n, k), color in zip(shapes, ["C0", "C1", "C2", "C3"], strict=False):
        mine = sorted((r for r in rows if (r["holders"], r["threshold"]) == (n, k)), key=_p)
        ps = [r["p_day"] for r in mine]
        runs = mine[0]["runs"]
        sims = [r["simulated"] for r in mine]
        ax.plot(ps, sims, "o-", color=color, label=f"K={k} of N={n}: sim")
        # The binomial model, drawn smooth: a holder counts if on on the ask's day
        # (dashed), or on either of the two days the deadline touches (dotted: a bound).
        fine = [i / 100 for i in range(101)]
        one_day = [_binomial(n, k, p) for p in fine]
        two_days = [_binomial(n, k, 1 - (1 - p) ** 2) for p in fine]
        ax.plot(fine, one_day, "--", color=color, alpha=0.7, label=f"K={k} of N={n}: model")
        ax.plot(fine, two_days, ":", color=color, alpha=0.5)
    ax.set_xlabel("P: chance a holder's device is on on a given day (for the day, ~08-22 h)")
    ax.set_ylabel(f"P[admitted within {data['window_minutes']} min + 24 h]")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(0, 1)
    ax.set_title(
        f"Offline admission: simulator ({runs} seeds per point) vs binomial model\n"
        "dashed: a holder on on the ask's day; dotted: on either day (a bound)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(HERE / "recovery_odds.png", dpi=120)


def _p(row: dict[str, float]) -> float:
    return row["p_day"]


def _binomial(n: int, k: int, p: float) -> float:
    from math import comb

    return sum(comb(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


if __name__ == "__main__":
    if sys.argv[1:] == ["--only", "recovery"]:
        recovery_odds()
        print("wrote recovery_odds.png")
        sys.exit(0)
    key_delay_cdf()
    partition_bars()
    relay_cdfs()
    recovery_odds()
    print("wrote key_delay_cdf.png, partition_heal.png, relay_cdf.png and recovery_odds.png")
