"""What a node tells about a group: its state as JSON-friendly values.

The node's replies to commands carry this document, so a command that went
through the running node's control socket can show the result without
opening the store (or asking for its passphrase).
"""

from __future__ import annotations

from typing import Any

from covey.core.group import Group
from covey.core.identity import DeviceId
from covey.core.log import GroupLog
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
    }
