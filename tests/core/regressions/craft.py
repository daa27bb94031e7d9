"""Helpers for crafting arbitrary (signed) ops in a tests.harness World."""
from __future__ import annotations

import sys
sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[3]))

from covey.core import keys
from covey.core.ops import OpContent, Remove, Rotate, SetPolicy, SetRole, Add, sign_op
from tests.harness import World, summary
from tests.conftest import SeededRng

_rng = SeededRng("craft")


def craft(world: World, who: int, parents, seq: int, body, t: int | None = None):
    me = world.identities[who]
    content = OpContent(world.replicas[0].id, tuple(sorted(set(parents))), seq,
                        t if t is not None else world.tick(), body)
    op = sign_op(content, me.device_id.raw, me.secrets.signing_seed)
    world.written.append(op)
    return op


def rotation_for(world: World, who: int, members):
    me = world.identities[who]
    recips = {world.id(k): world.identities[k].record.box_key for k in members}
    rot, key = keys.new_rotation(me.secrets.box_secret, recips, _rng)
    return rot


def rotate_body(world, who, members):
    return Rotate(rotation_for(world, who, members), ())


def remove_body(world, who, target, members_after):
    return Remove(world.id(target), rotation_for(world, who, members_after), ())


def add_body(world, who, target, role, members_after):
    ident = world.identities[target]
    return Add(ident.record, ident.record_bytes, role, rotation_for(world, who, members_after), ())


def policy_body(h="forward"):
    return SetPolicy(h)


def recv(group, op):
    try:
        return group.log.receive_op(op).outcome
    except Exception as exc:  # noqa: BLE001
        return f"refused: {type(exc).__name__}: {exc}"


def idx(world, device_id: bytes) -> int:
    for k in range(world.n):
        if world.id(k) == device_id:
            return k
    return -1
