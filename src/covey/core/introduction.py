"""Introductions: a member shows a fellow member that does not know it yet that it is one.

A device added while a fellow member was away is unknown to that member:
its channel proof names a device ID the fellow has never seen, and the
fellow refuses it (PROTOCOL.md section 13), so the two cannot sync until a
device that knows both comes by. An *introduction* settles it inside the
channel: the dialer seals, with its proof, per group the two share, the ops
that make it a member there (its add and the causal chain from what the
other surely holds up to it; `channel.MAX_PROOF_OPS` and
`channel.MAX_PROOF_BYTES` in all). The responder takes them through the
normal log path (each op's signature and causal validity, exactly as a
sync's) and then looks the dialer up again.

Accepting those ops needs no trust in the dialer: they are signed ops of a
group the responder holds, validated like any sync's; a forged one is
refused and not stored. Each must lead to the dialer's add (be in its
causal past), so none is the dialer's own. The responder never applies
them out of order:
every op's parents must be held already or come earlier in the same list
(so nothing waits in the log's pending buffer on a stranger's say-so), and
the first refused op ends that group's list.

Both sides are here, pure: `introduction` (the dialer: what to send a
peer) and `admit` (the responder: take what a dialer sent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Final

from covey.core import channel, crypto
from covey.core.group import Group
from covey.core.identity import DeviceRecord
from covey.core.log import GroupLog
from covey.core.ops import Add, Genesis, Op, parse_op
from covey.errors import BadSignature, InvalidInput, PeerRefused

#: What the responder says to every introduction it does not take, the same
#: words as for any other refusal (it tells the dialer nothing more).
REFUSED: Final = "the peer is not a device this one knows"


def _applied_intros(log: GroupLog, device: bytes) -> list[Op]:
    """The valid, applied genesis or adds that introduced `device` (replay order unknown)."""
    state = log.state
    if state is None:
        return []
    return [op for op in log.introductions.get(device, ()) if op.id not in state.skipped]


def knows_of(log: GroupLog, peer: bytes, me: bytes) -> bool:
    """Whether the log shows that `peer` holds an op that made `me` a member.

    It does if it wrote one, or if an op it wrote, or an op that added it,
    has one in its causal past (it held that past when it wrote the op, or
    when it joined). Founders need no introduction: every member holds the
    genesis.
    """
    mine = _applied_intros(log, me)
    if not mine or any(isinstance(op.body, Genesis) for op in mine):
        return True
    theirs = list(_applied_intros(log, peer))
    latest = log.latest.get(peer)
    if latest is not None:
        theirs += [log.ops[i] for i in log.by_author_seq.get((peer, latest), ()) if i in log.ops]
    if any(intro.author == peer for intro in mine):
        return True
    return any(log.before(intro, op) for intro in mine for op in theirs)


def _held_by(log: GroupLog, peer: bytes) -> set[bytes]:
    """Ops `peer` surely holds: the past of its latest op, and what every op that
    added it has in its past (it joined through one of them with the whole log)."""
    held: set[bytes] | None = None
    for intro in _applied_intros(log, peer):
        past = log.ancestors([intro.id])
        held = past if held is None else held & past
    held = held or set()
    latest = log.latest.get(peer)
    if latest is not None:
        ids = [i for i in log.by_author_seq.get((peer, latest), ()) if i in log.ops]
        held |= log.ancestors(ids)
    return held


def chain(group: Group, me: bytes, peer: bytes) -> list[Op]:
    """The ops that make `me` a member of `group`, less what `peer` surely holds,
    in causal order (unbounded; `introduction` bounds it). Empty if `peer` is
    shown to know `me` already, or either is not a member here."""
    log = group.log
    state = log.state
    if state is None or me not in state.members or peer not in state.members:
        return []
    if knows_of(log, peer, me):
        return []
    needed = log.ancestors(op.id for op in _applied_intros(log, me))
    needed -= _held_by(log, peer)
    return [op for op in log.order if op.id in needed]


def introduction(groups: Iterable[Group], me: bytes, peer: bytes) -> channel.Introduction:
    """What to seal with this device's proof for `peer`, per group that needs it.

    Groups in the order given, at most `MAX_PROOF_GROUPS`; of each chain, the
    latest ops that still fit `MAX_PROOF_OPS` and `MAX_PROOF_BYTES` in all
    (a suffix of a causal order: it works when the peer holds the rest, and
    else it is refused, no harm done); a group whose add alone does not fit
    is left out.
    """
    entries: channel.Introduction = []
    ops_left, bytes_left = channel.MAX_PROOF_OPS, channel.MAX_PROOF_BYTES
    for group in groups:
        if len(entries) >= channel.MAX_PROOF_GROUPS:
            break
        ops = chain(group, me, peer)
        last = ops[-1] if ops else None
        if last is None or not isinstance(last.body, Add) or last.body.target != me:
            continue  # (a chain ends with an add of this device, unless nothing is needed)
        taken: list[bytes] = []
        size = 0
        for op in reversed(ops):
            if len(taken) >= ops_left or size + len(op.raw) > bytes_left:
                break
            taken.append(op.raw)
            size += len(op.raw)
        if not taken:
            continue
        taken.reverse()
        ops_left -= len(taken)
        bytes_left -= size
        entries.append((group.id, taken))
    return entries


def admit(
    groups: Mapping[bytes, Group],
    me: bytes,
    device: bytes,
    entries: channel.Introduction,
    check: Callable[[DeviceRecord], None],
) -> set[bytes]:
    """Take a dialer's introduction; return the groups whose logs changed.

    First, whatever groups this device holds (the same work for every
    dialer): every op must parse and be of the group it is listed under,
    each group's list must hold an add of `device` and nothing that does
    not lead to one (so nothing the dialer wrote), and `check` (the
    dialer's signature over this session's hash) must pass with the key of
    the record in that add; else PeerRefused, and nothing is applied.

    Then per group: only a group this device is a member of, where `device`
    is not known yet, and whose ops each have their parents held or earlier
    in the list, is fed to the log, op by op, until one is refused. Any
    other group costs about what a refused one does (one op parsed and one
    signature checked), so the time taken says little about which groups
    are held; PROTOCOL.md section 13 says how little.
    """
    parsed: list[tuple[bytes, list[bytes], list[Op]]] = []
    record: DeviceRecord | None = None
    for group_id, raws in entries:
        try:
            ops = [parse_op(raw) for raw in raws]
        except InvalidInput:
            raise PeerRefused(REFUSED) from None
        if any(isinstance(op.body, Genesis) or op.content.group != group_id for op in ops):
            raise PeerRefused(REFUSED)
        adds = [op.body for op in ops if isinstance(op.body, Add) and op.body.target == device]
        if not adds or not _all_lead_to_an_add(ops, device):
            raise PeerRefused(REFUSED)
        if record is None:
            record = adds[0].device
        parsed.append((group_id, raws, ops))
    if record is None:
        return set()
    check(record)  # (the device ID is the hash of the signing key: one key per ID)

    changed: set[bytes] = set()
    for group_id, raws, ops in parsed:
        group = groups.get(group_id)
        take = (
            group is not None
            and group.log.state is not None
            and me in group.state.members
            and device not in group.state.devices
        )
        log = group.log if group is not None and take else None
        closed = _closed(log, ops)
        if group is None or log is None or not closed:
            _as_costly(record, raws[0])
            continue
        for raw in raws:
            try:
                received = group.receive(raw)
            except InvalidInput:
                break
            if received.integrated:
                changed.add(group_id)
            if received.outcome == "pending":  # (cannot happen: parents were checked)
                break
    return changed


def _all_lead_to_an_add(ops: list[Op], device: bytes) -> bool:
    """Whether every op is, within `ops`, in the causal past of an add of `device`
    (each once): an introduction brings what led to the dialer's add, nothing
    the dialer wrote itself, nothing after."""
    by_id = {op.id: op for op in ops}
    stack = [op.id for op in ops if isinstance(op.body, Add) and op.body.target == device]
    reached: set[bytes] = set()
    while stack:
        current = stack.pop()
        if current not in reached:
            reached.add(current)
            stack.extend(p for p in by_id[current].parents if p in by_id)
    return len(by_id) == len(ops) == len(reached)


def _closed(log: GroupLog | None, ops: list[Op]) -> bool:
    """Whether every op's parents are in `log` or earlier in `ops` (for None: the
    same walk, against nothing)."""
    earlier: set[bytes] = set()
    ok = True
    for op in ops:
        for parent in op.parents:
            if parent not in earlier and (log is None or parent not in log):
                ok = False
        earlier.add(op.id)
    return ok and log is not None


def _as_costly(record: DeviceRecord, raw: bytes) -> None:
    """About the work of refusing a group's first op (a parse and a signature
    check), for a group not taken, so that held and not held cost alike."""
    op = parse_op(raw)
    with contextlib.suppress(BadSignature):
        crypto.verify(record.signing_key, crypto.SignDomain.ENVELOPE, op.signed, op.signature)
