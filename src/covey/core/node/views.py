"""What a node tells about a group: its state as JSON-friendly values.

The node's replies to commands carry this document, so a command that went
through the running node's control socket can show the result without
opening the store (or asking for its passphrase).
"""

from __future__ import annotations

from typing import Any

from covey.core.group import Group
from covey.core.identity import DeviceId


def describe(group: Group) -> dict[str, Any]:
    """A group's state: members, roles, the current epoch, heads, notices."""
    state = group.state
    me = group.me.device_id.raw
    return {
        "group_id": group.id.hex(),
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
            "key_held": state.current_epoch.id in group.keys,
            "needs_healing": state.needs_healing,
        },
        "heads": sorted(head.hex() for head in group.log.heads),
        "ops": len(group.log),
        "equivocators": [str(DeviceId(device)) for device in state.equivocators],
        "notices": list(state.notices),
    }
