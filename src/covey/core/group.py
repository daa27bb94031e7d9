"""A group as one device holds it: the log, the epoch keys it can open, authoring.

`Group` is what the CLI, the daemon and the tests drive. It wraps a
`GroupLog` (the replica of the op DAG) with this device's identity and the
epoch keys it holds, and it writes new ops: each is checked against the rule
table before it is signed, so a device never publishes an op the others
would refuse.

Keys are learnt only from ops: a rotation wrapped for this device (checked
against its commitment), then every key the history links of that epoch
lead back to (each checked against its own epoch's commitment), walked
once per epoch when its key is first learnt (PROTOCOL.md section 8).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from covey.core import Rng, keys, membership
from covey.core.identity import DeviceRecord, Identity, open_device_record
from covey.core.log import GroupLog, Received
from covey.core.membership import GroupState
from covey.core.ops import (
    MAX_LINKS,
    MAX_REPLACED,
    Add,
    AddRelay,
    Approve,
    Body,
    Claim,
    Complete,
    Deal,
    Genesis,
    History,
    Link,
    Links,
    Op,
    OpContent,
    Remove,
    RemoveRelay,
    RequestKind,
    Role,
    Rotate,
    Rotation,
    SetInbox,
    SetPerson,
    SetPolicy,
    SetRole,
    Veto,
    Witness,
    links_of,
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
class _Chain:
    """The history chain of a log: its epochs, and which later epochs link back to them.

    An epoch is a *top* when no valid epoch links back to it or cuts it:
    the current epoch, one per branch after a partition, and any epoch an
    author could not link (it lacked the key). The next epoch links every
    top its author can, so the tops are few: the size of an op's links is
    bounded by them, never by the length of the history. Kept up to date op
    by op (`Group._index`); rebuilt if ops reached the log another way.
    """

    #: Ops of the log this index has seen.
    seen: int = 0
    #: Valid ops that start an epoch, in the order they were integrated (causal).
    epochs: dict[bytes, None] = field(default_factory=dict)
    tops: set[bytes] = field(default_factory=set)
    #: Epoch -> the epochs whose links name it (counted once their link is not known bad).
    covered_by: dict[bytes, set[bytes]] = field(default_factory=dict)


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
    #: (epoch, earlier epoch): links that did not open here, or held another key
    #: than the earlier epoch commits to. They count as linking nothing.
    bad_links: set[tuple[bytes, bytes]] = field(default_factory=set)
    #: Bad links a store holds (so a save writes only new ones). A link is
    #: opened once, when its epoch's key is learnt, so what it showed must be
    #: kept: a reload that forgot it would count a junk link as a link again.
    saved_bad_links: set[tuple[bytes, bytes]] = field(
        default_factory=set, repr=False, compare=False
    )
    #: Pending claim ID -> when this device first held it, by its own clock
    #: (Unix seconds): the veto window counts from there (PROTOCOL.md 19.4).
    #: Kept in the store, so a device that sleeps every night still sees a
    #: window of days pass.
    claims_held: dict[bytes, int] = field(default_factory=dict)
    #: What a store holds of `claims_held` (so a save writes only the change).
    saved_claims_held: dict[bytes, int] = field(default_factory=dict, repr=False, compare=False)
    _chain: _Chain = field(default_factory=_Chain, repr=False, compare=False)
    #: `history_tops()` for the log (and bad links) it was computed at.
    _tops: tuple[tuple[int, int], list[bytes]] | None = field(
        default=None, repr=False, compare=False
    )
    #: For the current members (the frozenset): epoch -> whether one of them was wrapped it.
    _held: tuple[frozenset[bytes], dict[bytes, bool]] = field(
        default_factory=lambda: (frozenset(), {}), repr=False, compare=False
    )
    #: `_entitled(device)` for the log it was computed at.
    _entitled_memo: tuple[int, dict[bytes, bool]] = field(
        default_factory=lambda: (-1, {}), repr=False, compare=False
    )
    #: `history_gaps()` for the log (and bad links) it was computed at, and who can close one.
    _gaps: tuple[tuple[int, int], list[tuple[bytes, bytes]], frozenset[bytes]] | None = field(
        default=None, repr=False, compare=False
    )

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
        group._index([op])
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
        bad_links: Iterable[tuple[bytes, bytes]] = (),
        claims_held: Mapping[bytes, int] | None = None,
    ) -> Group:
        """A replica as a store saved it: its ops (not verified or judged again), pending
        ops, keys, the links found bad when those keys were learnt, and when this
        device first held each pending claim."""
        group = cls(me, GroupLog(group_id))
        with collector_paused():
            group.log.restore(ops, pending, verdicts)
        group.keys.update(held)
        group.saved_keys = set(held)
        group.bad_links = set(bad_links)
        group.saved_bad_links = set(group.bad_links)
        group.claims_held = dict(claims_held or {})
        group.saved_claims_held = dict(group.claims_held)
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
        self._took(received.integrated)
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
                    self._took(outcome.integrated)
        return outcomes

    def _took(self, ops: list[Op]) -> None:
        """Index newly integrated ops in the chain, then learn the keys they give us."""
        self._index(ops)
        self._learn_keys(ops)

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
            self._learn(op.id, key)

    def _learn(self, epoch: bytes, key: bytes) -> None:
        """Hold `key` for `epoch`, and every key its links lead back to.

        Each epoch's links are opened once, when its key is first learnt
        (so a whole history costs one walk, however it arrives). A link that
        does not open, or holds a key its epoch does not commit to, gives
        nothing and is recorded (`bad_links`).
        """
        log = self.log
        stack = [(epoch, key)]
        while stack:
            epoch, key = stack.pop()
            if epoch in self.keys:
                continue
            self.keys[epoch] = key
            op = log.ops[epoch]
            for link in links_of(op.body):
                if link.cut:
                    continue
                expected = self._commitment_of(link.epoch)
                if expected is None or not log.before(log.ops[link.epoch], op):
                    continue  # names no earlier epoch of this op's past: it links nothing
                try:
                    earlier = keys.open_link(key, self.id, link, expected)
                except BadKeyWrap:
                    self._bad_link(epoch, link.epoch)
                    continue
                if link.epoch not in self.keys:
                    stack.append((link.epoch, earlier))

    def _commitment_of(self, epoch: bytes) -> bytes | None:
        """The commitment of a valid op that started an epoch, if known here."""
        op = self.log.ops.get(epoch)
        if op is None or self.log.validity.get(epoch) is not None:
            return None
        rotation = rotation_of(op.body)
        return None if rotation is None else rotation.commitment

    # --- the history chain -----------------------------------------------------

    def _index(self, ops: Iterable[Op]) -> None:
        """Add integrated ops (in integration order) to the chain's index."""
        chain = self._chain
        log = self.log
        for op in ops:
            chain.seen += 1
            if log.validity.get(op.id) is not None or rotation_of(op.body) is None:
                continue
            chain.epochs[op.id] = None
            chain.tops.add(op.id)  # nothing later can have linked it yet
            for link in links_of(op.body):
                earlier = link.epoch
                if earlier not in chain.epochs or (op.id, earlier) in self.bad_links:
                    continue
                if not log.before(log.ops[earlier], op):
                    continue
                chain.covered_by.setdefault(earlier, set()).add(op.id)
                chain.tops.discard(earlier)

    def recall_bad_links(self, links: Iterable[tuple[bytes, bytes]]) -> None:
        """Links a store recorded as bad, for a replica rebuilt from its ops and keys."""
        for epoch, earlier in links:
            self._bad_link(epoch, earlier)
        self.saved_bad_links |= self.bad_links

    def _bad_link(self, epoch: bytes, earlier: bytes) -> None:
        """A link of `epoch` back to `earlier` turned out bad: it covers nothing."""
        self.bad_links.add((epoch, earlier))
        covered = self._chain.covered_by.get(earlier)
        if covered is not None:
            covered.discard(epoch)
            if not covered:
                self._chain.tops.add(earlier)

    def _current_chain(self) -> _Chain:
        """The chain's index for the whole log (rebuilt if ops came in another way)."""
        if self._chain.seen != len(self.log):
            self._chain = _Chain()
            self._index(list(self.log.ops.values()))  # (integration order is causal)
        return self._chain

    def _recipients(self, epoch: bytes) -> frozenset[bytes]:
        rotation = rotation_of(self.log.ops[epoch].body)
        assert rotation is not None
        return rotation.recipients

    def history_tops(self) -> list[bytes]:
        """The epochs a new epoch links back to (or cuts), as this device sees the log.

        The tops that a current member holds (was wrapped: nothing links to
        a top, so it is held by its recipients alone); and, when some top is
        held by no current member (its recipients were all removed since),
        the latest epochs that a current member holds and that no top a
        member holds leads back to, so the chain a newcomer walks does not
        stop at a key nobody can give it. O(epochs) in that case, else
        O(tops); kept until the log grows (or a link turns out bad).
        """
        stamp = (len(self.log), len(self.bad_links))
        if self._tops is not None and self._tops[0] == stamp:
            return self._tops[1]
        chain = self._current_chain()
        held_by_member = self._held_by_member()
        held = [t for t in chain.tops if held_by_member(t)]
        if len(held) < len(chain.tops):
            reached: set[bytes] = set()
            self._reach(held, reached)
            for epoch in reversed(chain.epochs):  # latest first
                if epoch in reached or not held_by_member(epoch):
                    continue
                held.append(epoch)
                self._reach([epoch], reached)
        self._tops = (stamp, sorted(held))
        return self._tops[1]

    def _held_by_member(self) -> Callable[[bytes], bool]:
        """Whether a current member was wrapped an epoch (answers kept while the members stay).

        Review of history links, H2: a top held by no member (a removed
        admin's vetoed branch of rotations) sends `history_tops` through
        every epoch on every call; each answer cost O(members), and was
        computed again on every call.
        """
        members, known = self._held
        current = self.state.members
        if len(members) != len(current) or not members.issuperset(current):
            members, known = frozenset(current), {}
            self._held = (members, known)
        recipients = self._recipients

        def held(epoch: bytes) -> bool:
            answer = known.get(epoch)
            if answer is None:
                # (frozenset against frozenset: the smaller one is iterated)
                answer = known[epoch] = not recipients(epoch).isdisjoint(members)
            return answer

        return held

    def _reach(self, starts: Iterable[bytes], reached: set[bytes]) -> None:
        """Add to `reached` the epochs `starts` and every epoch their good links lead back to."""
        covered_by = self._chain.covered_by
        stack = [epoch for epoch in starts if epoch not in reached]
        reached.update(stack)
        while stack:
            epoch = stack.pop()
            for link in links_of(self.log.ops[epoch].body):
                earlier = link.epoch
                if earlier not in reached and epoch in covered_by.get(earlier, ()):
                    reached.add(earlier)
                    stack.append(earlier)

    def _entitled(self, device: bytes) -> bool:
        """Whether `device` joined with the group's history (it may be linked to what it lacks).

        True for the founder, and for a device whose latest applied add (each
        of them, if concurrent adds of it both applied) was made under
        `shared`. An add made under `forward` cuts every top (and there is
        always one), and only such an add cuts anything: an add with a cut
        was made under `forward`.
        """
        log = self.log
        size, memo = self._entitled_memo
        if size != len(log):
            self._entitled_memo = size, memo = len(log), {}
        answer = memo.get(device)
        if answer is None:
            answer = memo[device] = self._joined_with_history(device)
        return answer

    def _joined_with_history(self, device: bytes) -> bool:
        """`_entitled`, computed: O(adds x concurrent latest adds), not O(adds^2)
        (review of history links, H4: 1,000 re-adds cost 0.32 s per call)."""
        state = self.state
        log = self.log
        applied = [
            op for op in log.introductions.get(device, ()) if op.id not in state.skipped
        ]  # (introductions are valid ops)
        # The latest adds: those before no other. Latest in the order first:
        # an add before another is before a latest one (transitivity), so
        # each is checked against the latest found so far only.
        position = log.position_of
        latest: list[Op] = []
        for add in sorted(applied, key=lambda op: position(op.id), reverse=True):
            if not any(log.before(add, later) for later in latest):
                latest.append(add)
        if not latest:
            return False
        for op in latest:
            if isinstance(op.body, (Add, Complete)) and any(link.cut for link in op.body.links):
                return False
        return True

    def history_gaps(self) -> list[tuple[bytes, bytes]]:
        """(epoch, member) pairs: a current member lacks a top it is owed (either policy).

        A member holds every epoch the chain leads back to from the epochs
        wrapped for it. What it can lack is a top (`history_tops`) it was not
        a recipient of: one made on the other side of a partition while it
        was added on this side, or one its adder lacked. Such a top counts
        when every member lacking it joined with the history (else no
        rotation may link it yet: `_links`); a rotation by a member holding
        it links it, which closes the gap. Kept until the log
        grows. Cost: members x tops (and the tops are few).
        """
        state = self.state
        stamp = (len(self.log), len(self.bad_links))
        if self._gaps is not None and self._gaps[0] == stamp:
            return self._gaps[1]
        members = frozenset(state.members)
        gaps: list[tuple[bytes, bytes]] = []
        able: set[bytes] = set()
        for top in self.history_tops():
            recipients = self._recipients(top)
            missing = members - recipients
            if not missing or not all(self._entitled(device) for device in missing):
                continue
            gaps += [(top, device) for device in sorted(missing)]
            able |= members & recipients
        self._gaps = (stamp, gaps, frozenset(able))
        return gaps

    @property
    def needs_history_heal(self) -> bool:
        """A history gap that this device can close (it holds a top a member lacks)."""
        me = self.me.device_id.raw
        if me not in self.state.members:
            return False
        return any(epoch in self.keys for epoch, _ in self.history_gaps())

    def history_healer_rank(self) -> int | None:
        """This device's place among the members who can close a history gap, or None."""
        if not self.history_gaps():
            return None
        assert self._gaps is not None
        able = self._gaps[2]
        order = [d for d in self.state.by_seniority() if d in able]
        me = self.me.device_id.raw
        return order.index(me) if me in order else None

    def _links(
        self, new_key: bytes, recipients: AbstractSet[bytes], newcomer: bytes | None, rng: Rng
    ) -> Links:
        """What a new epoch for `recipients` links back to (`history_tops`): linked, cut or not.

        PROTOCOL.md section 8 has the rule. Under `forward` an add
        (`newcomer` given) cuts every top, and only such an add cuts. Any
        other top is linked unless a recipient that was not a recipient of it
        joined without the history (`_entitled`; under `shared` this add's
        newcomer joins with it): then it is left out, and linked once no
        such member remains, so walking a link never gives a key to a device
        that joined without the history and was not wrapped it. Cutting it
        instead (as a `forward` remove or rotate did) lost it for good for
        the members owed it (review of history links, H3, and its review).
        A top this device lacks is left out too, for a holder to link
        (`history_gaps`). At most MAX_LINKS; the rest wait for the next op.
        """
        forward = self.state.history == "forward"
        if forward and newcomer is not None:
            # Every top, held or not, so that the add shows it cut the history
            # (`_entitled`); there is always one.
            tops = sorted(self._current_chain().tops | set(self.history_tops()))
            return tuple(Link(top, b"") for top in tops[:MAX_LINKS])
        links: list[Link] = []
        for top in self.history_tops():
            if len(links) == MAX_LINKS:
                break
            outsiders = recipients - self._recipients(top)
            if outsiders and not all(d == newcomer or self._entitled(d) for d in outsiders):
                continue  # for later, when no member that joined without history is left
            if top in self.keys:
                sealed = keys.seal_link(new_key, self.id, top, self.keys[top], rng)
                links.append(Link(top, sealed))
        return tuple(links)

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
        self._index(received.integrated)
        return op

    def _rotation(
        self, members: Iterable[bytes], rng: Rng, extra: dict[bytes, bytes] | None = None
    ) -> tuple[Rotation, bytes]:
        """A new epoch for `members` (and `extra`: device ID -> box key)."""
        state = self._writable()
        recipients = {d: state.members[d].record.box_key for d in members}
        recipients.update(extra or {})
        return keys.new_rotation(self.me.secrets.box_secret, recipients, rng)

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
        links = self._links(key, rotation.recipients, target, rng)
        body = Add(record, device_record, role, rotation, links)
        return self._finish(self._author(body, now), key)

    def remove(self, device: bytes, now: int, rng: Rng) -> Op:
        """Remove a member (or this device itself), starting an epoch without it."""
        if device not in self.state.members:
            raise NotAllowed("that device is not a member")
        if len(self.state.members) == 1:
            raise NotAllowed("the last member cannot leave")
        rotation, key = self._rotation([d for d in self.state.members if d != device], rng)
        links = self._links(key, rotation.recipients, None, rng)
        op = self._author(Remove(device, rotation, links), now)
        if device == self.me.device_id.raw:
            return op  # we left: the new key is not ours to keep
        return self._finish(op, key)

    def set_role(self, device: bytes, role: Role, now: int) -> Op:
        return self._author(SetRole(device, role), now)

    def set_policy(self, history: History, now: int) -> Op:
        return self._author(SetPolicy(history), now)

    def add_relay(self, key: bytes, host: str, port: int, access: bytes, now: int) -> Op:
        """Name a relay for the group's members (or its new address): an admin's op."""
        return self._author(AddRelay(key, host, port, access), now)

    def remove_relay(self, key: bytes, now: int) -> Op:
        """The members stop using a relay: an admin's op."""
        return self._author(RemoveRelay(key), now)

    def set_inbox(self, relay: bytes, box: bytes, now: int) -> Op:
        """Announce this device's inbox at one of the group's relays."""
        return self._author(SetInbox(relay, box), now)

    def set_person(self, device: bytes, person: bytes, name: str, now: int) -> Op:
        """Place a member in a person, named `name` (an admin's op, section 6.4)."""
        return self._author(SetPerson(device, person, name), now)

    def deal(self, body: Deal, now: int) -> Op:
        """Record a dealing of recovery shares (an admin's op, PROTOCOL.md 19.1)."""
        return self._author(body, now)

    # --- recovery (PROTOCOL.md 19) -----------------------------------------------

    def approve(self, request: bytes, kind: RequestKind, person: bytes | None, now: int) -> Op:
        """Approve a request as a holder of the current dealing (a recovery: a release)."""
        dealing = self.state.dealing
        if dealing is None:
            raise NotAllowed("the group has no recovery shares")
        return self._author(Approve(dealing.id, request, kind, person), now)

    def claim_admission(self, device_raw: bytes, approvals: Iterable[bytes], now: int) -> Op:
        """Announce an admission on K holders' approvals (a member's op)."""
        dealing = self.state.dealing
        if dealing is None:
            raise NotAllowed("the group has no recovery shares")
        device = _opened(device_raw)
        body = Claim("admit", device, device_raw, None, dealing.id, tuple(sorted(approvals)), ())
        return self._author(body, now)

    def claim_recovery(
        self,
        recovery: Identity,
        device_raw: bytes,
        person: bytes,
        approvals: Iterable[bytes],
        paper: Iterable[int],
        now: int,
    ) -> Op:
        """Announce a recovery of `person`, signed as the dealing's recovery record.

        This device need not be a member: it is the requesting device, which
        combined K shares into `recovery` (`escrow.recovery_identity`).
        """
        dealing = self.state.dealing
        if dealing is None:
            raise NotAllowed("the group has no recovery shares")
        body = Claim(
            "recover",
            _opened(device_raw),
            device_raw,
            person,
            dealing.id,
            tuple(sorted(approvals)),
            tuple(sorted(paper)),
        )
        content = OpContent(self.id, tuple(sorted(self.log.heads)), 1, now, body)
        op = sign_op(content, recovery.device_id.raw, recovery.secrets.signing_seed)
        reason = membership.check(self.state, op)
        if reason is not None:
            raise NotAllowed(f"not allowed: {reason}")
        received = self.log.receive_op(op)
        if received.outcome != "applied":
            raise NotAllowed("the recovery claim was not taken")
        self._index(received.integrated)
        return op

    def witness(self, claim: bytes, now: int) -> Op:
        return self._author(Witness(claim), now)

    def veto(self, claim: bytes, now: int) -> Op:
        found = self.state.claims.get(claim)
        if found is None:
            raise NotAllowed("no such claim in this group")
        return self._author(Veto(claim, found.claim.kind), now)

    def complete(self, claim: bytes, now: int, rng: Rng) -> Op:
        """Complete a witnessed claim: add its device (in place of the recovered
        person's), in a new epoch linked back as an add's is."""
        state = self.state
        found = state.claims.get(claim)
        if found is None:
            raise NotAllowed("no such claim in this group")
        record = found.claim.device
        target = record.device_id.raw
        replaced = membership.replaced_by(state, found)
        if len(replaced) > MAX_REPLACED:
            raise NotAllowed(
                f"the person has more than {MAX_REPLACED} devices: remove some, then complete"
            )
        keep = [d for d in state.members if d not in replaced]
        rotation, key = self._rotation(keep, rng, {target: record.box_key})
        links = self._links(key, rotation.recipients, target, rng)
        role = membership.completion_role(state, found)
        body = Complete(claim, record, found.claim.device_raw, role, rotation, links, replaced)
        op = self._author(body, now)
        if self.me.device_id.raw not in rotation.recipients:
            return op
        return self._finish(op, key)

    def rotate(self, now: int, rng: Rng) -> Op:
        """Start a new epoch for exactly the current members.

        Like every op that starts an epoch, it links back to the tops of
        this device's log (`_links`): after a partition, to each branch's
        latest epoch, so a member added on one side can then read the
        other's (a healing rotation for `history_gaps` is just this).
        """
        rotation, key = self._rotation(self.state.members, rng)
        body = Rotate(rotation, self._links(key, rotation.recipients, None, rng))
        return self._finish(self._author(body, now), key)

    def heal(self, now: int, rng: Rng) -> Op | None:
        """Rotate if the current epoch's key is not held by exactly the members."""
        return self.rotate(now, rng) if self.state.needs_healing else None

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


def _opened(device_raw: bytes) -> DeviceRecord:
    """A device record's bytes, opened (InvalidArgument if they are not one)."""
    try:
        return open_device_record(device_raw).body
    except Exception as exc:
        raise InvalidArgument("that is not a valid device record") from exc
