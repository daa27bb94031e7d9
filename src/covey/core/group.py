"""A group as one device holds it: the log, the epoch keys it can open, authoring.

`Group` is what the CLI, the daemon and the tests drive. It wraps a
`GroupLog` (the replica of the op DAG) with this device's identity and the
epoch keys it holds, and it writes new ops: each is checked against the rule
table before it is signed, so a device never publishes an op the others
would refuse.

Keys are learnt only from ops: a rotation wrapped for this device (checked
against its commitment), or a history bundle inside one (each key checked
against its own epoch's commitment).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from covey.core import Rng, keys, membership
from covey.core.identity import Identity, open_device_record
from covey.core.log import GroupLog, Received
from covey.core.membership import GroupState
from covey.core.ops import (
    Add,
    Body,
    Genesis,
    History,
    Op,
    OpContent,
    Remove,
    Role,
    Rotate,
    Rotation,
    SetPolicy,
    SetRole,
    rotation_of,
    sign_op,
)
from covey.errors import (
    BadKeyWrap,
    InvalidArgument,
    InvalidInput,
    KeyUnavailable,
    NeedsRotation,
    NotAllowed,
    NotAMember,
)
from covey.gcpause import collector_paused


@dataclass
class Group:
    """One device's replica of a group, with the keys it holds."""

    me: Identity
    log: GroupLog
    #: Epoch ID -> key, for every epoch this device can open.
    keys: dict[bytes, bytes] = field(default_factory=dict)
    #: Epochs whose wrapped key for this device did not open (reported, not fatal).
    bad_wraps: set[bytes] = field(default_factory=set)
    #: Epochs whose keys a store holds (so a save writes only new ones).
    saved_keys: set[bytes] = field(default_factory=set, repr=False, compare=False)
    #: `history_gaps()` for a log of the length (and keys held) it was computed at.
    _gaps: tuple[tuple[int, int], list[tuple[bytes, bytes]], frozenset[bytes]] | None = field(
        default=None, repr=False, compare=False
    )
    #: Epoch op ID -> the epochs its history bundle carries (opened once).
    _bundles: dict[bytes, frozenset[bytes]] = field(default_factory=dict, repr=False, compare=False)

    # --- creating and loading ------------------------------------------------

    @classmethod
    def create(cls, me: Identity, name: str, history: History, now: int, rng: Rng) -> Group:
        """A new group with this device as founder and only member."""
        nonce = rng(32)
        rotation, key = keys.new_rotation(
            me.secrets.box_secret, {me.device_id.raw: me.record.box_key}, rng
        )
        body = Genesis(name, history, me.record, me.record_bytes, rotation)
        op = sign_op(OpContent(nonce, (), 1, now, body), me.device_id.raw, me.secrets.signing_seed)
        group = cls(me, GroupLog(op.id))
        group.log.receive_op(op)
        group.keys[op.id] = key
        return group

    @classmethod
    def replica(cls, me: Identity, group_id: bytes, ops: Iterable[bytes] = ()) -> Group:
        """A replica of an existing group, fed with `ops` (bytes, any order)."""
        group = cls(me, GroupLog(group_id))
        for data in ops:
            group.receive(data)
        return group

    @classmethod
    def restore(
        cls,
        me: Identity,
        group_id: bytes,
        ops: Iterable[bytes],
        pending: Iterable[bytes],
        held: dict[bytes, bytes],
        verdicts: Mapping[bytes, tuple[str | None, int]] | None = None,
    ) -> Group:
        """A replica as a store saved it: its ops (not verified or judged again), pending
        ops, keys."""
        group = cls(me, GroupLog(group_id))
        with collector_paused():
            group.log.restore(ops, pending, verdicts)
        group.keys.update(held)
        group.saved_keys = set(held)
        return group

    @property
    def id(self) -> bytes:
        return self.log.group_id

    @property
    def state(self) -> GroupState:
        state = self.log.state
        if state is None:
            raise NotAMember("this device holds none of that group's ops yet")
        return state

    # --- receiving -----------------------------------------------------------

    def receive(self, data: bytes, sender: bytes | None = None) -> Received:
        """Take one op's bytes from anywhere; learn any keys it carries for us."""
        received = self.log.receive(data, sender)
        self._learn_keys(received.integrated)
        return received

    def receive_all(
        self, raws: Iterable[bytes], sender: bytes | None = None
    ) -> list[Received | InvalidInput]:
        """Take everything one sync message or fetch delivered: an outcome per op, in order.

        A refused op gives its error in its place and the rest go on; the
        merged state is settled once, when next read (`GroupLog.receive_all`).
        """
        with collector_paused():  # many objects that live as long as the log
            outcomes = self.log.receive_all(raws, sender)
            for outcome in outcomes:
                if isinstance(outcome, Received):
                    self._learn_keys(outcome.integrated)
        return outcomes

    def _learn_keys(self, ops: Iterable[Op]) -> None:
        me = self.me.device_id.raw
        for op in ops:
            rotation = rotation_of(op.body)
            if rotation is None or op.id in self.keys or self.log.validity.get(op.id):
                continue
            if rotation.wrap_for(me) is None:
                continue
            sender = self.log.devices[op.author]
            try:
                key = keys.unwrap(rotation, me, self.me.secrets.box_secret, sender.box_key)
            except BadKeyWrap:
                self.bad_wraps.add(op.id)
                continue
            self.keys[op.id] = key
            bundle = getattr(op.body, "history", b"")
            if bundle:
                try:
                    self.keys.update(keys.open_history(key, self.id, bundle, self._commitment_of))
                except BadKeyWrap:
                    self.bad_wraps.add(op.id)

    def _commitment_of(self, epoch: bytes) -> bytes | None:
        """The commitment of a valid op that started an epoch, if known here."""
        op = self.log.ops.get(epoch)
        if op is None or self.log.validity.get(epoch) is not None:
            return None
        rotation = rotation_of(op.body)
        return None if rotation is None else rotation.commitment

    # --- writing -------------------------------------------------------------

    def _writable(self) -> GroupState:
        """The state, if this device is a member and may write; else NotAMember."""
        state = self.state
        if self.me.device_id.raw not in state.members:
            raise NotAMember()
        return state

    def _author(self, body: Body, now: int) -> Op:
        state = self._writable()
        seq = self.log.latest.get(self.me.device_id.raw, 0) + 1
        content = OpContent(self.id, tuple(sorted(self.log.heads)), seq, now, body)
        op = sign_op(content, self.me.device_id.raw, self.me.secrets.signing_seed)
        reason = membership.check(state, op)
        if reason is not None:
            raise NotAllowed(f"not allowed: {reason}")
        received = self.log.receive_op(op)
        assert received.outcome == "applied", received
        return op

    def _rotation(
        self, members: Iterable[bytes], rng: Rng, extra: dict[bytes, bytes] | None = None
    ) -> tuple[Rotation, bytes]:
        """A new epoch for `members` (and `extra`: device ID -> box key)."""
        state = self._writable()
        recipients = {d: state.members[d].record.box_key for d in members}
        recipients.update(extra or {})
        return keys.new_rotation(self.me.secrets.box_secret, recipients, rng)

    def _history(self, new_key: bytes, rng: Rng, epochs: Iterable[bytes]) -> bytes:
        """A history bundle of the given epochs' keys (those held), in a `shared` group."""
        if self.state.history != "shared":
            return b""
        held = {epoch: self.keys[epoch] for epoch in epochs if epoch in self.keys}
        # At most what a bundle may hold (`open_history` refuses more): a
        # longer history goes over in more than one rotation.
        held = dict(sorted(held.items())[: keys.MAX_HISTORY_EPOCHS])
        return keys.seal_history(new_key, self.id, held, rng)

    def history_gaps(self) -> list[tuple[bytes, bytes]]:
        """(epoch, member) pairs: a current member lacks a key its history policy allows.

        In a `shared` group, a member is owed every epoch that is not after
        its (latest) add: its adder's bundle carries the ones the adder
        held. An epoch made on the other side of a partition, or one the
        adder itself lacked, is a gap until a bundle carries it to the
        member: its add's bundle, or a later rotation's it is a recipient
        of. What a bundle carried is read from the bundle itself (this
        device can open those of epochs it holds; one it cannot open counts
        as carrying nothing, so a gap is never closed by a guess). A member
        added with no bundle (under `forward`) is owed nothing before it.
        Kept until the log grows (`_gaps`).
        """
        state = self.state
        if state.history != "shared":
            return []
        stamp = (len(self.log), len(self.keys))
        if self._gaps is not None and self._gaps[0] == stamp:
            return self._gaps[1]
        self._gaps = (stamp, *self._find_gaps())
        return self._gaps[1]

    def _find_gaps(self) -> tuple[list[tuple[bytes, bytes]], frozenset[bytes]]:
        """(the gaps, the members that can close one: they hold a gap epoch's key)."""
        state = self.state
        log = self.log
        # Set arithmetic per member, not a loop over every (member, epoch):
        # the check runs after every change of the log.
        every = {e.id for e in state.epochs}
        given: dict[bytes, set[bytes]] = {}  # member -> epochs it was wrapped a key of
        bundles: dict[bytes, list[frozenset[bytes]]] = {}  # member -> bundles it got
        for epoch in state.epochs:
            inside = self._bundle_epochs(log.ops[epoch.id])
            for device in epoch.recipients:
                given.setdefault(device, set()).add(epoch.id)
                if inside:
                    bundles.setdefault(device, []).append(inside)
        # The add that counts is the member's latest *applied* one, in the
        # replay order every replica shares (not the last one received: a
        # vetoed or skipped add must not decide what a member is owed).
        position = {op_id: i for i, op_id in enumerate(state.applied)}
        gaps = []
        for device in sorted(state.members):
            applied = [i for i in log.introductions.get(device, ()) if i.id in position]
            if not applied:
                continue  # the founder: every epoch it was given
            intro = max(applied, key=lambda op: position[op.id])
            if isinstance(intro.body, Add) and not intro.body.history:
                continue  # added under `forward` (or by a device that held no key)
            got = bundles.get(device, [])
            for epoch_id in sorted(every - given.get(device, set())):
                if any(epoch_id in inside for inside in got):
                    continue
                if log.clock_value(epoch_id, intro.author) >= intro.seq:
                    continue  # made after its add, without it: removed by then
                gaps.append((epoch_id, device))
        # Who can close a gap: a member holding a gap epoch's key, wrapped
        # for it or carried to it by a bundle (as far as this device sees).
        wanted = {epoch for epoch, _ in gaps}
        able = frozenset(
            device
            for device in state.members
            if wanted & given.get(device, set())
            or any(wanted & inside for inside in bundles.get(device, []))
        )
        return gaps, able

    def _bundle_epochs(self, op: Op) -> frozenset[bytes]:
        """The epochs whose keys `op`'s history bundle carries (empty if not openable here)."""
        found = self._bundles.get(op.id)
        if found is None:
            key = self.keys.get(op.id)
            bundle = getattr(op.body, "history", b"")
            found = frozenset()
            if key is not None and bundle:
                try:
                    found = frozenset(keys.open_history(key, self.id, bundle, self._commitment_of))
                except BadKeyWrap:
                    found = frozenset()
            if key is not None:
                self._bundles[op.id] = found  # (not cached while the key is unknown)
        return found

    @property
    def needs_history_heal(self) -> bool:
        """A history gap that this device can close (it holds a missed epoch's key)."""
        me = self.me.device_id.raw
        if me not in self.state.members:
            return False
        return any(epoch in self.keys for epoch, _ in self.history_gaps())

    def _finish(self, op: Op, key: bytes) -> Op:
        self.keys[op.id] = key
        return op

    def add(self, device_record: bytes, role: Role, now: int, rng: Rng) -> Op:
        """Add a device (its signed record), starting a new epoch that includes it."""
        try:
            record = open_device_record(device_record).body
        except Exception as exc:
            raise InvalidArgument("that is not a valid device record") from exc
        target = record.device_id.raw
        if target in self.state.members:
            raise NotAllowed("that device is already a member")
        rotation, key = self._rotation(self.state.members, rng, {target: record.box_key})
        history = self._history(key, rng, self.keys)  # a newcomer gets every epoch held
        body = Add(record, device_record, role, rotation, history)
        return self._finish(self._author(body, now), key)

    def remove(self, device: bytes, now: int, rng: Rng) -> Op:
        """Remove a member (or this device itself), starting an epoch without it."""
        if device not in self.state.members:
            raise NotAllowed("that device is not a member")
        if len(self.state.members) == 1:
            raise NotAllowed("the last member cannot leave")
        rotation, key = self._rotation([d for d in self.state.members if d != device], rng)
        op = self._author(Remove(device, rotation), now)
        if device == self.me.device_id.raw:
            return op  # we left: the new key is not ours to keep
        return self._finish(op, key)

    def set_role(self, device: bytes, role: Role, now: int) -> Op:
        return self._author(SetRole(device, role), now)

    def set_policy(self, history: History, now: int) -> Op:
        return self._author(SetPolicy(history), now)

    def rotate(self, now: int, rng: Rng) -> Op:
        """Start a new epoch for exactly the current members.

        In a `shared` group the rotation also carries the keys of epochs a
        current member is owed but lacks (`history_gaps`: added on one side of
        a partition while the other side rotated), so it can still read them;
        usually there are none.
        """
        rotation, key = self._rotation(self.state.members, rng)
        missed = {epoch for epoch, _ in self.history_gaps()}
        body = Rotate(rotation, self._history(key, rng, sorted(missed)))
        return self._finish(self._author(body, now), key)

    def heal(self, now: int, rng: Rng) -> Op | None:
        """Rotate if the current epoch's key is not held by exactly the members."""
        return self.rotate(now, rng) if self.state.needs_healing else None

    def history_healer_rank(self) -> int | None:
        """This device's place among the members who can close a history gap, or None."""
        if not self.history_gaps():
            return None
        assert self._gaps is not None
        able = self._gaps[2]
        order = [d for d in self.state.by_seniority() if d in able]
        me = self.me.device_id.raw
        return order.index(me) if me in order else None

    def healer_rank(self) -> int | None:
        """This device's place in the healing order (0 heals first), or None."""
        order = self.state.by_seniority()
        me = self.me.device_id.raw
        return order.index(me) if me in order else None

    # --- keys ------------------------------------------------------------------

    def current_key(self) -> tuple[bytes, bytes]:
        """(epoch ID, key) to seal new data under: the current, healthy epoch."""
        state = self.state
        if self.me.device_id.raw not in state.members:
            raise NotAMember()
        if state.needs_healing:
            raise NeedsRotation()
        epoch = state.current_epoch.id
        key = self.keys.get(epoch)
        if key is None:
            raise KeyUnavailable("this device does not hold the current epoch's key yet")
        return epoch, key

    def shred(self) -> None:
        """Forget every epoch key (crypto-erase): nothing sealed can be opened here."""
        self.keys.clear()
