"""What a node tells about a group: its state as JSON-friendly values.

The node's replies to commands carry this document, so a command that went
through the running node's control socket can show the result without
opening the store (or asking for its passphrase). `changes` says what a
sync changed in a group (members, roles, the key, the policy, and who did
it), for the node's `synced` notification.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from covey.core import relaylink, roster
from covey.core.group import Group
from covey.core.identity import DeviceId
from covey.core.log import GroupLog
from covey.core.membership import ClaimState
from covey.core.ops import Add, AddRelay, Complete, Remove, SetRole
from covey.errors import NotAMember


def describe(group: Group) -> dict[str, Any]:
    """A group's state: members, roles, the current epoch, heads, notices."""
    document = describe_log(group.log, group.me.device_id.raw)
    document["epoch"]["key_held"] = group.state.current_epoch.id in group.keys
    return document


def describe_log(log: GroupLog, me: bytes) -> dict[str, Any]:
    """The same without the keys (what a store keeps beside the ops, `key_held` aside)."""
    state = log.state
    if state is None:
        raise NotAMember("this device holds none of that group's ops yet")
    used = state.relays
    return {
        "group_id": log.group_id.hex(),
        "name": state.name,
        "history": state.history,
        "members": [
            {
                "device_id": str(DeviceId(device)),
                "name": member.record.name,
                "role": member.role,
                "safety_words": member.record.safety_words,
                "this_device": device == me,
            }
            for device, member in sorted(state.members.items(), key=lambda item: item[1].seniority)
        ],
        "epoch": {
            "id": state.current_epoch.id.hex(),
            "number": len(state.epochs),
            "needs_healing": state.needs_healing,
        },
        "heads": sorted(head.hex() for head in log.heads),
        "ops": len(log),
        "equivocators": [str(DeviceId(device)) for device in state.equivocators],
        "notices": list(state.notices),
        "relays": [
            {
                **relay_view(relay),
                "inbox": state.inbox_of(me, key) is not None,
                "used": key in used,
            }
            for key, relay in state.named_relays.items()
        ],
    }


def claim_view(group: Group, claim: ClaimState) -> dict[str, Any]:
    """A pending, vetoed or completed admission or recovery, for people and scripts:
    `roster.claim_document` (what `covey recovery status` lists), and the group."""
    state = group.state
    return {
        "group": state.name,
        "group_id": group.id.hex(),
        **roster.claim_document(group.log, claim, group.me.device_id.raw),
    }


def relay_view(relay: AddRelay) -> dict[str, Any]:
    """One of a group's relays, as `covey relay list` shows it (never its access secret)."""
    return {"key": relaylink.encode_key(relay.key), "host": relay.host, "port": relay.port}


# --- what a sync changed, for people ---------------------------------------------------


@dataclass(frozen=True)
class Snapshot:
    """What a change report compares: a group's members and roles, its key, its policy."""

    members: Mapping[bytes, str]
    epoch: bytes
    epochs: int
    history: str
    ops: int


def snapshot(group: Group) -> Snapshot | None:
    """The group as a change report compares it (None before it has a state)."""
    if group.log.state is None:
        return None
    state = group.state
    return Snapshot(
        {device: member.role for device, member in state.members.items()},
        state.current_epoch.id,
        len(state.epochs),
        state.history,
        len(group.log),
    )


def changes(before: Snapshot, group: Group) -> dict[str, Any] | None:
    """What changed in `group` since `before`, for people; None if nothing did.

    Members added and removed (by whom: the author of the applied op that
    did it; `left` when a device removed itself), roles changed, a new
    epoch (its number, who started it, whether this device holds its key:
    not when it was removed), a new history policy, and how
    many ops arrived. This device's own standing is not listed here (the
    node reports its removal apart).
    """
    after = snapshot(group)
    if after is None or after.ops == before.ops:
        return None
    state = group.state
    me = group.me.device_id.raw
    added = [d for d in after.members if d not in before.members and d != me]
    removed = [d for d in before.members if d not in after.members and d != me]
    roles = [
        d for d in after.members if d in before.members and after.members[d] != before.members[d]
    ]
    by = _authors(group, set(added), set(removed), set(roles))
    return {
        "group": state.name,
        "group_id": group.id.hex(),
        "ops": after.ops - before.ops,
        "added": [_entry(group, d, by.get(("add", d))) for d in added],
        "removed": [
            {**_entry(group, d, by.get(("remove", d))), "left": by.get(("remove", d)) == d}
            for d in removed
        ],
        "roles": [
            {**_entry(group, d, by.get(("role", d))), "role": after.members[d]} for d in roles
        ],
        "epoch": None
        if after.epoch == before.epoch
        else {
            "number": after.epochs,
            "by": _name(group, state.current_epoch.author),
            "held": state.current_epoch.id in group.keys,
        },
        "history": None if after.history == before.history else after.history,
    }


def _authors(
    group: Group, added: set[bytes], removed: set[bytes], roles: set[bytes]
) -> dict[tuple[str, bytes], bytes]:
    """(kind, device) -> the author of the latest applied op of that kind on it.

    One pass over the applied ops, latest first, stopping once each is found.
    """
    wanted = {("add", d) for d in added} | {("remove", d) for d in removed}
    wanted |= {("role", d) for d in roles}
    found: dict[tuple[str, bytes], bytes] = {}
    for op_id in reversed(group.state.applied):
        if len(found) == len(wanted):
            break
        body = group.log.ops[op_id].body
        if isinstance(body, (Add, Complete)):  # (a completed admission or recovery adds)
            kind = "add"
        elif isinstance(body, Remove):
            kind = "remove"
        elif isinstance(body, SetRole):
            kind = "role"
        else:
            continue
        key = (kind, body.target)
        if key in wanted and key not in found:
            found[key] = group.log.ops[op_id].author
    return found


def _name(group: Group, device: bytes) -> str:
    record = group.state.devices.get(device) or group.log.devices.get(device)
    return "?" if record is None else record.name


def _entry(group: Group, device: bytes, by: bytes | None) -> dict[str, Any]:
    return {
        "name": _name(group, device),
        "device_id": str(DeviceId(device)),
        "by": None if by is None else _name(group, by),
    }
