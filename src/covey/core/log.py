"""One replica of a group's log: a DAG of signed ops, and the state it means.

`GroupLog.receive(bytes)` is the only way in. An op is

* parsed strictly (a malformed op raises and is not kept);
* buffered if any parent is missing (bounded: `MAX_PENDING_OPS` ops and
  `MAX_PENDING_BYTES` bytes), and integrated once its parents arrive;
* checked against its author's key, which must be known from the op's
  causal past (an op nobody could have authorized is dropped);
* judged once against the state of its own causal past (`membership.check`),
  and kept either way, so the DAG stays whole;
* merged into the state. When the op follows every current head (the
  usual case) the state is extended by that one op. Otherwise the whole
  state is replayed from the set of ops (`membership.replay`), which is what
  makes every replica agree whatever order ops arrive in.

Equivocation (one author, one sequence number, two ops) is detected when the
second op arrives; both are kept as evidence (`equivocations`).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal

from covey.core import crypto, membership
from covey.core.identity import DeviceRecord
from covey.core.membership import GroupState
from covey.core.ops import Add, Genesis, Op, parse_op
from covey.errors import BadSignature, BufferFull, UnknownDevice, WrongGroup

#: Ops waiting for a missing parent: enough for a long partition's worth of
#: changes arriving out of order, small enough to bound memory.
MAX_PENDING_OPS: Final = 10_000
MAX_PENDING_BYTES: Final = 64 << 20

Outcome = Literal["applied", "rejected", "pending", "duplicate"]


@dataclass(slots=True)
class Received:
    """What one `receive` did: its own outcome and every op it integrated."""

    outcome: Outcome
    op: Op
    #: Ops integrated by this call (this one and any pending ones it freed).
    integrated: list[Op] = field(default_factory=list)


class GroupLog:
    """A replica of one group's op DAG (pure: no I/O, no clock)."""

    def __init__(self, group_id: bytes) -> None:
        self.group_id = group_id
        self.ops: dict[bytes, Op] = {}
        self.order: list[Op] = []
        self.clocks: dict[bytes, dict[bytes, int]] = {}
        self.validity: dict[bytes, str | None] = {}
        self.heads: set[bytes] = set()
        #: Every device introduced by a valid genesis or add, and those ops.
        self.devices: dict[bytes, DeviceRecord] = {}
        self.introductions: dict[bytes, list[Op]] = {}
        self.by_author_seq: dict[tuple[bytes, int], bytes] = {}
        #: Per author, the highest sequence number held (the version vector).
        self.latest: dict[bytes, int] = {}
        #: device -> (sequence number, op ID, op ID): its first equivocation.
        self.equivocations: dict[bytes, tuple[int, bytes, bytes]] = {}
        self.pending: dict[bytes, Op] = {}
        self.pending_bytes = 0
        self.state: GroupState | None = None

    # --- reading -------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ops)

    def __contains__(self, op_id: bytes) -> bool:
        return op_id in self.ops

    def version_vector(self) -> dict[bytes, int]:
        """Per author, the highest sequence number held (for anti-entropy)."""
        vector: dict[bytes, int] = {}
        for author, seq in self.by_author_seq:
            if seq > vector.get(author, 0):
                vector[author] = seq
        return vector

    def missing_parents(self) -> set[bytes]:
        """Parents that pending ops wait for and nobody has sent yet."""
        return {p for op in self.pending.values() for p in op.parents if p not in self.ops} - set(
            self.pending
        )

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

    def state_of(self, op_ids: Iterable[bytes]) -> GroupState | None:
        """The state of the causal past of `op_ids` (as their author saw it)."""
        past = self.ancestors(op_ids)
        if len(past) == len(self.ops):
            return self.state
        return self._replay(op for op in self.order if op.id in past)

    # --- writing -------------------------------------------------------------

    def receive(self, data: bytes) -> Received:
        """Take one op's bytes. Raises an InvalidInput subclass if it is refused."""
        return self.receive_op(parse_op(data))

    def receive_op(self, op: Op) -> Received:
        if op.id in self.ops or op.id in self.pending:
            return Received("duplicate", op)
        if isinstance(op.body, Genesis):
            if op.id != self.group_id:
                raise WrongGroup("that is the genesis of another group")
        elif op.content.group != self.group_id:
            raise WrongGroup()
        ops = self.ops
        missing = False
        for parent in op.parents:
            if parent not in ops:
                missing = True
                break
        if missing:
            # Check what can be checked now: a known author's signature.
            # (An unknown author may be added by an op still on its way.)
            known = self.devices.get(op.author)
            if known is not None:
                crypto.verify(
                    known.signing_key,
                    crypto.SignDomain.ENVELOPE,
                    op.envelope.signed,
                    op.envelope.signature,
                )
            size = len(op.raw)
            if (
                len(self.pending) >= MAX_PENDING_OPS
                or self.pending_bytes + size > MAX_PENDING_BYTES
            ):
                raise BufferFull()
            self.pending[op.id] = op
            self.pending_bytes += size
            return Received("pending", op)
        integrated = [op]
        outcome = self._integrate(op)
        integrated.extend(self._release_pending())
        return Received(outcome, op, integrated)

    def _release_pending(self) -> list[Op]:
        released: list[Op] = []
        progress = True
        while progress:
            progress = False
            for op in sorted(self.pending.values(), key=lambda o: o.id):
                if all(p in self.ops for p in op.parents):
                    del self.pending[op.id]
                    self.pending_bytes -= len(op.raw)
                    try:
                        self._integrate(op)
                    except (UnknownDevice, BadSignature):
                        continue  # a forged op that waited: dropped now
                    released.append(op)
                    progress = True
        return released

    def _integrate(self, op: Op) -> Outcome:
        """Add an op whose parents are all present (signature checked here)."""
        parents = op.parents
        clock = dict(self.clocks[parents[0]]) if parents else {}
        for parent in parents[1:]:
            for author, seq in self.clocks[parent].items():
                if seq > clock.get(author, 0):
                    clock[author] = seq
        record = self._author_record(op, clock)
        crypto.verify(
            record.signing_key,
            crypto.SignDomain.ENVELOPE,
            op.envelope.signed,
            op.envelope.signature,
        )
        previous = clock.get(op.author, 0)
        if op.seq == previous + 1:
            # Only an op that follows its author's last counts in the clock:
            # one that skips ahead is kept (descendants name it) but invalid,
            # and its number must not make the author's later ops look
            # "before" everything that descends from it (review finding: a
            # removed admin escaped the veto of its removal that way).
            clock[op.author] = op.seq

        new_equivocation = False
        key = (op.author, op.seq)
        other = self.by_author_seq.get(key)
        if other is None:
            self.by_author_seq[key] = op.id
            if op.seq > self.latest.get(op.author, 0):
                self.latest[op.author] = op.seq
        else:
            known = self.equivocations.get(op.author)
            if known is None or op.seq < known[0]:
                self.equivocations[op.author] = (op.seq, other, op.id)
                new_equivocation = True

        heads = self.heads
        fast = (
            len(parents) == len(heads)
            and all(parent in heads for parent in parents)
            and not new_equivocation
        )
        past_state = self.state if fast else self.state_of(op.parents) if op.parents else None
        if op.seq != previous + 1:
            reason: str | None = "its sequence number does not follow its author's last"
        else:
            reason = membership.check(past_state, op)

        self.ops[op.id] = op
        self.clocks[op.id] = clock
        self.validity[op.id] = reason
        if fast:
            heads.clear()
        else:
            heads.difference_update(parents)
        heads.add(op.id)
        if reason is None:
            self._learn_devices(op)

        if fast:
            self.order.append(op)
            if reason is None:
                if self.state is None:
                    self.state = membership.replay([op], self.validity, self.clocks, {})
                else:
                    membership.Replayer(self.state).apply(op, len(self.order) - 1)
            elif self.state is not None:
                self.state.skipped[op.id] = reason
        else:
            self.order = self._topological_order()
            self.state = self._replay(self.order)
        return "applied" if reason is None else "rejected"

    def _learn_devices(self, op: Op) -> None:
        """Remember a device introduced by a valid genesis or add."""
        if isinstance(op.body, Genesis):
            self.devices[op.author] = op.body.founder
            self.introductions.setdefault(op.author, []).append(op)
        elif isinstance(op.body, Add):
            self.devices.setdefault(op.body.target, op.body.device)
            self.introductions.setdefault(op.body.target, []).append(op)

    def _author_record(self, op: Op, parents_clock: dict[bytes, int]) -> DeviceRecord:
        """The author's record, which must come from the op's own causal past.

        Looking only in the causal past (never at concurrent ops) makes
        whether an op is kept the same on every replica, whatever the order
        of arrival.
        """
        if isinstance(op.body, Genesis):
            return op.body.founder
        for intro in self.introductions.get(op.author, ()):
            if intro.author in self.equivocations:
                if intro.id in self.ancestors(op.parents):
                    return self.devices[op.author]
            elif parents_clock.get(intro.author, 0) >= intro.seq:
                return self.devices[op.author]
        raise UnknownDevice("the op's author was not added in its causal past")

    def _replay(self, ops: Iterable[Op]) -> GroupState | None:
        ops = list(ops)
        ids = {op.id for op in ops}
        equivocations = {
            device: fork
            for device, fork in self.equivocations.items()
            if fork[1] in ids and fork[2] in ids
        }
        return membership.replay(ops, self.validity, self.clocks, equivocations)

    def _topological_order(self) -> list[Op]:
        """Kahn's algorithm, smallest op ID first among the ready ops."""
        children: dict[bytes, list[bytes]] = {}
        for op in self.ops.values():
            for parent in op.parents:
                children.setdefault(parent, []).append(op.id)
        indegree = {op_id: len(op.parents) for op_id, op in self.ops.items()}
        ready = [op_id for op_id, degree in indegree.items() if degree == 0]
        heapq.heapify(ready)
        order: list[Op] = []
        while ready:
            current = heapq.heappop(ready)
            order.append(self.ops[current])
            for child in children.get(current, ()):
                indegree[child] -= 1
                if indegree[child] == 0:
                    heapq.heappush(ready, child)
        return order
