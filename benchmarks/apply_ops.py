"""Verifying and applying ops from scratch, beside bare Ed25519 verification.

Run by hand: `python benchmarks/apply_ops.py [--ops 100000]`.

A group of 10 admins writes N ops in one causal chain, round-robin by author:
nine in ten `set_policy` (small ops), one in ten a `rotate` for all ten
members. A fresh replica (`GroupLog`) then receives them all: each op is
parsed strictly, its signature verified, its sequence number and its
author's rights checked, and the state extended. Beside it, in the same run:
bare Ed25519 verification (libsodium's crypto_sign_open through PyNaCl) of
the same N detached signatures. Target: at most 1.4 times the bare verification.

Two covey figures: with Python's default garbage collection, and with the
cyclic collector paused for the replay, which is how `covey.store` loads a
log (`covey.gcpause`; a replay makes no reference cycles).

Unwrapping this device's copy of each rotation's key is a separate cost (one
crypto_box_open per rotation for a member); it is not part of this figure.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nacl.bindings as sodium

sys.path.insert(0, str(Path(__file__).parent))
from _common import SeededRng, machine, table
from covey.core import keys
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.log import GroupLog
from covey.core.ops import OpContent, Rotate, SetPolicy, sign_op
from covey.gcpause import collector_paused

NOW = 1_793_491_200
TARGET = 1.4
AUTHORS = 10


def build(count: int) -> tuple[bytes, list[bytes]]:
    rng = SeededRng("apply")
    admins = [create_identity(f"admin-{i}", NOW, rng) for i in range(AUTHORS)]
    founder = Group.create(admins[0], "bench", "forward", NOW, os.urandom)
    for other in admins[1:]:
        founder.add(other.record_bytes, "admin", NOW, os.urandom)
    raws = [op.raw for op in founder.log.order]
    head = founder.log.order[-1].id
    seqs = {a.device_id.raw: 0 for a in admins}
    for op in founder.log.order:
        seqs[op.author] = max(seqs.get(op.author, 0), op.seq)
    boxes = {a.device_id.raw: a.record.box_key for a in admins}
    policy = "forward"
    while len(raws) < count:
        author = admins[len(raws) % AUTHORS]
        me = author.device_id.raw
        seqs[me] += 1
        if len(raws) % 10 == 0:
            rotation, _ = keys.new_rotation(author.secrets.box_secret, boxes, os.urandom)
            body = Rotate(rotation, ())
        else:
            policy = "shared" if policy == "forward" else "forward"
            body = SetPolicy(policy)  # type: ignore[assignment]
        op = sign_op(
            OpContent(founder.id, (head,), seqs[me], NOW, body), me, author.secrets.signing_seed
        )
        raws.append(op.raw)
        head = op.id
    return founder.id, raws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    print(f"building {args.ops:,} ops ...", file=sys.stderr)
    group_id, raws = build(args.ops)
    from covey.core.ops import parse_op

    parsed = [parse_op(raw) for raw in raws]
    signing_keys = {}
    log = GroupLog(group_id)
    for raw in raws:
        log.receive(raw)
    assert log.state is not None
    assert len(log.state.applied) == len(raws), "every op must apply"
    signing_keys = {d: r.signing_key for d, r in log.devices.items()}
    prefix = b"covey/v1/envelope\x00"
    # Detached signatures, as stored: verifying one means joining it to its
    # message, as PyNaCl's own VerifyKey.verify does.
    signed = [
        (
            op.signature,
            prefix + op.signed,
            signing_keys[op.author],
        )
        for op in parsed
    ]

    def covey_apply() -> None:
        replica = GroupLog(group_id)
        for raw in raws:
            replica.receive(raw)

    def covey_paused() -> None:
        with collector_paused():
            covey_apply()

    def bare_verify() -> None:
        for signature, message, public in signed:
            sodium.crypto_sign_open(signature + message, public)

    funcs = {"covey": covey_apply, "paused": covey_paused, "bare": bare_verify}
    results: dict[str, list[float]] = {name: [] for name in funcs}
    for _ in range(args.repeats):
        for name, func in funcs.items():
            start = time.perf_counter()
            func()
            results[name].append(time.perf_counter() - start)
    best = {name: min(times) for name, times in results.items()}
    n = len(raws)

    def row(label: str, seconds: float) -> list[str]:
        return [
            label,
            f"{seconds:.2f}",
            f"{seconds / n * 1e6:.1f}",
            f"{n / seconds:,.0f}",
            f"{seconds / best['bare']:.2f}",
        ]

    print(f"Verify and apply {n:,} ops from scratch, best of {args.repeats} interleaved runs.")
    print(machine())
    print()
    print(
        table(
            ["what", "seconds", "µs per op", "ops per second", "x bare"],
            [
                row("covey: parse, verify, check, apply", best["covey"]),
                row("covey, collector paused (as the store loads)", best["paused"]),
                row("bare Ed25519 verify (crypto_sign_open)", best["bare"]),
            ],
        )
    )
    ratio = best["paused"] / best["bare"]
    verdict = "meets" if ratio <= TARGET else "MISSES"
    print(f"\ncovey (as the store loads) takes {ratio:.2f}x bare verification:", end=" ")
    print(f"{verdict} the {TARGET}x target.")


if __name__ == "__main__":
    main()
