"""What must hold in every simulated world, checked as the world runs.

Checked after every step (one event handled by one node), for what changed:

* `convergence`: replicas holding the same set of a group's ops agree on its
  members, roles, current epoch, history policy, health and equivocators.
* `durability`: an op another device stored is in its author's store too
  (the author persisted before it sent: a crash cannot lose what a peer was
  told, which would make the author reuse a sequence number).
* `no-honest-equivocation`: no simulated device (all honest) ever signs two
  ops with one sequence number.
* `keys-agree`: every device that holds an epoch's key holds the same key.
* `secrecy`: a device never holds the key of an epoch that causally follows
  its removal (unless it was added again in between), compared by value, so
  a "new" epoch that reuses an old key is caught too.
* `integrity`: every op the merged log applies was authored by a device
  holding the right in the op's causal past, judged by `REFERENCE_RULES`
  below, an independent copy of PROTOCOL.md's rule table (so a bug in the
  core's table cannot hide itself).
* `no-internal-error`: no node reports an internal error (checked by the world).
* `witnessed`: every applied `complete` has, in its causal past, witnesses
  of its claim by members of at least two persons other than the one it
  replaces (one, when only one other person has a member device), none of
  them of that person.
* `veto-wins`: a claim with an applied veto is never completed, in the
  merged log and in any device's replica.
* `convergence` covers claims: replicas holding the same ops agree on each
  claim's status and witnesses.
* `secrecy` covers recoveries: a completed recovery removes the person's
  member devices (in its causal past), which never hold the key of an epoch
  from the completion on (unless added again in between).

Checked once the network has healed and every device has been online a
while (`final`):

* `liveness`: the current members of each group hold the same ops, the same
  state, and the current key, and the group needs no healing; and every
  device removed from a group that still holds it knows it was removed.
* `no-lost-keys`: every current member opens every sealed note of an epoch of
  the merged state that its history policy lets it read, and refuses
  (`NeverAMember`) every note by a device the merged state never made a
  member (its add was vetoed).

"The truth" is a replica per group fed with every op any device stored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from covey.core.group import Group
from covey.core.log import GroupLog
from covey.core.membership import GroupState
from covey.core.ops import (
    Add,
    AddRelay,
    Approve,
    Claim,
    Complete,
    Deal,
    Genesis,
    Op,
    Remove,
    RemoveRelay,
    SetInbox,
    SetPerson,
    SetPolicy,
    SetRole,
    Veto,
    Witness,
)
from covey.core.seal import open_bytes
from covey.errors import CoveyError, NeverAMember
from covey.sim.world import Device, Violation, World

#: Who may author each kind of op (PROTOCOL.md 6.1), written again here.
REFERENCE_RULES: Final = {
    "add": "admin",
    "remove": "self_or_admin",
    "set_role": "admin",
    "rotate": "member",
    "set_policy": "admin",
    "add_relay": "admin",
    "remove_relay": "admin",
    "set_inbox": "member",
    "set_person": "admin",
    "deal": "admin",
    "approve": "member",
    "complete": "member",
    # Judged apart (`_recovery_right`): a recovery's claim is the recovery
    # record's; a witness is not of the person recovered; a veto is an
    # admin's (an admission) or the person's own device's (a recovery).
    "claim": "member",
    "witness": "member",
    "veto": "member",
}


@dataclass
class Sealed:
    """A note a simulated user sealed."""

    group: bytes
    epoch: bytes
    author: str
    data: bytes
    plaintext: bytes
    #: The author's device ID.
    author_id: bytes = b""


def _kind(op: Op) -> str:
    body = op.body
    if isinstance(body, Genesis):
        return "genesis"
    if isinstance(body, Add):
        return "add"
    if isinstance(body, Remove):
        return "remove"
    if isinstance(body, SetRole):
        return "set_role"
    if isinstance(body, SetPolicy):
        return "set_policy"
    if isinstance(body, AddRelay):
        return "add_relay"
    if isinstance(body, RemoveRelay):
        return "remove_relay"
    if isinstance(body, SetInbox):
        return "set_inbox"
    if isinstance(body, SetPerson):
        return "set_person"
    for kind in (Deal, Approve, Claim, Witness, Veto, Complete):
        if isinstance(body, kind):
            return kind.KIND
    return "rotate"


def summary(state: GroupState) -> tuple[Any, ...]:
    return (
        tuple(sorted((d.hex(), m.role) for d, m in state.members.items())),
        state.current_epoch.id.hex(),
        state.history,
        state.needs_healing,
        tuple(sorted(d.hex() for d in state.equivocators)),
        tuple(sorted((k.hex(), r.host, r.port) for k, r in state.relays.items())),
        tuple(sorted((d.hex(), r.hex(), b.hex()) for (d, r), b in state.inboxes.items())),
        tuple(sorted((d.hex(), state.person(d).hex()) for d in state.members)),
        tuple(sorted((p.hex(), n) for p, n in state.person_names.items())),
        tuple(
            sorted(
                (c.hex(), claim.status, tuple(sorted(w.hex() for w in claim.witnesses)))
                for c, claim in state.claims.items()
            )
        ),
    )


class Invariants:
    """Watches a `World` and raises `Violation` at the first broken invariant."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.truth: dict[bytes, GroupLog] = {}
        self._by_id: dict[bytes, Device] = {}
        #: (group, epoch) -> the key every holder must have.
        self.keys: dict[tuple[bytes, bytes], bytes] = {}
        #: Per group and device: (digest of the op set, summary).
        self.views: dict[bytes, dict[int, tuple[bytes, tuple[Any, ...]]]] = {}
        self._checked_applied: dict[bytes, set[bytes]] = {}
        self._dirty_devices: set[int] = set()
        self._dirty_groups: set[bytes] = set()
        self.sealed: list[Sealed] = []
        world.on_persist.append(self.persisted)
        world.after_step.append(self.step)

    @property
    def by_id(self) -> dict[bytes, Device]:
        if len(self._by_id) != len(self.world.devices):
            self._by_id = {d.id: d for d in self.world.devices}
        return self._by_id

    # --- as the world runs ----------------------------------------------------------

    def persisted(self, device: Device, new: list[tuple[bytes, Op]]) -> None:
        for group_id, op in new:
            author = self.by_id.get(op.author)
            if author is not None and author is not device:
                held = author.store.groups.get(group_id)
                if held is not None and op.id not in held.op_ids:
                    raise Violation(
                        "durability",
                        f"{device.name} stored op {op.id.hex()[:12]} by {author.name}, "
                        f"which {author.name}'s own store does not hold",
                    )
            truth = self.truth.setdefault(group_id, GroupLog(group_id))
            if op.id not in truth:
                truth.receive_op(op)
            self._dirty_groups.add(group_id)
        self._dirty_devices.add(device.index)

    def step(self) -> None:
        for index in sorted(self._dirty_devices):
            self._check_device(self.world.device_at(index))
        self._dirty_devices.clear()
        for group_id in sorted(self._dirty_groups):
            self._check_truth(group_id)
        if self._dirty_groups:
            for device in self.world.devices:
                self._check_secrecy(device)
        self._dirty_groups.clear()

    def _check_device(self, device: Device) -> None:
        node = device.node
        if node is None:
            return
        for group_id, group in node.groups.items():
            for epoch, key in group.keys.items():
                known = self.keys.setdefault((group_id, epoch), key)
                if known != key:
                    raise Violation(
                        "keys-agree",
                        f"{device.name} holds another key for epoch {epoch.hex()[:12]}",
                    )
            if group.log.state is None:
                continue
            digest = hashlib.blake2b(b"".join(sorted(group.log.ops)), digest_size=16).digest()
            if group.log.state.claims:
                self._check_vetoes(device.name, group.log.state, group.log.ops)
            mine = summary(group.log.state)
            views = self.views.setdefault(group_id, {})
            views[device.index] = (digest, mine)
            for other, (their_digest, theirs) in views.items():
                if other != device.index and their_digest == digest and theirs != mine:
                    raise Violation(
                        "convergence",
                        f"{device.name} and {self.world.device_at(other).name} hold the same "
                        f"{len(group.log)} ops of a group but disagree: {mine} vs {theirs}",
                    )

    def _check_truth(self, group_id: bytes) -> None:
        truth = self.truth[group_id]
        if truth.equivocations:
            device = next(iter(sorted(truth.equivocations)))
            name = self.by_id[device].name if device in self.by_id else device.hex()[:12]
            raise Violation("no-honest-equivocation", f"{name} signed two ops with one number")
        state = truth.state
        if state is None:
            return
        self._check_vetoes("the merged log", state, truth.ops)
        checked = self._checked_applied.setdefault(group_id, set())
        for op_id in state.applied:
            if op_id in checked:
                continue
            checked.add(op_id)
            op = truth.ops[op_id]
            kind = _kind(op)
            if kind == "genesis":
                continue
            past = truth.state_of(op.parents)
            if isinstance(op.body, Claim) and op.body.kind == "recover":
                dealt = truth.ops.get(op.body.dealing)
                if (
                    dealt is None
                    or not isinstance(dealt.body, Deal)
                    or (dealt.body.record.device_id.raw != op.author)
                ):
                    raise Violation("integrity", "a recovery claim not signed as its record")
                continue
            role = past.role(op.author) if past is not None else None
            if past is not None and role is not None:
                self._recovery_right(truth, past, op, role)
            if isinstance(op.body, Complete):
                self._check_witnessed(truth, op, op.body)
            needed = REFERENCE_RULES[kind]
            if needed == "self_or_admin":
                target = getattr(op.body, "target", None)
                needed = "member" if target == op.author else "admin"
            if role is None or (needed == "admin" and role != "admin"):
                author = self.by_id.get(op.author)
                raise Violation(
                    "integrity",
                    f"a {kind} op by {author.name if author else '?'} (a {role or 'non-member'}"
                    " in its causal past) was applied",
                )

    def _recovery_right(self, truth: GroupLog, past: GroupState, op: Op, role: str) -> None:
        """Who may witness and veto a claim (PROTOCOL.md 19.4), judged in the op's past."""
        body = op.body
        if not isinstance(body, (Witness, Veto)):
            return
        claimed = truth.ops[body.claim].body
        assert isinstance(claimed, Claim)
        author = self.by_id.get(op.author)
        who = author.name if author is not None else op.author.hex()[:12]
        mine = past.person(op.author)
        if isinstance(body, Witness) and claimed.kind == "recover" and mine == claimed.person:
            raise Violation("integrity", f"{who} witnessed its own person's recovery")
        if isinstance(body, Veto):
            if claimed.kind == "admit" and role != "admin":
                raise Violation("integrity", f"{who}, no admin, vetoed an admission")
            if claimed.kind == "recover" and mine != claimed.person:
                raise Violation("integrity", f"{who} vetoed another person's recovery")

    def _check_witnessed(self, truth: GroupLog, op: Op, body: Complete) -> None:
        """A completion rests on witnesses of other persons in its causal past."""
        claimed = truth.ops[body.claim].body
        assert isinstance(claimed, Claim)
        past = truth.state_of(op.parents)
        assert past is not None
        others = {past.person(d) for d in past.members if past.person(d) != claimed.person}
        persons = set()
        for other in truth.ops.values():
            if (
                isinstance(other.body, Witness)
                and other.body.claim == body.claim
                and truth.clock_value(op.id, other.author) >= other.seq
            ):
                before = truth.state_of(other.parents)
                if before is not None and other.author in before.members:
                    persons.add(before.person(other.author))
        persons.discard(claimed.person)
        if not persons or len(persons) < min(2, len(others)):
            raise Violation(
                "witnessed",
                f"a claim completed with witnesses of {len(persons)} other person(s) "
                f"of {len(others)}",
            )

    def _check_vetoes(self, where: str, state: GroupState, ops: dict[bytes, Op]) -> None:
        """A claim with an applied veto is not completed."""
        for op_id in state.applied:
            body = ops[op_id].body
            if isinstance(body, Veto):
                claim = state.claims.get(body.claim)
                if claim is not None and claim.status == "completed":
                    raise Violation("veto-wins", f"{where}: a vetoed claim completed")

    def _check_secrecy(self, device: Device) -> None:
        for group_id, truth in self.truth.items():
            state = truth.state
            if state is None or device.id not in state.devices:
                continue
            group = self.world.group_of(device, group_id)
            if group is None or not group.keys:
                continue
            held = set(group.keys.values())
            for epoch in self._epochs_after_removal(truth, state, device.id):
                key = self.keys.get((group_id, epoch))
                if key is not None and key in held:
                    raise Violation(
                        "secrecy",
                        f"{device.name} holds the key of epoch {epoch.hex()[:12]}, "
                        "which follows its removal",
                    )

    def _epochs_after_removal(
        self, truth: GroupLog, state: GroupState, device: bytes
    ) -> list[bytes]:
        removals = [
            truth.ops[i]
            for i in state.applied
            if isinstance(body := truth.ops[i].body, Remove) and body.target == device
        ] + self._replaced(truth, state, device)
        if not removals:
            return []
        adds = [
            truth.ops[i]
            for i in state.applied
            if isinstance(body := truth.ops[i].body, (Add, Complete)) and body.target == device
        ]

        def before(a: Op, b: Op) -> bool:
            """a is b or in b's causal past."""
            return a.id == b.id or truth.clock_value(b.id, a.author) >= a.seq

        found = []
        for epoch in state.epochs:
            op = truth.ops[epoch.id]
            for removal in removals:
                if before(removal, op) and not any(
                    before(removal, add) and before(add, op) for add in adds
                ):
                    found.append(epoch.id)
                    break
        return found

    def _replaced(self, truth: GroupLog, state: GroupState, device: bytes) -> list[Op]:
        """The applied completions of recoveries that replaced `device` (a member
        device of the recovered person in the completion's causal past)."""
        found = []
        for i in state.applied:
            op = truth.ops[i]
            if not isinstance(op.body, Complete):
                continue
            claimed = truth.ops[op.body.claim].body
            if not isinstance(claimed, Claim) or claimed.kind != "recover":
                continue
            past = truth.state_of(op.parents)
            if (
                past is not None
                and device in past.members
                and past.person(device) == (claimed.person)
            ):
                found.append(op)
        return found

    # --- once the world has healed ------------------------------------------------------

    def final(self) -> dict[str, Any]:
        """Liveness and no lost keys; returns facts for the report."""
        members_checked = 0
        for group_id, truth in sorted(self.truth.items()):
            state = truth.state
            if state is None:
                continue
            replicas = []
            for device_id in sorted(state.members):
                device = self.by_id.get(device_id)
                if device is None or device.gone:  # (lost for good: a recovery's to replace)
                    continue
                group = self.world.group_of(device, group_id)
                if group is None or group.log.state is None:
                    raise Violation("liveness", f"{device.name}, a member, holds no state")
                replicas.append((device, group))
            if not replicas:
                continue
            first_device, first = replicas[0]
            required = {i for i, op in truth.ops.items() if op.author in state.members}
            for device, group in replicas:
                members_checked += 1
                if not required <= set(group.log.ops):
                    raise Violation(
                        "liveness",
                        f"{device.name} lacks ops that members wrote, after the network healed",
                    )
                if set(group.log.ops) != set(first.log.ops):
                    raise Violation(
                        "liveness",
                        f"{device.name} and {first_device.name} still hold different ops"
                        f" ({len(group.log)} vs {len(first.log)}) after the network healed",
                    )
                if summary(group.log.state) != summary(first.log.state):  # type: ignore[arg-type]
                    raise Violation("liveness", f"{device.name} disagrees after the network healed")
                current = group.state.current_epoch.id
                if group.state.needs_healing:
                    raise Violation(
                        "liveness", "a group still needs healing after the network healed"
                    )
                if current not in group.keys:
                    raise Violation(
                        "liveness", f"{device.name} lacks the current key after the network healed"
                    )
        told = self._check_told()
        opened = self._check_sealed()
        return {"members_checked": members_checked, "notes_opened": opened, "told_removed": told}

    def _check_told(self) -> int:
        """Every device removed from a group that still holds it knows it was removed."""
        told = 0
        for group_id, truth in sorted(self.truth.items()):
            state = truth.state
            if state is None or not state.members:
                continue
            for device_id in sorted(set(state.devices) - set(state.members)):
                device = self.by_id.get(device_id)
                group = None if device is None else self.world.group_of(device, group_id)
                if device is None or device.gone or group is None or group.log.state is None:
                    continue
                if device_id in group.state.members:
                    raise Violation(
                        "liveness",
                        f"{device.name} was removed and was never told, after the network healed",
                    )
                told += 1
        return told

    def _check_sealed(self) -> int:
        opened = 0
        for note in self.sealed:
            truth = self.truth.get(note.group)
            if truth is None or truth.state is None:
                continue
            state = truth.state
            epochs = {e.id: e for e in state.epochs}
            epoch = epochs.get(note.epoch)
            if epoch is None:
                continue  # sealed under an epoch the merge did not keep (a vetoed rotation)
            if note.author_id and note.author_id not in state.devices:
                opened += self._refused(note, state)  # never a member: its add was vetoed
                continue
            for device_id in sorted(state.members):
                device = self.by_id.get(device_id)
                if device is None or device.gone:
                    continue
                if state.history != "shared" and device_id not in epoch.recipients:
                    continue
                group = self.world.group_of(device, note.group)
                if group is None:
                    raise Violation("no-lost-keys", f"{device.name} lost the group")
                try:
                    plain, _ = open_bytes(partial(_only, group), note.data)
                except CoveyError as exc:
                    raise Violation(
                        "no-lost-keys",
                        f"{device.name} cannot open a note {note.author} sealed in epoch "
                        f"{note.epoch.hex()[:12]}: {exc}",
                    ) from exc
                if plain != note.plaintext:
                    raise Violation("no-lost-keys", "a note opened to other bytes")
                opened += 1
        return opened

    def _refused(self, note: Sealed, state: GroupState) -> int:
        """Every current member refuses a note by a device that was never a member."""
        checked = 0
        for device_id in sorted(state.members):
            device = self.by_id.get(device_id)
            group = None if device is None else self.world.group_of(device, note.group)
            if group is None:
                continue
            try:
                open_bytes(partial(_only, group), note.data)
            except NeverAMember:
                checked += 1
                continue
            except CoveyError as exc:
                raise Violation(
                    "no-lost-keys",
                    f"a note by {note.author}, never a member, failed otherwise: {exc}",
                ) from exc
            raise Violation("no-lost-keys", f"a note by {note.author}, never a member, opened")
        return checked


def _only(group: Group, _group_id: bytes) -> Group:
    """The resolver `open_bytes` takes, for one group."""
    return group
