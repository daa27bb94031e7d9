"""A group's devices as people name and see them.

DESIGN. Commands name a device the way a person does: by its name, by the
start of its device ID, or by its eight safety words (`resolve`). Before a
change is signed, the rules `covey.core.membership` enforces are checked
here once more (who may author what still comes from its rule table), to
refuse in words that say what to do next (who the admins are, which
command makes another admin) instead of the rule table's terse reason
(`check_remove`, `check_role`, `check_leave`, `check_invite`). Both the
node (which makes the change) and the command line (which asks for
confirmation first, with no passphrase) call these, so a refusal reads the
same either way.

Nothing here decides anything the rules do not: it reads a replica (a
`GroupLog` and its `GroupState`, public attributes only) and explains it.
`removal` tells where this device stands: a member, a device that left
(its own `remove` op), or one that others removed, by whom and when.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from covey.core import relaylink
from covey.core.identity import ID_PREFIX, DeviceId, DeviceRecord
from covey.core.log import GroupLog
from covey.core.membership import (
    MAX_RELAYS,
    ClaimState,
    GroupState,
    may_author,
    witnesses_needed,
)
from covey.core.ops import AddRelay, Op, Remove
from covey.core.words import WORD_COUNT
from covey.errors import (
    AmbiguousDevice,
    InvalidArgument,
    NoSuchDevice,
    NotAllowed,
    NotAMember,
    UsageError,
)

#: Characters of a device ID prefix, at least (fewer would match half a household).
MIN_ID_PREFIX: Final = 4
#: Candidates an ambiguity error lists (the rest are counted).
MAX_CANDIDATES: Final = 8
#: What a device ID prefix may hold: the base32 of `cv1-` IDs, or hex.
_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")
#: Safety words may be typed with spaces or dashes between them.
_WORD_SEPARATORS: Final = re.compile(r"[\s\-]+")
#: Group names that need no quoting in a suggested command.
_PLAIN: Final = re.compile(r"^[A-Za-z0-9._@+:/=-]+$")

Standing = Literal["member", "leaving", "removed"]


# --- naming devices -----------------------------------------------------------------


def short_id(device: bytes) -> str:
    """The start of a device's ID, as covey shows it (`cv1-abcd-efgh`): for people, not unique."""
    return DeviceId(device).short


def label(record: DeviceRecord) -> str:
    """A device as one line names it: `phone (cv1-abcd-efgh)`."""
    return f"{record.name} ({record.device_id.short})"


def admins_label(state: GroupState) -> str:
    """The group's admins, by name and short ID, most senior first."""
    admins = [d for d in state.by_seniority() if state.members[d].role == "admin"]
    return ", ".join(label(state.members[d].record) for d in admins) or "nobody"


def command_arg(text: str) -> str:
    """`text` as a shell argument in a suggested command (quoted only when it must be)."""
    if _PLAIN.match(text):
        return text
    return "'" + text.replace("'", "'\\''") + "'"


def resolve(state: GroupState, text: str) -> bytes:
    """The current member that `text` names; one-line errors otherwise.

    In this order, the first rule that matches anything decides: the exact
    name; else a prefix of the device ID, at least `MIN_ID_PREFIX`
    characters, as covey shows it (`cv1-abcd-ef...`, the `cv1-` and dashes
    optional) or in hex; else the device's eight safety words, separated by
    spaces or dashes. More than one match is `AmbiguousDevice`, listing the
    candidates; a device that is no longer a member is named as such.
    """
    text = text.strip()
    group = state.name
    if not text:
        raise InvalidArgument(
            "name a device: its name, the start of its device ID, or its safety words"
        )
    members = {d: m.record for d, m in state.members.items()}
    found = _matches(members, text)
    if len(found) == 1:
        return found[0]
    if found:
        listed = [label(members[d]) for d in sorted(found, key=lambda d: members[d].name)]
        more = len(listed) - MAX_CANDIDATES
        shown = ", ".join(listed[:MAX_CANDIDATES]) + (f" and {more} more" if more > 0 else "")
        raise AmbiguousDevice(
            f"{text!r} matches {len(found)} devices of {group!r}: {shown};"
            " name one by more of its device ID"
        )
    former = {d: r for d, r in state.devices.items() if d not in state.members}
    gone = _matches(former, text)
    if len(gone) == 1:
        raise NotAllowed(f"{label(former[gone[0]])} is no longer a member of {group!r}")
    raise NoSuchDevice(
        f"no device of {group!r} matches {text!r}:"
        f" `covey devices -g {command_arg(group)}` lists them"
    )


def _matches(records: Mapping[bytes, DeviceRecord], text: str) -> list[bytes]:
    by_name = [d for d, r in records.items() if r.name == text]
    if by_name:
        return by_name
    prefix = _id_prefix(text)
    if prefix is not None:
        by_id = [
            d
            for d in records
            if _rendered(d).startswith(prefix) or d.hex().startswith(prefix.lower())
        ]
        if by_id:
            return by_id
    words = [w for w in _WORD_SEPARATORS.split(text.lower()) if w]
    if len(words) == WORD_COUNT:
        return [d for d, r in records.items() if r.safety_words == words]
    return []


def _id_prefix(text: str) -> str | None:
    """`text` as the start of a device ID (lower case, no `cv1-`, no dashes), or None."""
    cleaned = text.strip().lower()
    if cleaned.startswith(ID_PREFIX):
        cleaned = cleaned[len(ID_PREFIX) :]
    cleaned = cleaned.replace("-", "")
    if len(cleaned) < MIN_ID_PREFIX or not set(cleaned) <= _ID_CHARS:
        return None
    return cleaned


def _rendered(device: bytes) -> str:
    return str(DeviceId(device))[len(ID_PREFIX) :].replace("-", "")


# --- where this device stands ---------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """How this device stopped being a member of a group."""

    #: This device removed itself (`covey group leave`).
    left: bool
    #: The applied op that removed it (None: no op did; it equivocated, or
    #: the add that made it a member was revoked).
    op: bytes | None = None
    #: Who removed it, and when by the remover's clock (shown, never trusted).
    by: bytes | None = None
    by_name: str | None = None
    time: int | None = None


def removal_op(log: GroupLog, device: bytes) -> Op | None:
    """The latest applied op that removed `device` from the group, if any."""
    state = log.state
    if state is None or device in state.members:
        return None
    for op_id in reversed(state.applied):
        op = log.ops[op_id]
        if isinstance(op.body, Remove) and op.body.target == device:
            return op
    return None


def removals(log: GroupLog) -> dict[bytes, Op]:
    """Every device that an applied op removed and that is not a member again -> that op.

    One pass over the applied ops, latest first (a member's own node runs
    this after each change of the log).
    """
    state = log.state
    if state is None:
        return {}
    former = {d for d in state.devices if d not in state.members}
    found: dict[bytes, Op] = {}
    for op_id in reversed(state.applied):
        if len(found) == len(former):
            break
        op = log.ops[op_id]
        if isinstance(op.body, Remove) and op.body.target in former:
            found.setdefault(op.body.target, op)
    return found


def removal(log: GroupLog, me: bytes) -> Removal | None:
    """None while `me` is a member (or never was one); else how it stopped being one."""
    state = log.state
    if state is None or me in state.members or me not in state.devices:
        return None
    op = removal_op(log, me)
    if op is None:
        return Removal(left=False)
    author = log.devices.get(op.author)
    return Removal(
        left=op.author == me,
        op=op.id,
        by=op.author,
        by_name=None if author is None else author.name,
        time=op.content.time,
    )


def standing(log: GroupLog, me: bytes) -> Standing:
    """`member`; `leaving` (it left: its ops stay until a member has the leave); `removed`."""
    gone = removal(log, me)
    if gone is None:
        return "member"
    return "leaving" if gone.left else "removed"


def removed_message(log: GroupLog, me: bytes) -> str:
    """One line saying that, and how, this device is no longer a member."""
    assert log.state is not None
    group = log.state.name
    gone = removal(log, me)
    if gone is None:
        return f"this device is not a member of {group!r}"
    if gone.left:
        return f"this device left {group!r}"
    if gone.by_name is None:
        return f"this device is no longer a member of {group!r}"
    return f"this device was removed from {group!r} by {gone.by_name!r}"


# --- what the rules would refuse, in words ------------------------------------------------


def _member_state(log: GroupLog, me: bytes) -> GroupState:
    state = log.state
    if state is None:
        raise NotAMember("this device holds none of that group's ops yet")
    if me not in state.members:
        raise NotAMember(removed_message(log, me))
    return state


def _make_admin_hint(group: str) -> str:
    command = f"covey group role DEVICE admin -g {command_arg(group)}"
    return f"make another device an admin first (`{command}`)"


def check_remove(log: GroupLog, me: bytes, target: bytes) -> None:
    """Refuse, in one line, a removal of `target` by `me` that the rules would refuse."""
    state = _member_state(log, me)
    group = state.name
    if target == me:
        raise NotAllowed(
            "to remove this device itself, leave the group:"
            f" `covey group leave {command_arg(group)}`"
        )
    if target not in state.members:
        record = state.devices.get(target)
        who = "that device" if record is None else label(record)
        raise NotAllowed(f"{who} is not a member of {group!r}")
    if not may_author(state, me, "remove"):
        raise NotAllowed(
            f"only an admin of {group!r} can remove a device: ask {admins_label(state)}"
        )


def check_role(log: GroupLog, me: bytes, target: bytes, role: str) -> None:
    """Refuse, in one line, a role change the rules would refuse (the last admin stays)."""
    state = _member_state(log, me)
    group = state.name
    if role not in ("admin", "member"):
        raise InvalidArgument("a role is admin or member")
    member = state.members.get(target)
    if member is None:
        raise NotAllowed(f"that device is not a member of {group!r}")
    if not may_author(state, me, "set_role"):
        raise NotAllowed(f"only an admin of {group!r} can change roles: ask {admins_label(state)}")
    if member.role == role:
        article = "an admin" if role == "admin" else "a member"
        raise NotAllowed(f"{label(member.record)} is already {article} of {group!r}")
    if role == "member" and state.admins == [target]:
        who = "this device" if target == me else label(member.record)
        raise NotAllowed(f"{who} is the last admin of {group!r}: {_make_admin_hint(group)}")


def check_leave(log: GroupLog, me: bytes) -> None:
    """Refuse, in one line, a leave that would strand the group (last member, last admin)."""
    state = _member_state(log, me)
    group = state.name
    if len(state.members) == 1:
        raise NotAllowed(
            f"this device is the last member of {group!r}, so there is nobody to tell:"
            f" `covey group shred {command_arg(group)}` deletes the group here"
        )
    if state.admins == [me]:
        raise NotAllowed(
            f"this device is the last admin of {group!r}: {_make_admin_hint(group)}, then leave"
        )


def check_invite(log: GroupLog, me: bytes) -> None:
    """Refuse an invitation by a non-admin, naming the admins and the way forward."""
    state = _member_state(log, me)
    if not may_author(state, me, "add"):
        group = state.name
        mine = state.members[me].record.name
        raise NotAllowed(
            f"only an admin of {group!r} can invite: ask {admins_label(state)} to invite"
            " the device, or to make this one an admin"
            f" (`covey group role {command_arg(mine)} admin -g {command_arg(group)}` on theirs)"
        )


# --- people ----------------------------------------------------------------------------


def find_person(state: GroupState, name: str) -> bytes | None:
    """The person of the group named `name` (None: nobody is); AmbiguousDevice if two are.

    Names are not unique by rule (two admins apart may name two people
    alike): a command naming one of them then asks for a device instead.
    """
    found = [p for p, n in state.person_names_all().items() if n == name]
    if len(found) > 1:
        raise AmbiguousDevice(
            f"{len(found)} people of {state.name!r} are named {name!r}:"
            " rename one (`covey person rename`) or name a device of theirs"
        )
    return found[0] if found else None


def is_named(state: GroupState, person: bytes) -> bool:
    """Whether a person was named by a `set_person` (else: a device's own, named after it)."""
    return person in state.person_names


def name_skeleton(name: str) -> str:
    """What two names that people would read as one have in common: compatibility
    normal form, case folded, spaces collapsed (PROTOCOL.md 6.4)."""
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


#: Alphabets whose letters pass for one another ("Dаd" with a Cyrillic а).
_LOOKALIKE_SCRIPTS: Final = frozenset(("LATIN", "CYRILLIC", "GREEK"))


def check_new_person_name(state: GroupState, name: str, renamed: bytes | None = None) -> None:
    """Refuse a new person's name that people could take for an existing person's or
    device's (`renamed`: a person being renamed, whose own name does not count):
    the same skeleton (`name_skeleton`), or letters from more than one
    of the Latin, Cyrillic and Greek alphabets (a review made "Dаd" with a
    Cyrillic а, which prints as "Dad"). Not a full confusables check
    (Unicode TR 39): an all-Cyrillic lookalike passes, and shows as another
    person beside the real one in `covey devices`.
    """
    scripts = set()
    for char in name:
        if char.isalpha():
            script = unicodedata.name(char, "").split(" ")[0]
            if script in _LOOKALIKE_SCRIPTS:
                scripts.add(script)
    if len(scripts) > 1:
        raise InvalidArgument("a person's name mixes alphabets (Latin, Cyrillic, Greek)")
    skeleton = name_skeleton(name)
    taken = [n for p, n in state.person_names_all().items() if p != renamed]
    taken += [member.record.name for member in state.members.values()]
    if any(name_skeleton(other) == skeleton for other in taken):
        raise NotAllowed(
            f"a person or a device of {state.name!r} is named {name!r} or much like it:"
            " choose another name"
        )


def check_place_person(log: GroupLog, me: bytes, target: bytes, name: str) -> None:
    """Refuse, in one line, a `set_person` the rules would refuse."""
    state = _member_state(log, me)
    group = state.name
    if not may_author(state, me, "set_person"):
        raise NotAllowed(
            f"only an admin of {group!r} can say whose a device is: ask {admins_label(state)}"
        )
    member = state.members.get(target)
    if member is None:
        raise NotAllowed(f"that device is not a member of {group!r}")
    if state.person_name(state.person(target)) == name:
        raise NotAllowed(f"{label(member.record)} is already {name!r}'s")


def resolve_holder(state: GroupState, text: str) -> bytes:
    """The person `text` names as a share holder: a person's name, or a device of theirs.

    Text that names a person and, as a device, another person is refused
    (a review had a joiner name its person after another's device, and
    become the holder `--holder` meant).
    """
    person = find_person(state, text.strip())
    try:
        device: bytes | None = resolve(state, text)
    except UsageError:
        device = None
    if person is not None and device is not None and state.person(device) != person:
        raise AmbiguousDevice(
            f"{text!r} names a person and another person's device in {state.name!r}:"
            " name the device by its ID"
        )
    if person is not None:
        return person
    if device is None:
        resolve(state, text)  # (raises the one-line error saying why)
    assert device is not None
    return state.person(device)


def check_deal(log: GroupLog, me: bytes) -> None:
    """Refuse, in one line, a dealing by a device that may not deal."""
    state = _member_state(log, me)
    if not may_author(state, me, "deal"):
        raise NotAllowed(
            f"only an admin of {state.name!r} can set recovery up: ask {admins_label(state)}"
        )


def describe_dealing(log: GroupLog, me: bytes) -> dict[str, Any]:
    """The group's current dealing as `covey recovery status` shows it (no secret in it)."""
    state = log.state
    assert state is not None
    dealing = state.dealing
    document: dict[str, Any] = {
        "group": state.name,
        "group_id": log.group_id.hex(),
        "requests": [claim_document(log, c, me) for c in state.claims.values()],
    }
    if dealing is None:
        document["dealing"] = None
        return document
    deal = dealing.deal
    dealer = state.devices.get(dealing.dealer)
    holders = []
    for slot in deal.slots:
        entry: dict[str, Any] = {
            "slot": slot.index + 1,
            "digest": slot.digest.hex(),
            "paper": slot.person is None,
        }
        if slot.person is not None:
            entry["person"] = state.person_name(slot.person) or "(no device in the group now)"
            entry["devices"] = [
                {
                    "name": record.name if (record := state.devices.get(d)) else "?",
                    "device_id": str(DeviceId(d)),
                    "member": d in state.members,
                }
                for d, _ in slot.copies
            ]
        holders.append(entry)
    mine = dealing.holders.get(me)
    document["dealing"] = {
        "id": dealing.id.hex(),
        "short_id": dealing_label(dealing.id),
        "threshold": deal.threshold,
        "shares": len(deal.slots),
        "paper": len(deal.paper),
        "veto_seconds": deal.veto,
        "dealer": None if dealer is None else dealer.name,
        "dealt_at": log.ops[dealing.id].content.time,
        "void": dealing.void,
        "holders": holders,
        "this_device_holds": None if mine is None else mine + 1,
    }
    return document


def resolve_claim(state: GroupState, me: bytes, text: str) -> bytes:
    """The pending claim `text` names (a hex prefix of its ID, 8 digits or more), or,
    with no text, the one pending claim `me` may veto; one-line errors otherwise."""
    pending = [c for c in state.claims.values() if c.status == "pending"]
    group = command_arg(state.name)
    text = text.strip().lower()
    if text:
        found = [c for c in pending if len(text) >= 8 and c.id.hex().startswith(text)]
        if len(found) != 1:
            raise InvalidArgument(
                f"no single pending request of {state.name!r} starts with that:"
                f" `covey recovery status -g {group}` lists them"
            )
        claim = found[0]
    else:
        mine = [c for c in pending if may_veto(state, me, c)]
        if not mine:
            raise NotAllowed(f"nothing pending in {state.name!r} that this device can stop")
        if len(mine) > 1:
            raise InvalidArgument(
                f"{len(mine)} requests are pending: name one (`covey recovery status -g {group}`)"
            )
        claim = mine[0]
    if not may_veto(state, me, claim):
        who = "an admin" if claim.claim.kind == "admit" else "a device of the person recovered"
        raise NotAllowed(f"only {who} can stop that request")
    return claim.id


def may_veto(state: GroupState, me: bytes, claim: ClaimState) -> bool:
    """Whether `me` may veto `claim` (PROTOCOL.md 19.4)."""
    if claim.claim.kind == "admit":
        return state.role(me) == "admin"
    return me in state.members and state.person(me) == claim.claim.person


def claim_document(log: GroupLog, claim: ClaimState, me: bytes) -> dict[str, Any]:
    """An admission or a recovery as `covey recovery status` lists it."""
    state = log.state
    assert state is not None
    record = claim.claim.device
    person = claim.claim.person
    return {
        "claim": claim.id.hex(),
        "kind": claim.claim.kind,
        "status": claim.status,
        "device": record.name,
        "device_id": str(record.device_id),
        "safety_words": record.safety_words,
        "person": None if person is None else (state.person_name(person) or "?"),
        "claimed_at": log.ops[claim.id].content.time,
        "window_seconds": claim.window,
        "witnesses": sorted(state.person_name(p) or "?" for p in claim.witnesses),
        "witnesses_needed": witnesses_needed(state, claim),
        "role": claim.role,
        "approved_by": [
            approver.name
            for a in claim.claim.approvals
            if a in log.ops and (approver := log.devices.get(log.ops[a].author)) is not None
        ],
        "paper": [index + 1 for index in claim.claim.paper],
        "this_device_may_veto": claim.status == "pending" and may_veto(state, me, claim),
    }


def dealing_label(dealing: bytes) -> str:
    """A dealing's short ID, as printed on its paper shares (`D-` and 8 hex digits)."""
    return f"D-{dealing.hex()[:8]}"


def person_label(state: GroupState, device: bytes) -> str:
    """The name of a member's person, as shown beside it."""
    return state.person_name(state.person(device)) or "?"


# --- what `covey devices` shows ---------------------------------------------------------


def describe_devices(
    log: GroupLog, me: bytes, last_seen: Mapping[bytes, int | None]
) -> dict[str, Any]:
    """A group's members as `covey devices` shows them, and where this device stands.

    Per member: name, device ID (whole and short), role, safety words, whether
    it is this device, whether the current epoch's key was wrapped for it
    (`holds_current_key`), and `last_seen`: the last time this device
    finished a sync with it (`last_seen` maps device IDs to Unix seconds;
    None, or absent, for never).
    """
    state = log.state
    assert state is not None
    recipients = state.current_epoch.recipients
    gone = removal(log, me)
    names = state.person_names_all()
    return {
        "group": state.name,
        "group_id": log.group_id.hex(),
        "standing": standing(log, me),
        "removed_by": None
        if gone is None or gone.left or gone.by is None
        else {"name": gone.by_name, "device_id": str(DeviceId(gone.by))},
        "removed_at": None if gone is None else gone.time,
        "epoch": len(state.epochs),
        "needs_healing": state.needs_healing,
        "devices": [
            {
                "name": member.record.name,
                "person": names[state.person(device)],
                "person_id": state.person(device).hex(),
                "device_id": str(member.record.device_id),
                "short_id": member.record.device_id.short,
                "role": member.role,
                "safety_words": member.record.safety_words,
                "this_device": device == me,
                "holds_current_key": device in recipients,
                "last_seen": None if device == me else last_seen.get(device),
            }
            for device, member in sorted(state.members.items(), key=lambda i: i[1].seniority)
        ],
    }


def names(state: GroupState, devices: Iterable[bytes]) -> list[dict[str, str]]:
    """Devices as `{name, device_id}` (for replies), in the order given."""
    out = []
    for device in devices:
        record = state.devices.get(device)
        out.append(
            {
                "name": "?" if record is None else record.name,
                "device_id": str(DeviceId(device)),
            }
        )
    return out


def check_add_relay(log: GroupLog, me: bytes, relay: AddRelay) -> None:
    """Refuse, in one line, an `add_relay` the rules would refuse."""
    state = _member_state(log, me)
    group = state.name
    if not may_author(state, me, "add_relay"):
        raise NotAllowed(f"only an admin of {group!r} can add relays: ask {admins_label(state)}")
    current = state.named_relays.get(relay.key)
    if current == relay:
        raise NotAllowed(f"that relay is already one of {group!r}'s, at that address")
    if current is None and len(state.named_relays) >= MAX_RELAYS:
        raise NotAllowed(
            f"{group!r} has {MAX_RELAYS} relays, the most a group has: remove one first"
            f" (`covey relay remove RELAY -g {command_arg(group)}`)"
        )


def check_remove_relay(log: GroupLog, me: bytes, key: bytes) -> None:
    """Refuse, in one line, a `remove_relay` the rules would refuse."""
    state = _member_state(log, me)
    group = state.name
    if not may_author(state, me, "remove_relay"):
        raise NotAllowed(f"only an admin of {group!r} can remove relays: ask {admins_label(state)}")
    if key not in state.named_relays:
        raise NotAllowed(
            f"that relay is not one of {group!r}'s (`covey relay list -g {command_arg(group)}`)"
        )


def resolve_relay(state: GroupState, text: str) -> bytes:
    """The key of the group relay that `text` names: its host, HOST:PORT, or its key's start
    (4 characters or more of the base32 key `covey relay list` shows)."""
    text = text.strip().lower()
    found = [
        key
        for key, relay in state.named_relays.items()
        if text in (relay.host, f"{relay.host}:{relay.port}", f"[{relay.host}]:{relay.port}")
        or (len(text) >= 4 and relaylink.encode_key(key).startswith(text))
    ]
    if len(found) == 1:
        return found[0]
    group = command_arg(state.name)
    if not found:
        raise InvalidArgument(
            f"no relay of {state.name!r} is named that: `covey relay list -g {group}` shows them"
        )
    raise InvalidArgument("more than one relay is named that: give more of its key")
