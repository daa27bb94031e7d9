"""One replica of a group's log: a DAG of signed ops, and the state it means.

`GroupLog.receive(bytes)` and `receive_all([bytes])` are the ways in. An op is

* parsed strictly (a malformed op raises and is not kept);
* buffered if any parent is missing (bounded: `MAX_PENDING_OPS` ops and
  `MAX_PENDING_BYTES` bytes), and integrated once its parents arrive;
* checked against its author's key, which must be known from the op's
  causal past (an op nobody could have authorized is dropped);
* judged once against the state of its own causal past (`membership.check`),
  and kept either way, so the DAG stays whole;
* merged into the state.

The state is a function of the set of ops (`membership.replay` over the
topological order), and this module computes it without replaying from
genesis (PROTOCOL.md section 6.3):

* An op that follows every head (the usual case) extends the state by one
  step.
* Any other op is judged against the state of its own branch: the state of
  its one parent, cached and extended in place, so a concurrent branch that
  arrives op by op costs one step per op (only the first op of a branch
  replays its causal past). The merged state is marked stale.
* The merged state is settled once, when next read: the new ops are merged
  into the topological order from the first place they can go, the
  revocations are settled again, and the replay resumes from the nearest
  checkpoint before the first position whose outcome can change.

Equivocation (one author, one sequence number, two or more ops) is evidence
computed from the set of ops: the author's lowest such number and its two
smallest op IDs (`membership.fork_of`), whatever order they came in.
"""

from __future__ import annotations

import bisect
import heapq
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from covey.core import clocks, crypto, membership
from covey.core.identity import DeviceRecord
from covey.core.membership import Fork, GroupState, Plan
from covey.core.ops import Add, AddRelay, Complete, Deal, Genesis, History, Op, parse_op
from covey.errors import (
    BadSignature,
    BufferFull,
    InvalidInput,
    OutsiderLimit,
    UnknownDevice,
    WrongGroup,
)
from covey.gcpause import collector_paused

#: Ops waiting for a missing parent: enough for a long partition's worth of
#: changes arriving out of order, small enough to bound memory.
MAX_PENDING_OPS: Final = 10_000
MAX_PENDING_BYTES: Final = 64 << 20
#: Of those, at most this many from one sender (the peer that delivered
#: them), so one peer's junk cannot crowd out another's real ops.
MAX_PENDING_PER_SENDER: Final = 2_500
#: Ops one device may add after it knew it was no member (removed, and
#: the removal in its causal past): kept, like every invalid op, so the DAG
#: stays whole, but only this many in a row; every replica refuses the
#: rest, the same ones (review finding: 2,000 such ops were kept, forwarded
#: and replayed forever).
MAX_OPS_AFTER_REMOVAL: Final = 16
#: Refused ops remembered, so that ops built on them are refused at once
#: (not buffered for a parent that never comes).
MAX_REFUSED_REMEMBERED: Final = 4_096
#: States of branch tips kept to judge a concurrent branch's next op.
MAX_BRANCH_STATES: Final = 8
#: A checkpoint of the merged state every this many positions of the order.
CHECKPOINT_EVERY: Final = 512

Outcome = Literal["applied", "rejected", "pending", "duplicate"]
SEQ_REASON: Final = membership.SEQ_REASON


@dataclass(slots=True)
class Received:
    """What one `receive` did: its own outcome and every op it integrated."""

    outcome: Outcome
    op: Op
    #: Ops integrated by this call (this one and any pending ones it freed).
    integrated: list[Op] = field(default_factory=list)


@dataclass(slots=True)
class _Checkpoint:
    """The merged state before the op at `position`: what cannot be truncated, copied."""

    position: int
    members: dict[bytes, membership.Member]
    policy_frontier: dict[bytes, History]
    relay_frontier: dict[bytes, dict[bytes, AddRelay | None]]
    inboxes: dict[tuple[bytes, bytes], bytes]
    person_of: dict[bytes, bytes]
    person_names: dict[bytes, str]
    dealing: membership.Dealing | None
    approvals: dict[tuple[bytes, bytes], dict[bytes, bytes]]
    releases: dict[bytes, frozenset[bytes]]
    claims: dict[bytes, membership.ClaimState]
    records: frozenset[bytes]
    windows: dict[bytes, int]
    approval_labels: dict[bytes, tuple[str, bytes | None]]
    approved_by: dict[tuple[bytes, bytes], int]
    devices: int
    epochs: int
    applied: int
    skipped: int
    notices: int


@dataclass(slots=True)
class _Branch:
    """The state of one op's causal past (the op included), and how many ops that is."""

    state: GroupState
    size: int


class GroupLog:
    """A replica of one group's op DAG (pure: no I/O, no clock)."""

    def __init__(self, group_id: bytes) -> None:
        self.group_id = group_id
        self.ops: dict[bytes, Op] = {}
        self.validity: dict[bytes, str | None] = {}
        self.heads: set[bytes] = set()
        #: Every device introduced by a valid genesis or add, and those ops.
        self.devices: dict[bytes, DeviceRecord] = {}
        self.introductions: dict[bytes, list[Op]] = {}
        #: (author, sequence number) -> the op IDs held with them.
        self.by_author_seq: dict[tuple[bytes, int], list[bytes]] = {}
        #: Per author, the highest sequence number held (the version vector).
        self.latest: dict[bytes, int] = {}
        #: device -> (sequence number, op ID, op ID): its equivocation evidence.
        self.equivocations: dict[bytes, Fork] = {}
        self.pending: dict[bytes, Op] = {}
        #: Ops a restore judged because the store kept no verdict for them
        #: (a store saves their verdicts at its next save).
        self.rejudged: list[bytes] = []
        #: Missing parent -> the pending ops that wait for it (so an op that
        #: arrives frees its waiting children without a scan of the buffer).
        self._waiting: dict[bytes, set[bytes]] = {}
        self.pending_bytes = 0
        #: Pending op -> who delivered it (None: this device's own store), and
        #: whether its signature could be checked when it came.
        self._pending_from: dict[bytes, tuple[bytes | None, bool]] = {}
        self._pending_count: dict[bytes | None, int] = {}
        self._held_bytes: dict[bytes | None, int] = {}
        self._unchecked: dict[bytes | None, OrderedDict[bytes, None]] = {}
        self._checked: dict[bytes | None, OrderedDict[bytes, None]] = {}
        self.authors = clocks.Authors()
        self._clocks: dict[bytes, clocks.Clock] = {}
        #: Per author, its ops' sequence numbers -> IDs (for the evidence), and sorted.
        self._seqs: dict[bytes, dict[int, list[bytes]]] = {}
        self._numbers: dict[bytes, list[int]] = {}
        #: The same for the ops that follow their number (`membership.is_evidence`).
        self._valid_seqs: dict[bytes, dict[int, list[bytes]]] = {}
        #: Genesis, adds, removes and role changes: what settles revocations.
        self._rights_ops: list[Op] = []
        self._grants_to = membership.Chains()
        # The merged state of `_order`, and what settling it needs.
        self._order: list[Op] = []
        self._position: dict[bytes, int] = {}
        self._state: GroupState | None = None
        self._plan: Plan | None = None
        self._checkpoints: list[_Checkpoint] = []
        #: Integrated ops not yet in `_order`; forks found since the last settle.
        self._fresh: list[Op] = []
        self._forked: set[bytes] = set()
        self._branches: OrderedDict[bytes, _Branch] = OrderedDict()
        #: Ops by known outsiders -> how many in a row (`_outsider_run`).
        self._outsiders: dict[bytes, int] = {}
        self._refused: OrderedDict[bytes, None] = OrderedDict()
        #: Integrated ops a store has not saved yet, in arrival order.
        self.unsaved: list[Op] = []
        #: The pending ops' IDs as a store last saved them.
        self.pending_saved: frozenset[bytes] = frozenset()
        #: Restoring from a store: signatures were checked when the ops came,
        #: and their verdicts were kept.
        self._restoring = False
        self._given: dict[bytes, tuple[str | None, int]] = {}

    # --- reading -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ops)

    def __contains__(self, op_id: bytes) -> bool:
        return op_id in self.ops

    @property
    def state(self) -> GroupState | None:
        """The merged state of every integrated op (settled when read)."""
        self._settle()
        return self._state

    @property
    def order(self) -> list[Op]:
        """Every integrated op, in replay order (settled when read)."""
        self._settle()
        return self._order

    @property
    def stale(self) -> bool:
        """Whether ops arrived that the merged state does not reflect yet."""
        return bool(self._fresh or self._forked)

    def version_vector(self) -> dict[bytes, int]:
        """Per author, the highest sequence number held (for anti-entropy)."""
        return dict(self.latest)

    def missing_parents(self) -> set[bytes]:
        """Parents that pending ops wait for and nobody has sent yet."""
        pending = self.pending
        return {p for p in self._waiting if p not in pending and p not in self.ops}

    def ancestors(self, op_ids: Iterable[bytes]) -> set[bytes]:
        """The causal past of the given ops, themselves included."""
        seen: set[bytes] = set()
        stack = list(op_ids)
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            stack.extend(self.ops[current].parents)
        return seen

    def before(self, a: Op, b: Op) -> bool:
        """Whether `a` is in `b`'s causal past (exact for authors that never equivocated)."""
        index = self.authors.get(a.author)
        return index is not None and a.id != b.id and clocks.get(self._clocks[b.id], index) >= a.seq

    def clock_value(self, op_id: bytes, author: bytes) -> int:
        """`author`'s highest sequence number in `op_id`'s causal past (0 if none)."""
        index = self.authors.get(author)
        return 0 if index is None else clocks.get(self._clocks[op_id], index)

    def position_of(self, op_id: bytes) -> int:
        """The op's place in the replay order (an op before another comes first)."""
        self._settle()
        return self._position[op_id]

    def state_of(self, op_ids: Iterable[bytes]) -> GroupState | None:
        """The state of the causal past of `op_ids` (as their author saw it)."""
        parents = sorted(set(op_ids))
        if not self.stale and set(parents) == self.heads:
            return self._state
        return self._replay_past(parents)[0]

    def full_replay(self) -> GroupState | None:
        """The merged state replayed from genesis (what the incremental path must equal)."""
        order = self._kahn(list(self.ops.values()))
        return membership.replay(order, self.validity, self, self.equivocations, self.ops)

    # --- writing -------------------------------------------------------------

    def receive(self, data: bytes, sender: bytes | None = None) -> Received:
        """Take one op's bytes (from `sender`, a peer device, if known).

        Raises an InvalidInput subclass if it is refused.
        """
        return self.receive_op(parse_op(data), sender)

    def receive_all(
        self, raws: Iterable[bytes], sender: bytes | None = None
    ) -> list[Received | InvalidInput]:
        """Take many ops (one sync message): an outcome, or the refusal, per op, in order.

        The merged state is settled once, when next read, however many
        ops came.
        """
        outcomes: list[Received | InvalidInput] = []
        for raw in raws:
            try:
                outcomes.append(self.receive(raw, sender))
            except InvalidInput as exc:
                outcomes.append(exc)
        return outcomes

    def restore(
        self,
        raws: Iterable[bytes],
        pending: Iterable[bytes] = (),
        verdicts: Mapping[bytes, tuple[str | None, int]] | None = None,
    ) -> None:
        """Load ops a store saved (in their arrival order), and the pending ones.

        Their signatures were checked when they first arrived, so they are
        not checked again (a store is as trusted as its file, PROTOCOL.md
        section 5), nor are the verdicts a store kept with them (`verdicts`:
        op ID -> (why it is invalid in its past, or None; its outsider run));
        everything else is, and the state is settled once.
        """
        self._restoring = True
        self._given = dict(verdicts or {})
        try:
            for raw in raws:
                received = self.receive(raw)
                if received.outcome == "pending":
                    raise InvalidInput("a stored op waits for a parent the store lacks")
            for raw in pending:
                self.receive(raw)
            if verdicts is not None:  # (from a store: it writes these back)
                self.rejudged = [i for i in self.ops if i not in self._given]
        finally:
            self._restoring = False
            self._given = {}
        self.mark_saved(len(self.unsaved))
        self.pending_saved = frozenset(self.pending)

    def verdict(self, op_id: bytes) -> tuple[str | None, int]:
        """What a store keeps with an op: why it is invalid (or None), its outsider run."""
        return self.validity[op_id], self._outsiders.get(op_id, 0)

    def mark_saved(self, count: int) -> None:
        """A store committed the first `count` unsaved ops."""
        del self.unsaved[:count]

    def receive_op(self, op: Op, sender: bytes | None = None) -> Received:
        if op.id in self.ops or op.id in self.pending:
            return Received("duplicate", op)
        if isinstance(op.body, Genesis):
            if op.id != self.group_id:
                raise WrongGroup("that is the genesis of another group")
        elif op.content.group != self.group_id:
            raise WrongGroup()
        ops = self.ops
        for parent in op.parents:
            if parent not in ops:
                if parent in self._refused:  # it builds on what every replica refuses
                    self._refuse(op.id)
                    raise OutsiderLimit("that op builds on ops no replica keeps")
                return self._buffer(op, sender)
        integrated = [op]
        outcome = self._integrate(op)
        if self._waiting:
            integrated.extend(self._release_pending(op))
        return Received(outcome, op, integrated)

    def _buffer(self, op: Op, sender: bytes | None) -> Received:
        """Keep an op until its parents come (bounded, per sender, junk out first).

        What can be checked now is: a known author's signature (an unknown
        author may be added by an op still on its way). One sender may fill
        at most `MAX_PENDING_PER_SENDER` places; when the whole buffer is
        full, the sender holding most places loses its oldest op whose
        signature could not be checked, and a sender that holds none of
        those, or a checked op from a full sender, is refused.
        """
        known = self.devices.get(op.author)
        if known is not None and not self._restoring:
            crypto.verify(
                known.signing_key,
                crypto.SignDomain.ENVELOPE,
                op.signed,
                op.signature,
            )
        size = len(op.raw)
        if size > MAX_PENDING_BYTES:
            raise BufferFull()
        if self._restoring:
            pass  # (kept within these bounds when they came, by whoever sent them)
        elif self._pending_count.get(sender, 0) >= MAX_PENDING_PER_SENDER and not self._evict(
            sender
        ):
            raise BufferFull("that peer's ops waiting for their parents are too many")
        while not self._restoring and (
            len(self.pending) >= MAX_PENDING_OPS or self.pending_bytes + size > MAX_PENDING_BYTES
        ):
            # The sender holding most of what is short (places, or bytes) gives way.
            held = self._pending_count if len(self.pending) >= MAX_PENDING_OPS else self._held_bytes
            busiest = max(held, key=lambda s: held[s], default=None)
            if busiest is None or not self._evict(busiest):
                raise BufferFull()
        self.pending[op.id] = op
        for parent in op.parents:
            if parent not in self.ops:
                self._waiting.setdefault(parent, set()).add(op.id)
        self.pending_bytes += size
        self._pending_from[op.id] = (sender, known is not None)
        self._pending_count[sender] = self._pending_count.get(sender, 0) + 1
        self._held_bytes[sender] = self._held_bytes.get(sender, 0) + size
        queues = self._unchecked if known is None else self._checked
        queues.setdefault(sender, OrderedDict())[op.id] = None
        return Received("pending", op)

    def _evict(self, sender: bytes | None) -> bool:
        """Drop `sender`'s oldest pending op, one not checked first; False if it has none.

        (A checked op of a known device whose parents never come is junk
        too: it goes once the sender's unchecked ones have gone.)
        """
        for queues in (self._unchecked, self._checked):
            queue = queues.get(sender)
            if queue:
                self._unpend(next(iter(queue)))
                return True
        return False

    def _unpend(self, op_id: bytes) -> Op:
        op = self.pending.pop(op_id)
        for parent in op.parents:
            waiting = self._waiting.get(parent)
            if waiting is not None:
                waiting.discard(op_id)
                if not waiting:
                    del self._waiting[parent]
        self.pending_bytes -= len(op.raw)
        sender, checked = self._pending_from.pop(op_id)
        queues = self._checked if checked else self._unchecked
        queue = queues[sender]
        del queue[op_id]
        if not queue:
            del queues[sender]
        if self._held_bytes[sender] > len(op.raw):
            self._held_bytes[sender] -= len(op.raw)
        else:
            del self._held_bytes[sender]
        left = self._pending_count[sender] - 1
        if left:
            self._pending_count[sender] = left
        else:
            del self._pending_count[sender]
        return op

    def _release_pending(self, arrived: Op) -> list[Op]:
        """Integrate the pending ops that `arrived` completes, and theirs, in waves.

        Only the ops waiting for an op just integrated are looked at (a
        review found every receive scanning the whole buffer: 10,000 junk
        ops made each honest op cost milliseconds).
        """
        released: list[Op] = []
        ready: list[tuple[bytes, Op]] = []

        def free_children(of: bytes) -> None:
            for child_id in self._waiting.pop(of, ()):
                child = self.pending.get(child_id)
                if child is not None and all(p in self.ops for p in child.parents):
                    heapq.heappush(ready, (child_id, child))

        free_children(arrived.id)
        while ready:
            _, op = heapq.heappop(ready)
            if op.id not in self.pending:
                continue
            self._unpend(op.id)
            try:
                self._integrate(op)
            except (UnknownDevice, BadSignature, OutsiderLimit):
                continue  # a forged op, or one no replica keeps, that waited: dropped now
            released.append(op)
            free_children(op.id)
        return released

    def _integrate(self, op: Op) -> Outcome:
        """Add an op whose parents are all present (signature checked here)."""
        parents = op.parents
        clock = self._clocks[parents[0]] if parents else clocks.EMPTY
        for parent in parents[1:]:
            clock = clocks.join(clock, self._clocks[parent])
        record = self._author_record(op, clock)
        if not self._restoring:
            crypto.verify(
                record.signing_key,
                crypto.SignDomain.ENVELOPE,
                op.signed,
                op.signature,
            )
        index = self.authors.of(op.author)
        previous = clocks.get(clock, index)
        if op.seq == previous + 1:
            # Only an op that follows its author's last counts in the clock:
            # one that skips ahead is kept (descendants name it) but invalid,
            # and its number must not make the author's later ops look
            # "before" everything that descends from it (review finding: a
            # removed admin escaped the veto of its removal that way).
            clock = clocks.put(clock, index, op.seq)

        heads = self.heads
        on_heads = (
            not self.stale and len(parents) == len(heads) and all(p in heads for p in parents)
        )
        branch: _Branch | None = None
        given = self._given.get(op.id) if self._restoring else None
        if given is not None:
            # Judged when it came (a store keeps the verdict with the op):
            # no state of its past is needed again.
            reason, run = given
        else:
            reason, run, branch = self._judge(op, on_heads, previous)
        if run > MAX_OPS_AFTER_REMOVAL:
            if branch is not None and len(parents) == 1:
                self._branches[parents[0]] = branch  # (it was not used)
            self._refuse(op.id)
            raise OutsiderLimit(
                f"a device that knows it is no member may add at most "
                f"{MAX_OPS_AFTER_REMOVAL} ops to a group's log"
            )
        if run:
            self._outsiders[op.id] = run
        forked = self._note_seq(
            op, membership.is_evidence(reason) and not membership.is_record_claim(op)
        )
        # A revocation under a plan that had to leave revocations out is
        # settled with the rest: which ones are left out depends on every
        # pass of the settle, not on the last one alone.
        fast = on_heads and not forked and not (self._plan_excludes() and op.revoked)
        if on_heads and not fast:
            branch = None  # (the merged state is not ours to grow; rare: a new fork)

        self.ops[op.id] = op
        self.unsaved.append(op)
        self._clocks[op.id] = clock
        self.validity[op.id] = reason
        if fast:
            heads.clear()
        else:
            heads.difference_update(parents)
        heads.add(op.id)
        if reason is None:
            self._learn_devices(op)
        if membership.is_rights_op(op):
            self._rights_ops.append(op)
            granted = membership.grants(op)
            if granted is not None:
                self._grants_to.add(granted[0], op)

        if fast:
            self._extend(op, reason)
        else:
            self._fresh.append(op)
            # The state of the op's past is its parent's plus one step, unless
            # its author signed another op with its number (that fork may be in
            # its past) or equivocated in it (the replay skips what it signs
            # from then on, and may remove it again): then a replay decides.
            if (
                branch is not None
                and reason != SEQ_REASON
                and self._numbered(op.author, op.seq) == 1
                and op.author not in branch.state.equivocators
            ):
                self._grow_branch(op, branch, reason)
        return "applied" if reason is None else "rejected"

    def _judge(
        self, op: Op, on_heads: bool, previous: int
    ) -> tuple[str | None, int, _Branch | None]:
        """(why the op is invalid in its causal past or None, its outsider run, its branch)."""
        branch: _Branch | None = None
        if on_heads:
            past_state = self._state
        elif not op.parents:
            past_state = None
        else:
            branch = self._branch_of(op.parents)
            past_state = branch.state
        if op.seq != previous + 1:
            reason: str | None = SEQ_REASON
        else:
            reason = membership.check(past_state, op)
        outsider = not isinstance(op.body, Genesis) and (
            past_state is None or op.author not in past_state.members
        )
        return reason, self._outsider_run(op) if outsider else 0, branch

    def _refuse(self, op_id: bytes) -> None:
        """Remember a refused op (the last few), so what builds on it is refused too."""
        self._refused[op_id] = None
        while len(self._refused) > MAX_REFUSED_REMEMBERED:
            self._refused.popitem(last=False)

    def _outsider_run(self, op: Op) -> int:
        """How many ops in a row, this one included, its author wrote as a known outsider.

        An outsider: not a member in the op's own causal past (removed, and
        it knew; or never added there), whatever else is wrong with the op.

        A function of the op's causal past (its author's previous op is in
        it), so every replica refuses the same ops.
        """
        before = self.by_author_seq.get((op.author, op.seq - 1), [])
        if len(before) > 1:  # a fork: the one in the op's past
            past = self.ancestors(op.parents)
            before = [i for i in before if i in past]
        elif before:
            # The only op with that number may not be in this op's past (the
            # op skips numbers: review of the merge fixes, where replicas
            # that got the two in different orders kept different ops).
            previous = self.ops[before[0]]
            if not any(p == previous.id or self.before(previous, self.ops[p]) for p in op.parents):
                before = []
        # (and its own ops it names as parents: numbers need not follow)
        before = [*before, *(p for p in op.parents if self.ops[p].author == op.author)]
        return 1 + max((self._outsiders.get(i, 0) for i in before), default=0)

    def _numbered(self, author: bytes, seq: int) -> int:
        """How many ops `author` numbered `seq` that follow its number (evidence ops).

        Where only one does, a clock that counts the number names it
        exactly: ops that reuse a number never enter clocks, so a removed
        device's op reusing an old number sends no one down the slow path
        of walking ancestors (review of the merge fixes: with one such op,
        every op by the device the old one added cost a walk of the log).
        """
        return len(self._valid_seqs.get(author, {}).get(seq, ()))

    def _note_seq(self, op: Op, valid: bool) -> bool:
        """Record the op's (author, sequence number); True if that made new evidence.

        `valid`: whether the op counts as evidence (`membership.is_evidence`:
        its number follows its author's last in its own past, PROTOCOL.md
        6.2, rule 6).
        """
        key = (op.author, op.seq)
        ids = self.by_author_seq.get(key)
        if ids is None:
            self.by_author_seq[key] = [op.id]
            self._seqs.setdefault(op.author, {})[op.seq] = self.by_author_seq[key]
            bisect.insort(self._numbers.setdefault(op.author, []), op.seq)
            if op.seq > self.latest.get(op.author, 0):
                self.latest[op.author] = op.seq
        else:
            ids.append(op.id)
        if not valid:
            return False
        valid_ids = self._valid_seqs.setdefault(op.author, {}).setdefault(op.seq, [])
        valid_ids.append(op.id)
        if len(valid_ids) < 2:
            return False
        fork = membership.fork_of(self._valid_seqs[op.author])
        assert fork is not None
        if self.equivocations.get(op.author) == fork:
            return False  # a third fork that changes no evidence
        self.equivocations[op.author] = fork
        self._forked.add(op.author)
        return True

    def _plan_excludes(self) -> bool:
        return self._plan is not None and bool(self._plan.excluded)

    def _extend(self, op: Op, reason: str | None) -> None:
        """The fast path: `op` follows every head, so it is last in the order."""
        position = len(self._order)
        if self._state is not None and position % CHECKPOINT_EVERY == 0:
            self._checkpoint(position)
        self._order.append(op)
        self._position[op.id] = position
        if self._state is None:
            if reason is None:  # genesis
                self._state = membership.replay([op], self.validity, self, {}, self.ops)
                self._plan = Plan({}, frozenset(), membership.Chains())
            return
        plan = self._plan
        assert plan is not None
        revoked = membership.revokes(op)
        if (
            revoked
            and plan.live(op, self.validity)
            and not membership.defeated_when_last(
                op, self._state, self._grants_before(op), self.validity
            )
        ):
            # It follows everything: nothing is concurrent with it, so it
            # vetoes nothing, and nothing attacks it unless through its
            # author's support; it takes effect.
            for target, _ in revoked:
                plan.in_force.add(target, op)
            plan = self._plan = Plan(
                plan.forks, plan.effective | {op.id}, plan.in_force, plan.excluded, plan.voided
            )
        membership.Replayer(self._state, self, self.ops).step(op, position, plan, self.validity)
        self._state.in_force = plan.effective

    # --- branches: the state of one op's causal past ---------------------------

    def _branch_of(self, parents: tuple[bytes, ...]) -> _Branch:
        """The state of `parents`' causal past, to judge a new op on; owned by the caller."""
        if len(parents) == 1:
            cached = self._branches.pop(parents[0], None)
            if cached is not None:
                return cached
        state, size = self._replay_past(parents)
        assert state is not None
        return _Branch(state, size)

    def _grow_branch(self, op: Op, branch: _Branch, reason: str | None) -> None:
        """Extend the branch's state by `op` (last in its own past) and keep it."""
        if reason is None:
            state = branch.state
            if not op.revoked:
                membership.Replayer(state).apply(op, branch.size)
            elif state.excluded:
                return  # (settled with its past, like the merged state: `_integrate`)
            elif membership.defeated_when_last(op, state, self._grants_before(op), self.validity):
                state.skipped[op.id] = membership.DEFEATED
            else:
                # (A branch state only judges ops: its `in_force` is not
                # kept up, which would copy a set per revocation.)
                membership.Replayer(state).apply(op, branch.size)
        branch.size += 1
        self._branches[op.id] = branch
        while len(self._branches) > MAX_BRANCH_STATES:
            self._branches.popitem(last=False)

    def _grants_before(self, op: Op) -> Callable[[Op], Iterator[Op]]:
        """The grants to an op's author in its causal past, exactly (for `defeated_when_last`).

        The clock answers for authors that signed one op per number; for a
        grant whose author signed another with its number, the clock may
        name the other (the fork is not in this past, so nothing there marks
        the author as an equivocator): the ancestry decides.
        """
        past: set[bytes] | None = None

        def before(current: Op) -> Iterator[Op]:
            nonlocal past
            for grant in self._grants_to.before(current.author, current, self):
                if self._numbered(grant.author, grant.seq) > 1:
                    if past is None:
                        past = self.ancestors(op.parents)
                    if grant.id not in past:
                        continue
                yield grant

        return before

    def _replay_past(self, parents: Iterable[bytes]) -> tuple[GroupState | None, int]:
        past = self.ancestors(parents)
        order = self._kahn([self.ops[i] for i in past])
        forks = membership.forks_of(order, self.validity)
        return membership.replay(order, self.validity, self, forks, self.ops), len(order)

    def _kahn(self, ops: list[Op]) -> list[Op]:
        """Kahn's algorithm on a causally closed set, smallest op ID first among the ready."""
        ids = {op.id for op in ops}
        children: dict[bytes, list[Op]] = {}
        indegree: dict[bytes, int] = {}
        ready: list[tuple[bytes, Op]] = []
        for op in ops:
            inside = 0
            for parent in op.parents:
                if parent in ids:
                    inside += 1
                    children.setdefault(parent, []).append(op)
            indegree[op.id] = inside
            if not inside:
                ready.append((op.id, op))
        heapq.heapify(ready)
        order: list[Op] = []
        while ready:
            _, current = heapq.heappop(ready)
            order.append(current)
            for child in children.get(current.id, ()):
                indegree[child.id] -= 1
                if indegree[child.id] == 0:
                    heapq.heappush(ready, (child.id, child))
        return order

    # --- settling the merged state ---------------------------------------------

    def _settle(self) -> None:
        """Bring the merged state up to date with every integrated op."""
        if not self.stale:
            return
        with collector_paused():  # a replay makes no cycles, only long-lived objects
            self._settle_now()

    def _settle_now(self) -> None:
        start = self._merge_order()
        plan = membership.make_plan(
            self._rights_ops, self._position, self.validity, self, self.equivocations
        )
        old = self._plan
        if old is None or old.excluded or self._state is None:
            start = 0
        else:
            start = min(start, self._changed_from(old, plan))
        self._fresh.clear()
        self._forked.clear()
        self._resume(start, plan)

    def _merge_order(self) -> int:
        """Merge the fresh ops into the order; the first position that changed."""
        fresh = self._fresh
        position = self._position
        fresh_ids = {op.id for op in fresh}
        start = len(self._order)
        for op in fresh:
            if all(p in position for p in op.parents):
                start = min(start, 1 + max((position[p] for p in op.parents), default=-1))
        # The old order restricted to the old ops is unchanged (they are a
        # causally closed subset), so only the suffix is sorted again.
        suffix = self._order[start:] + fresh
        merged = self._kahn(suffix)
        first = start
        old = self._order
        while first < len(old) and merged[first - start] is old[first]:
            first += 1
        if not fresh_ids and first == len(old):
            return first
        self._order = old[:start] + merged
        for i in range(start, len(self._order)):
            position[self._order[i].id] = i
        return first

    def _changed_from(self, old: Plan, new: Plan) -> int:
        """The first position whose replay step can differ between two plans."""
        start = len(self._order)
        position = self._position
        for author in set(old.forks) | set(new.forks):
            if old.forks.get(author) != new.forks.get(author):
                seqs = [f[0] for f in (old.forks.get(author), new.forks.get(author)) if f]
                start = min(start, self._first_from(author, min(seqs)))
        for vid in old.voided ^ new.voided:  # (what the device it adds did comes after it)
            start = min(start, position[vid])
        for rid in old.effective ^ new.effective:
            revocation = self.ops[rid]
            start = min(start, position[rid])
            for target, _ in membership.revokes(revocation):
                start = min(start, self._first_live_from(target, self.clock_value(rid, target) + 1))
                for chain in self._grants_to.not_before(target, revocation, self):
                    for grant in chain:  # (the first valid one of each author's chain)
                        if self.validity[grant.id] is None:
                            start = min(start, position[grant.id])
                            break
        return start

    def _first_live_from(self, author: bytes, seq: int) -> int:
        """The first position of a valid op of `author` numbered `seq` or more.

        What a revocation can veto is valid (an invalid op is skipped under
        any plan), and an author's valid ops are a chain in the order.
        """
        numbers = self._numbers.get(author, [])
        for number in numbers[bisect.bisect_left(numbers, seq) :]:
            ids = [i for i in self._seqs[author][number] if self.validity[i] is None]
            if ids:
                return min(self._position[i] for i in ids)
        return len(self._order)

    def _first_from(self, author: bytes, seq: int) -> int:
        """The first position of any op of `author` numbered `seq` or more."""
        found = len(self._order)
        for number, ids in self._seqs.get(author, {}).items():
            if number >= seq:
                for op_id in ids:
                    found = min(found, self._position.get(op_id, found))
        return found

    def _resume(self, start: int, plan: Plan) -> None:
        """Replay the order from `start` (from the checkpoint before it) under `plan`."""
        order = self._order
        while self._checkpoints and self._checkpoints[-1].position > start:
            self._checkpoints.pop()
        state = self._state
        if state is None or not self._checkpoints or start == 0:
            self._checkpoints.clear()
            state = membership.new_state(order[0], plan)
            begin = 0
        else:
            checkpoint = self._checkpoints[-1]
            self._restore(state, checkpoint)
            state.equivocators = {d: (a, b) for d, (_, a, b) in plan.forks.items()}
            begin = checkpoint.position
        replayer = membership.Replayer(state, self, self.ops)
        validity = self.validity
        for i in range(begin, len(order)):
            if (
                i % CHECKPOINT_EVERY == 0
                and i
                and (not self._checkpoints or self._checkpoints[-1].position < i)
            ):
                self._state = state
                self._checkpoint(i)
            replayer.step(order[i], i, plan, validity)
        self._state = state
        stray = membership.unapplied_revocations(state, plan)
        if stray:
            # A revocation in force that the replay could not apply: settle
            # again without it, from genesis (rare: only crossed revocations
            # through grants do this).
            self._checkpoints.clear()
            self._state, self._plan = membership.settle(
                order, validity, self, self.equivocations, self.ops
            )
            return
        state.in_force = plan.effective
        state.excluded = plan.excluded
        self._plan = plan

    def _checkpoint(self, position: int) -> None:
        state = self._state
        assert state is not None
        self._checkpoints.append(
            _Checkpoint(
                position,
                dict(state.members),
                dict(state.policy_frontier),
                {key: dict(ops) for key, ops in state.relay_frontier.items()},
                dict(state.inboxes),
                dict(state.person_of),
                dict(state.person_names),
                state.dealing,
                {key: dict(value) for key, value in state.approvals.items()},
                dict(state.releases),
                dict(state.claims),
                state.records,
                dict(state.windows),
                dict(state.approval_labels),
                dict(state.approved_by),
                len(state.devices),
                len(state.epochs),
                len(state.applied),
                len(state.skipped),
                len(state.notices),
            )
        )

    @staticmethod
    def _restore(state: GroupState, checkpoint: _Checkpoint) -> None:
        """Put the merged state back as it was at the checkpoint (in place)."""
        state.members = dict(checkpoint.members)
        state.policy_frontier = dict(checkpoint.policy_frontier)
        state.relay_frontier = {key: dict(ops) for key, ops in checkpoint.relay_frontier.items()}
        state.inboxes = dict(checkpoint.inboxes)
        state.person_of = dict(checkpoint.person_of)
        state.person_names = dict(checkpoint.person_names)
        state.dealing = checkpoint.dealing
        state.approvals = {key: dict(value) for key, value in checkpoint.approvals.items()}
        state.releases = dict(checkpoint.releases)
        state.claims = dict(checkpoint.claims)
        state.records = checkpoint.records
        state.windows = dict(checkpoint.windows)
        state.approval_labels = dict(checkpoint.approval_labels)
        state.approved_by = dict(checkpoint.approved_by)
        while len(state.devices) > checkpoint.devices:
            state.devices.popitem()
        while len(state.skipped) > checkpoint.skipped:
            state.skipped.popitem()
        del state.epochs[checkpoint.epochs :]
        del state.applied[checkpoint.applied :]
        del state.notices[checkpoint.notices :]

    # --- who wrote it ------------------------------------------------------------

    def _learn_devices(self, op: Op) -> None:
        """Remember a device introduced by a valid genesis, add or completion, and a
        dealing's recovery record (it signs one recovery claim, PROTOCOL.md 19.3)."""
        body = op.body
        if isinstance(body, Genesis):
            self.devices[op.author] = body.founder
            self.introductions.setdefault(op.author, []).append(op)
        elif isinstance(body, (Add, Complete)):
            self.devices.setdefault(body.target, body.device)
            self.introductions.setdefault(body.target, []).append(op)
        elif isinstance(body, Deal):
            record = body.record
            self.devices.setdefault(record.device_id.raw, record)
            self.introductions.setdefault(record.device_id.raw, []).append(op)

    def _author_record(self, op: Op, parents_clock: clocks.Clock) -> DeviceRecord:
        """The author's record, which must come from the op's own causal past.

        Looking only in the causal past (never at concurrent ops) makes
        whether an op is kept the same on every replica, whatever the order
        of arrival. The clock says an op of the introducer's with the
        introduction's number is in the past; when the introducer signed
        more than one op with that number, the ancestry decides which.
        """
        if isinstance(op.body, Genesis):
            return op.body.founder
        for intro in self.introductions.get(op.author, ()):
            index = self.authors.get(intro.author)
            if index is None or clocks.get(parents_clock, index) < intro.seq:
                continue
            if self._numbered(intro.author, intro.seq) == 1:
                return self.devices[op.author]
            if intro.id in self.ancestors(op.parents):
                return self.devices[op.author]
        raise UnknownDevice("the op's author was not added in its causal past")
