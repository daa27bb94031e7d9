"""Who may do what to a group, and how concurrent changes merge.

This module is the one place the membership rules live: `RULES` is the table
(PROTOCOL.md's table is generated from it by `rules_table()`), and `replay`
is the one function that turns a set of ops into a group state. Because the
state is a function of the *set* of ops (never of the order they arrived
in), any two replicas holding the same ops agree.

How a set of ops becomes a state (PROTOCOL.md section 7 has worked examples):

1. **Causal validity.** Each op is judged once, against the state of its own
   causal past: was its author allowed to do it, there and then? (The log
   computes this when the op arrives and passes the verdict in.) Invalid ops
   are kept, so the DAG stays whole, but never applied.
2. **Order.** Ops are replayed in one deterministic topological order: Kahn's
   algorithm, taking the smallest op ID among the ready ops.
3. **Revocations win.** A removal takes everything from its target, a
   demotion takes admin rights, a recovery's completion takes everything
   from each device it replaces (PROTOCOL.md 19.5). An effective revocation *vetoes* every op of
   its target that needed what was revoked and is concurrent with it (neither
   before nor after it), and every concurrent grant to its target. Since
   revocations can veto each other (two admins removing each other), which
   revocations are effective is settled first: those nobody effective vetoes
   are effective, those an effective one vetoes are not, repeatedly; what is
   left (cycles) is settled by seniority: the revocation of the most senior
   author (the device added first, the founder first of all) wins.
4. **Replay.** Valid, unvetoed ops are applied in order; an op whose author no
   longer holds the right in the replayed state (its own add was vetoed, say)
   is skipped too.
5. **Never without an admin.** If the replay ever leaves members but no
   admin, the most senior member becomes admin, and the state records a
   notice saying so.
6. **Equivocation.** A device that signed two different ops with the same
   sequence number is treated as removed at the first of them: neither fork
   nor anything later by it is applied. The two ops are kept as evidence.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import Final, Literal, Protocol

from covey.core.identity import DeviceRecord
from covey.core.ops import (
    MAX_VETO,
    Add,
    AddRelay,
    Approve,
    Claim,
    Complete,
    Deal,
    Genesis,
    History,
    Op,
    Remove,
    RemoveRelay,
    Role,
    Rotate,
    Rotation,
    SetInbox,
    SetPerson,
    SetPolicy,
    SetRole,
    Veto,
    Witness,
    implicit_person,
    rotation_of,
)

Need = Literal["founder", "admin", "member", "self_or_admin"]
Level = Literal["admin", "member"]

#: Requests one holder person approves under one dealing (bounds what a holder
#: can make every replica keep: review of claims, F7).
MAX_APPROVALS: Final = 16
#: Relays one group uses (`add_relay` is refused beyond this many; a merge
#: of concurrent adds that passes it keeps the first this many by key).
MAX_RELAYS: Final = 8
#: Relay keys a group's log may ever name (a removed relay's ops stay: a
#: later concurrent add must not win over its removal). Bounds what every
#: replica keeps and checks per relay op (review: an admin adding and
#: removing thousands of relays made every merge quadratic, for good).
MAX_RELAY_KEYS: Final = 64


@dataclass(frozen=True)
class Rule:
    """One row of the rule table."""

    kind: str
    #: Who may author it, judged in the op's causal past.
    needs: Need
    #: Whether it starts a new epoch (carries a rotation for every member).
    rotates: bool
    #: What it requires and does, in words (PROTOCOL.md shows this).
    does: str


RULES: Final[Mapping[str, Rule]] = {
    rule.kind: rule
    for rule in (
        Rule("genesis", "founder", True, "creates the group; its author is the first admin"),
        Rule(
            "add",
            "admin",
            True,
            "adds a device that is not a member, with a role; revoked by a concurrent removal",
        ),
        Rule(
            "remove",
            "self_or_admin",
            True,
            "removes a member (any member may remove itself); at least one admin must remain",
        ),
        Rule(
            "set_role",
            "admin",
            False,
            "makes a member admin or member; at least one admin must remain",
        ),
        Rule("rotate", "member", True, "starts a new epoch for the current members"),
        Rule("set_policy", "admin", False, "sets the history policy for later joiners"),
        Rule(
            "add_relay",
            "admin",
            False,
            "names a relay the members use (its key, address and access secret), "
            f"or its new address; at most {MAX_RELAYS} relays",
        ),
        Rule(
            "remove_relay",
            "admin",
            False,
            "members stop using a relay; wins over a concurrent add_relay of it",
        ),
        Rule(
            "set_inbox",
            "member",
            False,
            "announces its author's inbox at one of the group's relays",
        ),
        Rule(
            "set_person",
            "admin",
            False,
            "places a member in a person (an ID and a name); the latest applied names the person",
        ),
        Rule(
            "deal",
            "admin",
            False,
            "deals recovery shares: one slot per holder person (sealed to each of its member"
            " devices) and fewer paper slots than the threshold; the latest applied is current",
        ),
        Rule(
            "approve",
            "member",
            False,
            "a holder person approves a request of the current dealing once (a recovery:"
            " releases its share, once per dealing; never for its own person)",
        ),
        Rule(
            "claim",
            "member",
            False,
            "announces an admission (by a holder, on K holders' approvals) or a recovery"
            " (signed as the dealing's recovery record, once; spends the dealing);"
            " void if an op ending its dealing is concurrent",
        ),
        Rule(
            "witness",
            "member",
            False,
            "a member of another person saw the claim pending for the veto window",
        ),
        Rule(
            "veto",
            "member",
            False,
            "stops a pending claim: a device of the person recovered, or an admin for an"
            " admission; wins over a concurrent completion",
        ),
        Rule(
            "complete",
            "member",
            True,
            "adds the claimed device (in place of the recovered person's devices, each"
            " revoked as by a removal) once witnesses of two other persons (one, if only"
            " one) hold the claim; of concurrent completions of a claim the smallest ID"
            " stands",
        ),
    )
}


def rules_table() -> str:
    """The rule table as Markdown, for PROTOCOL.md."""
    lines = ["| op | who may author it | new epoch | what it does |", "|---|---|---|---|"]
    for rule in RULES.values():
        who = {
            "founder": "its founder",
            "admin": "an admin",
            "member": "any member",
            "self_or_admin": "an admin, or the member itself",
        }[rule.needs]
        lines.append(f"| `{rule.kind}` | {who} | {'yes' if rule.rotates else 'no'} | {rule.does} |")
    return "\n".join(lines)


# --- state ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    record: DeviceRecord
    role: Role
    #: Position in the replay order of the device's first add: smaller is
    #: more senior (the founder is 0).
    seniority: int


@dataclass(frozen=True, slots=True)
class Dealing:
    """The group's current dealing of recovery shares (PROTOCOL.md 19.1)."""

    #: The deal op's ID, and its author.
    id: bytes
    dealer: bytes
    deal: Deal
    #: Every device holding a sealed copy -> its slot's index.
    holders: Mapping[bytes, int]
    #: Why it can no longer be used (None: it can).
    void: str | None = None


ClaimStatus = Literal["pending", "vetoed", "completed"]


@dataclass(frozen=True, slots=True)
class ClaimState:
    """An admission or a recovery announced in the log (PROTOCOL.md 19.3)."""

    id: bytes
    claim: Claim
    #: The role the device gets: a recovered person's highest at the claim, else member.
    role: Role
    #: The veto window of the dealing it was made under, in seconds.
    window: int
    status: ClaimStatus = "pending"
    #: The persons whose members witnessed it.
    witnesses: frozenset[bytes] = frozenset()


@dataclass(frozen=True, slots=True)
class Epoch:
    """A key epoch: started by an applied op that carries a rotation."""

    id: bytes
    author: bytes
    rotation: Rotation
    position: int

    @property
    def recipients(self) -> frozenset[bytes]:
        return self.rotation.recipients


@dataclass
class GroupState:
    """What a set of ops means: members, roles, policy, epochs."""

    group_id: bytes
    name: str
    founder: bytes
    members: dict[bytes, Member] = field(default_factory=dict)
    #: Every device ever added (to check signatures of old ops and data).
    devices: dict[bytes, DeviceRecord] = field(default_factory=dict)
    epochs: list[Epoch] = field(default_factory=list)
    #: Applied set_policy ops not followed by another (plus genesis's value).
    policy_frontier: dict[bytes, History] = field(default_factory=dict)
    #: Per relay key, the applied add_relay and remove_relay ops about it not
    #: followed by another: op ID -> the relay it names, or None (a removal).
    relay_frontier: dict[bytes, dict[bytes, AddRelay | None]] = field(default_factory=dict)
    #: (device, relay key) -> the device's inbox there, from its latest set_inbox.
    inboxes: dict[tuple[bytes, bytes], bytes] = field(default_factory=dict)
    #: Member -> its person, from the latest applied set_person about it
    #: (none: its implicit person, `ops.implicit_person`).
    person_of: dict[bytes, bytes] = field(default_factory=dict)
    #: Person -> its name, from the latest applied set_person naming it.
    person_names: dict[bytes, str] = field(default_factory=dict)
    #: The latest applied dealing of recovery shares, void or not.
    dealing: Dealing | None = None
    #: (dealing, request) -> holder person -> its applied approve op.
    approvals: dict[tuple[bytes, bytes], dict[bytes, bytes]] = field(default_factory=dict)
    #: Dealing -> the holder persons that released their share (a recovery's approval).
    releases: dict[bytes, frozenset[bytes]] = field(default_factory=dict)
    #: Applied approve op -> (kind, person) it was given for.
    approval_labels: dict[bytes, tuple[str, bytes | None]] = field(default_factory=dict)
    #: (dealing, holder person) -> how many requests it approved under it.
    approved_by: dict[tuple[bytes, bytes], int] = field(default_factory=dict)
    #: Claim op -> what became of it.
    claims: dict[bytes, ClaimState] = field(default_factory=dict)
    #: The device IDs of every applied dealing's recovery record: never a member.
    records: frozenset[bytes] = frozenset()
    #: Every applied dealing -> its veto window (a claim keeps its dealing's).
    windows: dict[bytes, int] = field(default_factory=dict)
    #: IDs of applied ops, in replay order.
    applied: list[bytes] = field(default_factory=list)
    #: Ops not applied, with the reason.
    skipped: dict[bytes, str] = field(default_factory=dict)
    #: Devices that equivocated: device -> (op ID, op ID) of the evidence.
    equivocators: dict[bytes, tuple[bytes, bytes]] = field(default_factory=dict)
    #: Things people should know about the merged state.
    notices: list[str] = field(default_factory=list)
    #: The revocations that took effect (each one applied, never skipped).
    in_force: frozenset[bytes] = frozenset()
    #: Revocations the settle left out (`Plan.excluded`).
    excluded: frozenset[bytes] = frozenset()

    @property
    def history(self) -> History:
        """The history policy: if concurrent changes disagree, `forward` wins."""
        values = set(self.policy_frontier.values())
        return "forward" if "forward" in values else "shared"

    @property
    def named_relays(self) -> dict[bytes, AddRelay]:
        """Every relay the merged ops name and do not remove, sorted by key.

        For each relay, the ops about it that no other follows decide: a
        removal among them wins (the relay is not used), else the add with
        the smallest op ID gives its address (concurrent moves, rare).
        Concurrent adds can name more than MAX_RELAYS: see `relays`.
        """
        named: dict[bytes, AddRelay] = {}
        for key in sorted(self.relay_frontier):
            frontier = self.relay_frontier[key]
            if not any(v is None for v in frontier.values()):
                named[key] = frontier[min(frontier)]  # type: ignore[assignment]
        return named

    @property
    def relays(self) -> dict[bytes, AddRelay]:
        """The relays members use: the first MAX_RELAYS of `named_relays` by key.

        One left out by a merge that passed the limit can still be moved or
        removed (`remove_relay` names any of `named_relays`), and `covey
        relay list` shows it as unused.
        """
        return dict(list(self.named_relays.items())[:MAX_RELAYS])

    def person(self, device: bytes) -> bytes:
        """The person a device belongs to (its implicit one if no set_person placed it)."""
        return self.person_of.get(device) or implicit_person(device)

    def person_name(self, person: bytes) -> str | None:
        """A person's name: the latest set_person's for it, else (an implicit
        person) its device's name; None for a person no member is in."""
        name = self.person_names.get(person)
        if name is not None:
            return name
        for device, member in self.members.items():
            if device not in self.person_of and implicit_person(device) == person:
                return member.record.name
        return None

    def person_names_all(self) -> dict[bytes, str]:
        """Every person with a member device -> its name, in one pass (`person_name`
        asks the members each time: a review measured 1.6 s for a lookup by
        name among 4,000 members)."""
        names: dict[bytes, str] = {}
        for device, member in self.members.items():
            person = self.person(device)
            if person not in names:
                named = self.person_names.get(person)
                names[person] = named if named is not None else member.record.name
        return names

    @property
    def people(self) -> dict[bytes, list[bytes]]:
        """Person -> its member devices (sorted by seniority), people by their most senior."""
        people: dict[bytes, list[bytes]] = {}
        for device in self.by_seniority():
            people.setdefault(self.person(device), []).append(device)
        return people

    def inbox_of(self, device: bytes, relay: bytes) -> bytes | None:
        """The inbox a member announced at one of the group's relays, if it did."""
        return self.inboxes.get((device, relay))

    @property
    def current_epoch(self) -> Epoch:
        return self.epochs[-1]

    @property
    def admins(self) -> list[bytes]:
        return sorted(d for d, m in self.members.items() if m.role == "admin")

    def role(self, device: bytes) -> Role | None:
        member = self.members.get(device)
        return None if member is None else member.role

    @property
    def needs_healing(self) -> bool:
        """Whether the current epoch's key is held by exactly the members.

        Not so after a merge: a removed device may hold it (a rotation on one
        side included it, its removal was on the other), or a member added
        on one side lacks it. Then a member must rotate before sealing.
        """
        return self.current_epoch.recipients != frozenset(self.members)

    def by_seniority(self) -> list[bytes]:
        return sorted(self.members, key=lambda d: self.members[d].seniority)


# --- what an op needs, revokes and grants -------------------------------------


def author_needs(op: Op) -> Level:
    """The level of right the op's author must hold."""
    body = op.body
    if isinstance(body, Remove) and body.target == op.author:
        return "member"
    if isinstance(body, Veto) and body.kind == "admit":
        return "admin"  # (an admission is the admins' to stop)
    if RULES[op.kind].needs == "member":
        return "member"
    return "admin"


def may_author(state: GroupState, device: bytes, kind: str) -> bool:
    """Whether `device` may author an op of `kind` about another device, by the rule table."""
    member = state.members.get(device)
    if member is None:
        return False
    return RULES[kind].needs == "member" or member.role == "admin"


def revokes(op: Op) -> tuple[tuple[bytes, Level | Literal["all"]], ...]:
    """(target, what is taken) for each device the op takes rights away from.

    A remove takes everything from its target; a set_role to member takes
    admin; a recovery's completion takes everything from each device it
    replaces (review of claims, F3). (Read from the body once, when the op
    is parsed: the replay asks on every step.)
    """
    return op.revoked


def _taken(revocation: Op, device: bytes) -> Level | Literal["all"]:
    """What `revocation` takes from `device` (one of its targets)."""
    for target, taken in revocation.revoked:
        if target == device:
            return taken
    raise AssertionError("not a target of the revocation")


def grants(op: Op) -> tuple[bytes, Level] | None:
    """(target, what is given) if the op gives rights to a device: an add, a set_role to admin."""
    return op.granted


def _covers(taken: Level | Literal["all"], needed: Level) -> bool:
    return taken == "all" or needed == "admin"


# --- causal validity ------------------------------------------------------------


def check(state: GroupState | None, op: Op) -> str | None:
    """Why `op` is not allowed on top of `state` (its causal past), or None if it is."""
    body = op.body
    if isinstance(body, Genesis):
        if state is not None:
            return "a group has one genesis"
        if body.founder.device_id.raw != op.author:
            return "genesis must be authored by its founder"
        if body.rotation.recipients != {op.author}:
            return "the first epoch is for the founder alone"
        return None
    if state is None:
        return "the op's causal past has no genesis"
    if op.content.group != state.group_id:
        return "the op belongs to another group"
    if is_recovery_claim(op, state):
        return _check_claim(state, op, body)  # type: ignore[arg-type]
    author = state.members.get(op.author)
    if author is None:
        return NOT_A_MEMBER
    if author_needs(op) == "admin" and author.role != "admin":
        return "its author is not an admin"
    members: AbstractSet[bytes] = state.members.keys()
    if isinstance(body, Add):
        if body.target in members:
            return "the device is already a member"
        if body.target in state.records:
            return "the device is a dealing's recovery record"
        if body.target in state.equivocators:
            return "the device equivocated"
        members = members | {body.target}
    elif isinstance(body, Remove):
        if body.target not in members:
            return "the device is not a member"
        members = members - {body.target}
        if not members:
            return "the last member cannot leave"
        if not any(state.members[d].role == "admin" for d in members):
            return "the last admin cannot be removed"
    elif isinstance(body, SetRole):
        target = state.members.get(body.target)
        if target is None:
            return "the device is not a member"
        if target.role == body.role:
            return "the device already has that role"
        if body.role == "member" and state.admins == [body.target]:
            return "the last admin cannot be demoted"
    elif isinstance(body, (AddRelay, RemoveRelay, SetInbox)):
        return _check_relay(state, op.author, body)
    elif isinstance(body, Deal):
        return _check_deal(state, body)
    elif isinstance(body, Approve):
        return _check_approve(state, op.author, body)
    elif isinstance(body, Claim):
        return _check_claim(state, op, body)
    elif isinstance(body, (Witness, Veto)):
        return _check_witness_or_veto(state, op.author, body)
    elif isinstance(body, Complete):
        reason = _check_complete(state, body)
        if reason is not None:
            return reason
        if body.replaced != replaced_by(state, state.claims[body.claim]):
            return "the completion must name exactly the member devices it replaces"
        members = _after_complete(state, body)
    elif isinstance(body, SetPerson):
        if body.target not in members:
            return "the device is not a member"
        if body.person != implicit_person(body.target) and body.person in {
            implicit_person(d) for d in state.devices
        }:
            return "that person ID is another device's own"
        if state.person(body.target) == body.person and (
            state.person_name(body.person) == body.name
        ):
            return "the device is already that person's, by that name"
    rotation = rotation_of(body)
    if rotation is not None and rotation.recipients != members:
        return "the new epoch must be wrapped for exactly the members"
    return None


def _check_deal(state: GroupState, deal: Deal) -> str | None:
    if len(deal.paper) >= deal.threshold:
        return "paper shares alone must not reach the threshold"
    if deal.threshold > len(deal.slots):
        return "the threshold is more than the shares dealt"
    record = deal.record.device_id.raw
    if record in state.devices or record in state.records:
        return "the recovery record is a device the group knows"
    people = state.people
    for slot in deal.slots:
        if slot.person is None:
            continue
        devices = people.get(slot.person)
        if devices is None:
            return "a holder person has no member device"
        if {device for device, _ in slot.copies} != set(devices):
            return "a holder's share must be sealed to each of its member devices"
    return None


def is_recovery_claim(op: Op, state: GroupState | None) -> bool:
    """Whether `op` is a recovery claim signed as its dealing's recovery record (its
    author is no member: the log introduced it with the deal, PROTOCOL.md 19.3)."""
    body = op.body
    return (
        isinstance(body, Claim)
        and body.kind == "recover"
        and state is not None
        and op.author not in state.members
    )


def _usable_dealing(state: GroupState, dealing: bytes) -> Dealing | None:
    current = state.dealing
    if current is None or current.id != dealing or current.void is not None:
        return None
    return current


def _holder_person(dealing: Dealing, state: GroupState, device: bytes) -> bytes | None:
    """The slot person `device` holds a share for, if it holds one (its own person)."""
    if device not in dealing.holders:
        return None
    person = state.person(device)
    slot = dealing.deal.slots[[s.index for s in dealing.deal.slots].index(dealing.holders[device])]
    return person if slot.person == person else None


def _check_approve(state: GroupState, author: bytes, body: Approve) -> str | None:
    dealing = _usable_dealing(state, body.dealing)
    if dealing is None:
        return "the dealing is not the group's current usable one"
    person = _holder_person(dealing, state, author)
    if person is None:
        return "its author holds no share of the dealing"
    if person in state.approvals.get((body.dealing, body.request), {}):
        return "the holder approved that request already"
    given = state.approved_by.get((body.dealing, person), 0)
    if given >= MAX_APPROVALS:
        return f"a holder approves at most {MAX_APPROVALS} requests of one dealing"
    if body.kind == "recover":
        if body.person == person:
            return "a holder cannot approve its own person's recovery"
        if person in state.releases.get(body.dealing, frozenset()):
            return "the holder released its share of this dealing already"
    return None


def _check_claim(state: GroupState, op: Op, body: Claim) -> str | None:
    dealing = _usable_dealing(state, body.dealing)
    if dealing is None:
        return "the dealing is not the group's current usable one"
    device = body.device.device_id.raw
    if device in state.members:
        return "the claimed device is a member already"
    if device in state.records:
        return "the claimed device is a dealing's recovery record"
    if any(
        c.status == "pending" and c.claim.request == body.request for c in state.claims.values()
    ):
        return "that request is claimed already"
    if device in state.equivocators:
        return "the claimed device equivocated"
    if any(
        c.status == "vetoed" and c.claim.request == body.request and c.claim.dealing == body.dealing
        for c in state.claims.values()
    ):
        return "that request was vetoed under this dealing"
    approved = state.approvals.get((body.dealing, body.request), {})
    ids = set(approved.values())
    if not set(body.approvals) <= ids:
        return "the claim lists an approval of another request, or none applied"
    labels = state.approval_labels
    if any(labels.get(a) != (body.kind, body.person) for a in body.approvals):
        return "the claim lists an approval given for something else"
    threshold = dealing.deal.threshold
    if body.kind == "admit":
        if op.author not in state.members:
            return NOT_A_MEMBER
        if len(body.approvals) < threshold:
            return "an admission needs the approvals of K holder persons"
        return None
    if op.author != dealing.deal.record.device_id.raw:
        return "a recovery claim is signed as the dealing's recovery record"
    if op.seq != 1:
        return "the recovery record signs one claim"
    if body.person not in state.people:
        return "the person recovered has no device in the group"
    paper = {slot.index for slot in dealing.deal.paper}
    if not set(body.paper) <= paper:
        return "the claim lists a paper slot the dealing does not have"
    if len(body.approvals) + len(body.paper) < threshold:
        return "a recovery lists K shares"
    return None


def _check_witness_or_veto(state: GroupState, author: bytes, body: Witness | Veto) -> str | None:
    claim = state.claims.get(body.claim)
    if claim is None or claim.status != "pending":
        return "the claim is not pending"
    person = state.person(author)
    if isinstance(body, Witness):
        if claim.claim.kind == "recover" and person == claim.claim.person:
            return "a device of the person recovered cannot witness it"
        if person in claim.witnesses:
            return "that person witnessed the claim already"
        return None
    if body.kind != claim.claim.kind:
        return "the veto names the wrong kind of claim"
    if body.kind == "recover" and person != claim.claim.person and state.role(author) != "admin":
        return "only a device of the person recovered, or an admin, vetoes a recovery"
    if body.kind == "admit" and state.role(author) != "admin":
        return "only an admin vetoes an admission"
    return None


def completion_role(state: GroupState, claim: ClaimState) -> Role:
    """The role a completion gives: the recovered person's highest among its member
    devices when it completes (a demotion after the claim counts: review of
    claims, F4), else member; member for an admission."""
    if claim.claim.kind == "recover" and any(
        m.role == "admin" for d, m in state.members.items() if state.person(d) == claim.claim.person
    ):
        return "admin"
    return "member"


def witnesses_needed(state: GroupState, claim: ClaimState) -> int:
    """Witnesses (persons) a completion needs: two other persons, one if only one is left."""
    others = [p for p in state.people if claim.claim.kind == "admit" or p != claim.claim.person]
    return min(2, len(others))


def _check_complete(state: GroupState, body: Complete) -> str | None:
    claim = state.claims.get(body.claim)
    if claim is None or claim.status != "pending":
        return "the claim is not pending"
    if body.device_raw != claim.claim.device_raw:
        return "the completion adds another device than the claim's"
    if body.role != completion_role(state, claim):
        return "the completion gives another role than the person has now"
    needed = witnesses_needed(state, claim)
    if needed == 0 or len(claim.witnesses) < needed:
        return "the claim lacks witnesses"
    return None


def replaced_by(state: GroupState, claim: ClaimState) -> tuple[bytes, ...]:
    """The member devices a completion of `claim` replaces (its `replaced`): the
    recovered person's, sorted; none for an admission."""
    if claim.claim.kind != "recover":
        return ()
    return tuple(sorted(d for d in state.members if state.person(d) == claim.claim.person))


def _after_complete(state: GroupState, body: Complete) -> AbstractSet[bytes]:
    """The members once a completion is applied: the recovered person's devices out,
    the claimed device in."""
    claim = state.claims[body.claim]
    members = set(state.members)
    if claim.claim.kind == "recover":
        members -= {d for d in state.members if state.person(d) == claim.claim.person}
    return members | {body.target}


def _apply_recovery(
    state: GroupState, op: Op, body: Approve | Claim | Witness | Veto | Complete, position: int
) -> None:
    """Apply an op of section 19 (checked valid in its past) to the merged state."""
    if isinstance(body, Approve):
        person = state.person(op.author)
        state.approvals.setdefault((body.dealing, body.request), {})[person] = op.id
        state.approval_labels[op.id] = (body.kind, body.person)
        key = (body.dealing, person)
        state.approved_by[key] = state.approved_by.get(key, 0) + 1
        if body.kind == "recover":
            released = state.releases.get(body.dealing, frozenset())
            state.releases[body.dealing] = released | {person}
        return
    if isinstance(body, Claim):
        role: Role = "member"
        if body.kind == "recover" and any(
            m.role == "admin" for d, m in state.members.items() if state.person(d) == body.person
        ):
            role = "admin"
        window = state.windows.get(body.dealing, MAX_VETO)
        state.claims[op.id] = ClaimState(op.id, body, role, window)
        dealing = state.dealing
        if (
            body.kind == "recover"
            and dealing is not None
            and dealing.id == body.dealing
            and dealing.void is None
        ):
            state.dealing = replace(dealing, void="a recovery claim spent it")
        return
    claim = state.claims.get(body.claim)
    if claim is None or claim.status != "pending":
        return  # (a concurrent veto or completion came first in the replay)
    if isinstance(body, Witness):
        witnesses = claim.witnesses | {state.person(op.author)}
        state.claims[body.claim] = replace(claim, witnesses=witnesses)
    elif isinstance(body, Veto):
        state.claims[body.claim] = replace(claim, status="vetoed")
    else:
        if claim.claim.kind == "recover":
            recovered = claim.claim.person
            assert recovered is not None
            if recovered not in state.person_names:  # (a device's own person, named after it)
                state.person_names[recovered] = state.person_name(recovered) or "?"
            for device in [d for d in state.members if state.person(d) == claim.claim.person]:
                del state.members[device]
                state.person_of.pop(device, None)
        state.devices.setdefault(body.target, body.device)
        state.members[body.target] = Member(body.device, body.role, position)
        if claim.claim.person is not None:
            state.person_of[body.target] = claim.claim.person
        state.claims[body.claim] = replace(claim, status="completed")


def rejudge(state: GroupState, op: Op) -> str | None:
    """Why a recovery op, valid in its own past, does not hold in `state` (None: it does)."""
    body = op.body
    if isinstance(body, Approve):
        return _check_approve(state, op.author, body)
    if isinstance(body, Claim):
        return _check_claim(state, op, body)
    if isinstance(body, (Witness, Veto)):
        return _check_witness_or_veto(state, op.author, body)
    if isinstance(body, Complete):
        return _check_complete(state, body)
    return None


def _void_at_deal(state: GroupState, deal: Deal) -> str | None:
    """Why a deal applied in the merged state is void from the start, if it is.

    It was valid in its own past, but a concurrent op replayed before it may
    have removed a holder device or moved it to another person (its sealed
    copy stays with it): the same reasons a later op voids it for. (Found by
    a test of a deal concurrent with a holder's removal, which left a removed
    device holding a share of a usable dealing. A dealer removed
    concurrently never gets here: rule 3 vetoes its deal.)
    """
    for slot in deal.slots:
        for device, _ in slot.copies:
            if device in state.equivocators:
                return "a device holding a share equivocated"
            if device not in state.members:
                return "a device holding a share was removed"
            if state.person(device) != slot.person:
                return "a device holding a share moved to another person"
    return None


def _check_relay(
    state: GroupState, author: bytes, body: AddRelay | RemoveRelay | SetInbox
) -> str | None:
    named = state.named_relays
    if isinstance(body, AddRelay):
        current = named.get(body.key)
        if current == body:
            return "the relay is already one of the group's, at that address"
        if current is None and len(named) >= MAX_RELAYS:
            return f"a group has at most {MAX_RELAYS} relays"
        if body.key not in state.relay_frontier and len(state.relay_frontier) >= MAX_RELAY_KEYS:
            return f"a group's log names at most {MAX_RELAY_KEYS} relays in all"
        return None
    key = body.key if isinstance(body, RemoveRelay) else body.relay
    if key not in named:
        return "the relay is not one of the group's"
    if isinstance(body, SetInbox):
        if state.inboxes.get((author, key)) == body.box:
            return "that inbox is already announced"
        if any(b == body.box and r == key for (_, r), b in state.inboxes.items()):
            return "another device announced that inbox"
    return None


# --- replay ---------------------------------------------------------------------


class Causality(Protocol):
    """Causal order between the ops of one log (the log answers from its clocks)."""

    def before(self, a: Op, b: Op) -> bool:
        """Whether `a` is in `b`'s causal past (and is not `b`)."""
        ...

    def clock_value(self, op_id: bytes, author: bytes) -> int:
        """`author`'s highest sequence number in the op's causal past."""
        ...


def concurrent(causality: Causality, a: Op, b: Op) -> bool:
    return a.id != b.id and not causality.before(a, b) and not causality.before(b, a)


Fork = tuple[int, bytes, bytes]


def fork_of(ids_by_seq: Mapping[int, Iterable[bytes]]) -> Fork | None:
    """One author's equivocation evidence, from its op IDs per sequence number.

    The evidence is a function of the set of ops, never of their arrival
    order (review finding: with three forks, replicas that kept the pair
    they saw first disagreed forever): the lowest sequence number with two
    or more ops, and its two smallest op IDs.
    """
    for seq in sorted(ids_by_seq):
        ids = sorted(ids_by_seq[seq])
        if len(ids) >= 2:
            return seq, ids[0], ids[1]
    return None


def forks_of(ops: Iterable[Op], validity: Mapping[bytes, str | None]) -> dict[bytes, Fork]:
    """Every author's equivocation evidence within a set of ops (`is_evidence`)."""
    seen: dict[bytes, dict[int, list[bytes]]] = {}
    for op in ops:
        if is_evidence(validity.get(op.id, SEQ_REASON)) and not is_record_claim(op):
            seen.setdefault(op.author, {}).setdefault(op.seq, []).append(op.id)
    forks = {}
    for author, by_seq in seen.items():
        if any(len(ids) > 1 for ids in by_seq.values()):
            fork = fork_of(by_seq)
            assert fork is not None
            forks[author] = fork
    return forks


#: Why an op whose number does not follow its author's last one in its own
#: past is invalid (`covey.core.log`).
SEQ_REASON: Final = "its sequence number does not follow its author's last"


def is_evidence(verdict: str | None) -> bool:
    """Whether an op with this verdict counts toward its author's equivocation.

    Every op whose number follows its author's last in its own past does,
    valid or not. Counting valid ops only let a removed admin escape the
    veto of its removal: an invalid twin of its concurrent add, with the
    add's number, reached the remover first, so the remover's clock put
    the add in the removal's past (review of the merge fixes). An op that
    reuses a number its author already used in its own past never counts:
    it fails the sequence check and harms nobody, and counting it let a
    device void its own old ops (PROTOCOL.md 6.2, rule 6).
    """
    return verdict != SEQ_REASON


class Chains:
    """Ops about each device, per author in sequence order.

    An author that never equivocated writes a chain: each of its ops has
    the one before in its causal past. So the ops of one author that are
    not before an op X are those numbered above X's clock entry for that
    author, and among them those after X come last: the ones concurrent
    with X are found by bisection, not by testing every op about the device.
    """

    __slots__ = ("_by",)

    def __init__(self) -> None:
        self._by: dict[bytes, dict[bytes, tuple[list[int], list[Op]]]] = {}

    def add(self, device: bytes, op: Op) -> None:
        seqs, ops = self._by.setdefault(device, {}).setdefault(op.author, ([], []))
        i = bisect.bisect_right(seqs, op.seq)
        seqs.insert(i, op.seq)
        ops.insert(i, op)

    def __contains__(self, device: bytes) -> bool:
        return device in self._by

    def before(self, device: bytes, op: Op, causality: Causality) -> Iterator[Op]:
        """The ops about `device` in `op`'s causal past."""
        for author, (seqs, ops) in self._by.get(device, {}).items():
            yield from ops[: bisect.bisect_right(seqs, causality.clock_value(op.id, author))]

    def not_before(self, device: bytes, op: Op, causality: Causality) -> Iterator[list[Op]]:
        """Per author, the ops about `device` that are not in `op`'s causal past (a list each)."""
        for author, (seqs, ops) in self._by.get(device, {}).items():
            start = bisect.bisect_right(seqs, causality.clock_value(op.id, author))
            yield ops[start:]

    def concurrent_with(self, device: bytes, op: Op, causality: Causality) -> Iterator[Op]:
        """The ops about `device` that are neither before nor after `op`."""
        for author, (seqs, ops) in self._by.get(device, {}).items():
            start = bisect.bisect_right(seqs, causality.clock_value(op.id, author))
            for other in ops[start:]:
                if causality.before(op, other):
                    break  # it, and the rest of the chain, come after `op`
                if other.id != op.id:
                    yield other


@dataclass(frozen=True, slots=True)
class Plan:
    """What a replay decides from the whole set of ops, before it applies any.

    Revocations win (step 3 of the module's rules), so which ones take
    effect is settled over the whole set first; the replay then applies ops
    in order, skipping what those revocations veto.
    """

    forks: Mapping[bytes, Fork]
    #: IDs of the revocations that take effect.
    effective: frozenset[bytes]
    #: Device -> the revocations of it that take effect.
    in_force: Chains
    #: Revocations left out because the replay could not apply them (their
    #: author had lost the right by then): settled again without them.
    excluded: frozenset[bytes] = frozenset()
    #: Completions a concurrent veto of their claim voids (a veto wins).
    voided: frozenset[bytes] = frozenset()

    def live(self, op: Op, validity: Mapping[bytes, str | None]) -> bool:
        """Causally valid, and not at or after its author's equivocation."""
        if validity.get(op.id, "not checked") is not None:
            return False
        fork = self.forks.get(op.author)
        return fork is None or op.seq < fork[0]


def is_rights_op(op: Op) -> bool:
    """Whether the op takes part in the plan: genesis, grants, revocations, and what
    voids a claim or a completion (`voided_ops`): claims, vetoes, completions,
    deals and placements of devices in persons."""
    return isinstance(
        op.body, (Genesis, Add, Remove, SetRole, Complete, Veto, Claim, Deal, SetPerson)
    )


def is_record_claim(op: Op) -> bool:
    """A recovery claim: signed as a dealing's recovery record (never fork evidence:
    two claims of one record are settled by `voided_ops` instead)."""
    return isinstance(op.body, Claim) and op.body.kind == "recover"


def voided_ops(
    ops: Iterable[Op], probe: Plan, validity: Mapping[bytes, str | None], causality: Causality
) -> frozenset[bytes]:
    """The claims and completions the set voids, decided by the causal order alone,
    before revocations are settled.

    * A completion a live veto of its claim, concurrent with it, voids (so a
      completion's removal of the recovered person's devices never takes away
      the right their own concurrent veto needs: review H1). A veto counts
      when it is valid in its own past and live, whatever rule 3 does to it
      later: the doubt goes to the veto (a recovery can be claimed again).
    * Recovery claims under one dealing (the record signed more than one:
      they are concurrent, as a dealing is spent by its first) void each
      other, unless one of them has a completion that stands: then it stands
      and the others are void. With none, or with several, that stand, all
      are void but the one with the smallest ID among those completed (a
      record's late fork must not undo a completed recovery: review of
      claims, F2; and equivocation evidence, which would skip every op from
      the fork on, does not apply to records).
    * A claim (an admission or a recovery) concurrent with an op that voids
      its dealing is void: a removal of the dealer or of a device holding a
      copy, a move of such a device to another person, or another dealing
      (PROTOCOL.md 19.3). In its own past the dealing was usable, but a
      replay may place it before the voiding op, and it would stay pending
      under a dealing its group no longer trusts: a compromised holder could
      sign a claim backdated to before its removal (review of claims, F1d).
      Whoever wrote the voiding op (an admin, or a holder leaving) could
      have vetoed it anyway; a claim after it, in its past, is judged there.
    * Completions of one claim (concurrent: a completion is invalid once its
      claim is completed in its past) void each other but the one with the
      smallest ID: a completion is a revocation of the devices it replaces,
      and one the replay could not apply (its claim completed first) would
      otherwise stay in force and the revocations be settled again.
    A voided claim's completions are void with it.
    """
    vetoes: dict[bytes, list[Op]] = {}
    completions: list[Op] = []
    claims: dict[bytes, list[Op]] = {}
    every_claim: list[Op] = []
    deals: dict[bytes, Op] = {}
    removals: dict[bytes, list[Op]] = {}
    placements: dict[bytes, list[Op]] = {}
    for op in ops:
        if not probe.live(op, validity):
            continue
        body = op.body
        if isinstance(body, Veto):
            vetoes.setdefault(body.claim, []).append(op)
        elif isinstance(body, Complete):
            completions.append(op)
        elif isinstance(body, Claim):
            every_claim.append(op)
            if is_record_claim(op):
                claims.setdefault(body.dealing, []).append(op)
        elif isinstance(body, Deal):
            deals[op.id] = op
        elif isinstance(body, Remove):
            removals.setdefault(body.target, []).append(op)
        elif isinstance(body, SetPerson):
            placements.setdefault(body.target, []).append(op)
    voided = {
        c.id
        for c in completions
        if any(concurrent(causality, v, c) for v in vetoes.get(c.body.claim, ()))  # type: ignore[union-attr]
    }
    for claim in every_claim:
        if _dealing_voided_concurrently(claim, deals, removals, placements, causality):
            voided.add(claim.id)
    first: dict[bytes, bytes] = {}
    for c in completions:
        if c.body.claim in voided:  # type: ignore[union-attr]
            voided.add(c.id)
        elif c.id not in voided:
            claim_id = c.body.claim  # type: ignore[union-attr]
            first[claim_id] = min(first.get(claim_id, c.id), c.id)
    voided.update(c.id for c in completions if first.get(c.body.claim, c.id) != c.id)  # type: ignore[union-attr]
    completed: dict[bytes, list[bytes]] = {}
    for c in completions:
        if c.id not in voided:
            completed.setdefault(c.body.claim, []).append(c.id)  # type: ignore[union-attr]
    for rivals in claims.values():
        if len(rivals) < 2:
            continue
        done = sorted(r.id for r in rivals if r.id in completed)
        keep = done[0] if done else None
        for rival in rivals:
            if rival.id != keep:
                voided.add(rival.id)
                voided.update(completed.get(rival.id, ()))
    return frozenset(voided)


def _dealing_voided_concurrently(
    claim: Op,
    deals: Mapping[bytes, Op],
    removals: Mapping[bytes, list[Op]],
    placements: Mapping[bytes, list[Op]],
    causality: Causality,
) -> bool:
    """Whether a live op concurrent with `claim` voids the dealing it is made under
    (`voided_ops`)."""
    deal = deals.get(claim.body.dealing)  # type: ignore[union-attr]
    if deal is None:
        return False  # (invalid in its own past, then)
    body = deal.body
    assert isinstance(body, Deal)
    voiders = list(removals.get(deal.author, ()))
    for slot in body.slots:
        for device, _ in slot.copies:
            voiders += removals.get(device, ())
            voiders += [p for p in placements.get(device, ()) if p.body.person != slot.person]  # type: ignore[union-attr]
    voiders += [d for d in deals.values() if d.id != deal.id]
    return any(concurrent(causality, claim, v) for v in voiders)


def make_plan(
    rights: Iterable[Op],
    position: Mapping[bytes, int],
    validity: Mapping[bytes, str | None],
    causality: Causality,
    forks: Mapping[bytes, Fork],
    excluded: frozenset[bytes] = frozenset(),
) -> Plan:
    """Settle which revocations of a causally closed set of ops take effect.

    `rights` holds at least the set's genesis, grants and revocations
    (`is_rights_op`), `position` their places in the replay order.
    """
    forks = dict(forks)  # a snapshot: the log's evidence grows in place
    probe = Plan(forks, frozenset(), Chains(), excluded)
    rights = list(rights)
    voided = voided_ops(rights, probe, validity, causality)
    seniority: dict[bytes, int] = {}
    grants_to: dict[bytes, list[Op]] = {}
    revocations: list[Op] = []
    places: dict[bytes, int] = {}
    # (In any order: each result below is a minimum or a set.)
    for op in rights:
        if not probe.live(op, validity) or op.id in voided:
            continue
        granted = grants(op)
        if granted is not None:
            grants_to.setdefault(granted[0], []).append(op)
            if isinstance(op.body, (Add, Complete)):
                place = position[op.id]
                if place < seniority.get(granted[0], NO_SENIORITY):
                    seniority[granted[0]] = place
        elif isinstance(op.body, Genesis):
            seniority[op.author] = 0
        if op.id not in excluded and revokes(op):
            revocations.append(op)
            places[op.id] = position[op.id]
    effective = _effective_revocations(revocations, grants_to, causality, seniority, places)
    in_force = Chains()
    for op in revocations:
        if op.id in effective:
            for target, _ in revokes(op):
                in_force.add(target, op)
    return Plan(forks, frozenset(effective), in_force, excluded, voided)


def _vetoes(
    causality: Causality, revocation: Op, target: bytes, taken: Level | Literal["all"], op: Op
) -> bool:
    """Whether an effective `revocation` of `target` would veto `op`."""
    if not concurrent(causality, revocation, op):
        return False
    if op.author == target and _covers(taken, author_needs(op)):
        return True
    granted = grants(op)
    return granted is not None and granted[0] == target and _covers(taken, granted[1])


def _effective_revocations(
    revocations: list[Op],
    grants_to: Mapping[bytes, list[Op]],
    causality: Causality,
    seniority: Mapping[bytes, int],
    position: Mapping[bytes, int],
) -> set[bytes]:
    """Settle which revocations take effect (grounded, then by seniority).

    r1 attacks r2 when r1, in effect, would veto r2, or would veto a grant
    r2's author holds its right through (its support: the grants to it in
    r2's causal past, and theirs, recursively). Without the second kind, a
    removed admin kept its power through a device it added concurrently
    with its removal (review finding): the device's revocation of the
    remover defeated the removal, although the removal vetoes the device's
    add. Now the two attack each other, and the cycle goes to seniority.
    """
    support_memo: dict[bytes, frozenset[Op]] = {}

    def support(op: Op) -> frozenset[Op]:
        """The grants `op`'s author holds its right through, recursively (iterative:
        a chain of a thousand puppets, each added by the one before, is no deeper)."""
        stack = [(op, False)]
        while stack:
            current, expanded = stack.pop()
            if current.id in support_memo:
                continue
            under = [g for g in grants_to.get(current.author, ()) if causality.before(g, current)]
            if not expanded:
                stack.append((current, True))
                stack.extend((g, False) for g in under if g.id not in support_memo)
                continue
            result: set[Op] = set(under)
            for grant in under:
                result |= support_memo.get(grant.id, frozenset())
            support_memo[current.id] = frozenset(result)
        return support_memo[op.id]

    # Index each revocation under every device whose revocation could attack it.
    exposed: dict[bytes, list[tuple[Op, Op]]] = {}  # device -> (revocation, op it rests on)
    for r in revocations:
        for held in (r, *support(r)):
            exposed.setdefault(held.author, []).append((r, held))
            granted = grants(held)
            if granted is not None and held is not r:
                exposed.setdefault(granted[0], []).append((r, held))
    attackers: dict[bytes, set[bytes]] = {r.id: set() for r in revocations}
    #: The attackers that veto a grant of the revocation's support (not it).
    through_support: dict[bytes, set[bytes]] = {r.id: set() for r in revocations}
    for r1 in revocations:
        for target, taken in revokes(r1):
            for r2, held in exposed.get(target, ()):
                if r2.id == r1.id:
                    continue
                kind = attackers[r2.id] if held is r2 else through_support[r2.id]
                if r1.id not in kind and _vetoes(causality, r1, target, taken, held):
                    attackers[r2.id].add(r1.id)
                    kind.add(r1.id)
    attacked_by_me: dict[bytes, set[bytes]] = {r.id: set() for r in revocations}
    for rid, sources in attackers.items():
        for source in sources:
            attacked_by_me[source].add(rid)
    # Grounded, by a worklist: one with no attacker left undefeated takes
    # effect; what it attacks, and what attacks it, is defeated.
    undecided = {r.id for r in revocations}
    effective: set[bytes] = set()
    live = {rid: len(sources) for rid, sources in attackers.items()}
    ready = deque(sorted(rid for rid, count in live.items() if not count))

    def defeat(rid: bytes) -> None:
        if rid in undecided:
            undecided.discard(rid)
            for victim in attacked_by_me[rid]:
                if victim in undecided:
                    live[victim] -= 1
                    if not live[victim]:
                        ready.append(victim)

    def take_effect(rid: bytes) -> None:
        undecided.discard(rid)
        effective.add(rid)
        for other in (*attacked_by_me[rid], *attackers[rid]):
            defeat(other)

    author_of = {r.id: r.author for r in revocations}
    while True:
        while ready:
            rid = ready.popleft()
            if rid in undecided:
                take_effect(rid)
        if not undecided:
            return effective
        # Only cycles are left, and what they attack: in each cycle nothing
        # outside attacks, the most senior takes effect (they are
        # independent, so all at once: a review found one per round
        # quadratic in the number of cycles).
        live_attackers = {rid: attackers[rid] & undecided for rid in undecided}
        winners = []
        for cycle in _first_cycles(live_attackers):
            # A revocation whose author holds its right through a grant
            # that another revocation of the cycle vetoes yields to it,
            # whatever its seniority (review of the merge fixes: a removed
            # admin promoted an old member, which then removed the remover
            # and won on the member's seniority).
            uncontested = [rid for rid in cycle if not through_support[rid] & undecided]
            winners.append(
                min(
                    uncontested or cycle,
                    key=lambda rid: (seniority.get(author_of[rid], NO_SENIORITY), position[rid]),
                )
            )
        for winner in winners:
            take_effect(winner)


def _first_cycles(attackers: Mapping[bytes, set[bytes]]) -> list[list[bytes]]:
    """The cycles that nothing outside them attacks (each a list of revocations).

    `attackers` holds the undecided revocations, each with its undecided
    attackers (every one has some). Seniority settles a cycle; a revocation
    that a cycle attacks waits for the cycle to be settled, so that a
    revocation attacking nothing never decides anything but itself. (A
    convergence search found a member's leave, written after everything,
    winning by seniority against the cycle above it and undoing a removal
    settled before it came: the result then depended on whether a replica
    settled the two together.) Tarjan's strongly connected components,
    iteratively; the cycles are few and small.
    """
    index: dict[bytes, int] = {}
    low: dict[bytes, int] = {}
    component: dict[bytes, int] = {}
    stack: list[bytes] = []
    on_stack: set[bytes] = set()
    counter = 0
    components = 0
    for root in sorted(attackers):
        if root in index:
            continue
        work = [(root, iter(sorted(attackers[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(attackers[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = components
                    if member == node:
                        break
                components += 1
    attacked_from_outside = {
        component[rid]
        for rid, sources in attackers.items()
        if any(component[a] != component[rid] for a in sources)
    }
    cycles: dict[int, list[bytes]] = {}
    for rid in sorted(attackers):
        if component[rid] not in attacked_from_outside:
            cycles.setdefault(component[rid], []).append(rid)
    return [cycles[c] for c in sorted(cycles)]


def defeated_when_last(
    op: Op,
    past: GroupState,
    grants_before: Callable[[Op], Iterable[Op]],
    validity: Mapping[bytes, str | None],
) -> bool:
    """Whether a valid revocation that follows every op of its causal past is defeated.

    Nothing in its past is concurrent with it, so it vetoes nothing there,
    but an effective revocation in its past still attacks it if it vetoes a
    grant the revocation's author holds its right through (its support, as
    `_effective_revocations` defines it: the live grants to the author in
    its past, `grants_before(op)`, and recursively to their authors). Such
    a grant is exactly one the replay of the past skipped as vetoed, so
    `past` (the state of the op's causal past) answers without settling the
    revocations again. The op attacks nothing (nothing in its past is
    concurrent with it), and seniority settles cycles before what they
    attack (`_first_cycles`), so it changes no other revocation's fate.
    Valid only when the past's settle left no revocation out (`excluded`).
    (Found by a convergence search: the fast path and the branch states
    took every such revocation to take effect, and replicas that took it
    on different paths disagreed for good.)
    """
    skipped = past.skipped
    seen: set[bytes] = set()
    stack = [op]
    while stack:
        current = stack.pop()
        for grant in grants_before(current):
            if grant.id in seen:
                continue
            seen.add(grant.id)
            why = skipped.get(grant.id)
            if validity.get(grant.id, "not checked") is not None or why in (EQUIVOCATED, VOIDED):
                continue  # not live (a voided completion neither: review of claims, F8)
            if why in (VETOED_AUTHOR, VETOED_TARGET):
                return True
            stack.append(grant)
    return False


class Replayer:
    """Applies ops one at a time to a state (the shared step of every path)."""

    def __init__(
        self,
        state: GroupState,
        causality: Causality | None = None,
        ops: Mapping[bytes, Op] | None = None,
    ) -> None:
        self.state = state
        #: Needed for the set_policy frontier of a merge; an op that follows
        #: every head (the fast path) is after every policy op, so needs none.
        self._causality = causality
        self._ops = ops

    def apply(self, op: Op, position: int) -> None:
        """Apply a valid op, unconditionally (the caller has checked it)."""
        state = self.state
        body = op.body
        if isinstance(body, Genesis):
            state.devices[op.author] = body.founder
            state.members[op.author] = Member(body.founder, "admin", position)
            state.policy_frontier[op.id] = body.history
        elif isinstance(body, Add):
            state.devices.setdefault(body.target, body.device)
            existing = state.members.get(body.target)
            if existing is None:
                state.members[body.target] = Member(body.device, body.role, position)
            elif existing.role != body.role:  # added twice concurrently: the lesser role
                state.members[body.target] = Member(existing.record, "member", existing.seniority)
        elif isinstance(body, Remove):
            state.members.pop(body.target, None)
            state.person_of.pop(body.target, None)
            dealing = state.dealing
            if dealing is not None and dealing.void is None:
                if body.target == dealing.dealer:
                    state.dealing = replace(dealing, void="its dealer was removed")
                elif body.target in dealing.holders:
                    state.dealing = replace(dealing, void="a device holding a share was removed")
        elif isinstance(body, SetPerson):
            if body.target in state.members:  # (a concurrent removal may have come first)
                moved = state.person(body.target) != body.person
                state.person_of[body.target] = body.person
                state.person_names[body.person] = body.name
                dealing = state.dealing
                if (
                    moved
                    and dealing is not None
                    and dealing.void is None
                    and body.target in dealing.holders
                ):
                    state.dealing = replace(
                        dealing, void="a device holding a share moved to another person"
                    )
        elif isinstance(body, (Approve, Claim, Witness, Veto, Complete)):
            _apply_recovery(state, op, body, position)
        elif isinstance(body, Deal):
            holders = {device: slot.index for slot in body.slots for device, _ in slot.copies}
            state.dealing = Dealing(op.id, op.author, body, holders, _void_at_deal(state, body))
            state.records = state.records | {body.record.device_id.raw}
            state.windows[op.id] = body.veto
        elif isinstance(body, SetRole):
            member = state.members.get(body.target)
            if member is not None:
                state.members[body.target] = Member(member.record, body.role, member.seniority)
        elif isinstance(body, SetPolicy):
            if self._causality is None:  # the op follows everything: it is the frontier
                state.policy_frontier = {op.id: body.history}
            else:
                assert self._ops is not None
                before, ops = self._causality.before, self._ops
                state.policy_frontier = {
                    pid: value
                    for pid, value in state.policy_frontier.items()
                    if not before(ops[pid], op)
                }
                state.policy_frontier[op.id] = body.history
        elif isinstance(body, (AddRelay, RemoveRelay)):
            value = body if isinstance(body, AddRelay) else None
            frontier = state.relay_frontier.get(body.key, {})
            if self._causality is None:  # the op follows everything about the relay
                frontier = {}
            else:
                assert self._ops is not None
                before, ops = self._causality.before, self._ops
                frontier = {pid: v for pid, v in frontier.items() if not before(ops[pid], op)}
            frontier[op.id] = value
            state.relay_frontier[body.key] = frontier
        elif isinstance(body, SetInbox):
            state.inboxes[(op.author, body.relay)] = body.box
        else:
            assert isinstance(body, Rotate)
        rotation = rotation_of(body)
        if rotation is not None:
            state.epochs.append(Epoch(op.id, op.author, rotation, position))
        state.applied.append(op.id)
        if isinstance(body, (Remove, SetRole, Complete)):  # the ops that can take the last admin
            self.ensure_admin()

    def step(self, op: Op, position: int, plan: Plan, validity: Mapping[bytes, str | None]) -> None:
        """Apply `op`, or record why it is skipped (the replay's one step)."""
        assert self._causality is not None
        reason = _skip_reason(op, validity, plan, self._causality, self.state)
        if reason is None:
            self.apply(op, position)
            return
        self.state.skipped[op.id] = reason
        if reason == EQUIVOCATED:
            self.remove_equivocator(op.author)

    def remove_equivocator(self, device: bytes) -> None:
        dealing = self.state.dealing
        if dealing is not None and dealing.void is None:
            if device == dealing.dealer:
                self.state.dealing = replace(dealing, void="its dealer equivocated")
            elif device in dealing.holders:
                self.state.dealing = replace(dealing, void="a device holding a share equivocated")
        if self.state.members.pop(device, None) is not None:
            self.state.notices.append(
                f"device {device.hex()[:16]} signed two different ops with one sequence "
                "number and is no longer treated as a member"
            )
            self.ensure_admin()

    def ensure_admin(self) -> None:
        state = self.state
        if state.members and not state.admins:
            senior = state.by_seniority()[0]
            member = state.members[senior]
            state.members[senior] = Member(member.record, "admin", member.seniority)
            state.notices.append(
                f"concurrent changes left no admin; the most senior member "
                f"{senior.hex()[:16]} became admin"
            )


def new_state(genesis: Op, plan: Plan) -> GroupState:
    """The empty state a replay starts from."""
    assert isinstance(genesis.body, Genesis)
    state = GroupState(genesis.id, genesis.body.name, genesis.author)
    state.equivocators = {d: (a, b) for d, (_, a, b) in plan.forks.items()}
    return state


def unapplied_revocations(state: GroupState, plan: Plan) -> frozenset[bytes]:
    """Revocations the plan put in force that the replay skipped (must be none)."""
    return frozenset(rid for rid in plan.effective if rid in state.skipped)


def settle(
    order: Sequence[Op],
    validity: Mapping[bytes, str | None],
    causality: Causality,
    forks: Mapping[bytes, Fork],
    ops: Mapping[bytes, Op],
) -> tuple[GroupState, Plan]:
    """Replay a non-empty, causally closed set of ops from genesis: the state and its plan.

    A revocation in force that the replay cannot apply (its author lost the
    right through a revocation settled with it) must veto nothing: it is
    left out and the revocations are settled again, until every revocation
    in force is applied.
    """
    position = {op.id: i for i, op in enumerate(order)}
    rights = [op for op in order if is_rights_op(op)]
    excluded: frozenset[bytes] = frozenset()
    while True:
        plan = make_plan(rights, position, validity, causality, forks, excluded)
        state = new_state(order[0], plan)
        replayer = Replayer(state, causality, ops)
        for i, op in enumerate(order):
            replayer.step(op, i, plan, validity)
        stray = unapplied_revocations(state, plan)
        if not stray:
            state.in_force = plan.effective
            state.excluded = plan.excluded
            return state, plan
        excluded |= stray


def replay(
    order: Sequence[Op],
    validity: Mapping[bytes, str | None],
    causality: Causality,
    forks: Mapping[bytes, Fork] | None = None,
    ops: Mapping[bytes, Op] | None = None,
) -> GroupState | None:
    """The state of a causally closed set of ops, given in replay order.

    `validity[op]` is None for a causally valid op, else the reason it is
    not; `forks` is every author's equivocation evidence in the set
    (computed from the set when not given). Returns None for an empty set.
    """
    if not order:
        return None
    if forks is None:
        forks = forks_of(order, validity)
    by_id = ops if ops is not None else {op.id: op for op in order}
    return settle(order, validity, causality, forks, by_id)[0]


EQUIVOCATED: Final = "its author equivocated"
#: Why the replay skips an op an effective revocation vetoes (`_vetoes`).
VETOED_AUTHOR: Final = "vetoed: its author's rights were revoked concurrently"
VETOED_TARGET: Final = "vetoed: a concurrent revocation of its target took effect"
#: Why it skips a revocation that does not take effect.
DEFEATED: Final = "vetoed: a concurrent revocation of its author took effect"
NOT_A_MEMBER: Final = "its author is not a member"
#: Why it skips a claim or completion a concurrent op voids (`voided_ops`): a veto
#: of the claim, a rival claim of its record, an op that voids its dealing.
VOIDED: Final = "vetoed: a concurrent veto, rival claim or end of its dealing voids it"
#: Rank of an author with no live add (after every real position).
NO_SENIORITY: Final = 1 << 62


def _skip_reason(
    op: Op,
    validity: Mapping[bytes, str | None],
    plan: Plan,
    causality: Causality,
    state: GroupState,
) -> str | None:
    fork = plan.forks.get(op.author)
    if fork is not None and op.seq >= fork[0]:
        return EQUIVOCATED
    invalid = validity.get(op.id, "not checked")
    if invalid is not None:
        return invalid
    if op.id in plan.excluded:
        return "its author had lost the right by the time it would take effect"
    if op.id in plan.voided:
        return VOIDED
    if revokes(op) and op.id not in plan.effective:
        return DEFEATED
    needed = author_needs(op)
    in_force = plan.in_force
    if op.author in in_force:
        for r in in_force.concurrent_with(op.author, op, causality):
            if _covers(_taken(r, op.author), needed):
                return VETOED_AUTHOR
    granted = grants(op)
    if granted is not None and granted[0] in in_force:
        for r in in_force.concurrent_with(granted[0], op, causality):
            if _covers(_taken(r, granted[0]), granted[1]):
                return VETOED_TARGET
    if isinstance(op.body, (Approve, Claim, Witness, Veto, Complete)):
        # Judged again against the merged state at its place in the replay: a
        # dealing voided, an approval or a witness vetoed concurrently (rule 3)
        # must not carry a claim there (review of claims, F1).
        why = rejudge(state, op)
        if why is not None:
            return "no longer holds in the merged state: " + why
    if isinstance(op.body, Genesis) or is_recovery_claim(op, state):
        return None  # (a recovery claim's author is the dealing's record, never a member)
    if isinstance(op.body, Complete):
        claim = state.claims.get(op.body.claim)
        if claim is None or claim.status != "pending":
            # Two members completed it concurrently: the first in the replay
            # order did (its epoch stands; this one's would be a second).
            return "its claim was completed or vetoed first"
    member = state.members.get(op.author)
    if member is None:
        return "its author is not a member here"
    if needed == "admin" and member.role != "admin":
        return "its author is not an admin here"
    return None
