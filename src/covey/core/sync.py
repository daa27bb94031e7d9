"""Anti-entropy between two devices: each sends the other the ops it lacks.

Sans-I/O: a `SyncSession` holds one device's side of a conversation with
one peer over an authenticated channel (the channel layer has already
checked that the peer is the device it says it is). Messages go in as bytes
and come out as bytes; ops that arrive are applied to the local groups, and
the session reports which groups changed so the caller can persist them
(persist, then send).

Messages are canonical msgpack maps, `{"t": kind, ...}`:

* `hello`  `{"g": [[group ID, {author hex: seq}], ...]}`: for every group
  the peer was ever added to (as this device sees it), the version vector
  held here. Groups the peer was never in are never named to it, and ops go
  only to current members (see `_group`), but for one thing: a device that
  was removed is sent what it lacks of the causal past of the op that
  removed it, so it learns of its removal (and nothing after).
* `ops`    `{"g": group ID, "o": [op bytes, ...]}`: ops the peer lacks, in
  causal order, at most `MAX_OPS_PER_MESSAGE` per message.
* `need`   `{"g": group ID, "i": [op ID, ...]}`: parents that ops waiting
  here still lack.
* `done`   `{}`: every answer to the peer's last `hello` or `need` has been
  sent.
* `bye`    `{}`: every request of the sender has been answered; it will ask
  nothing more. A one-shot sync ends once each side has sent and received
  `bye` (see `ChannelLink` in `covey.core.node.links`).

Two devices that both changed a group while apart converge in one exchange:
each says what it has, each sends the other what it lacks.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from covey.core import encoding, fields, roster
from covey.core.encoding import Limits
from covey.core.group import Group
from covey.core.ops import Op
from covey.errors import InvalidInput, MalformedMessage, NotAMember

#: Ops in one `ops` message (and so bytes in one message: about 64 rotations
#: of a large group, or thousands of small ops; see MAX_MESSAGE_BYTES).
MAX_OPS_PER_MESSAGE: Final = 512
#: Bytes of op data in one `ops` message.
MAX_MESSAGE_BYTES: Final = 2 << 20
#: Op IDs in one `need` message.
MAX_NEEDS: Final = 1024
#: Groups named in one `hello`.
MAX_GROUPS: Final = 1024
#: `need` requests a peer may make in one session (each answers a round of
#: missing parents; a log needs few).
MAX_NEED_ROUNDS: Final = 64
#: Authors in one version vector.
MAX_AUTHORS: Final = 20_000

LIMITS: Final = Limits(
    total=4 << 20,
    bin_len=4 << 20,
    str_len=64,
    array_len=MAX_AUTHORS,
    map_len=MAX_AUTHORS,
    depth=5,
    objects=200_000,
)


@dataclass
class Outcome:
    """What handling one message produced."""

    #: Messages to send to the peer, in order.
    send: list[bytes] = field(default_factory=list)
    #: Groups whose logs changed (to persist before anything is sent).
    changed: set[bytes] = field(default_factory=set)
    #: Ops refused, with the reason (for the log line; never fatal).
    refused: list[str] = field(default_factory=list)
    #: Requests (`hello`, `need`) this message made of the peer: to await answers.
    asked: int = 0
    #: Answers (`done`) this message gave to our requests.
    answered: int = 0
    #: Whether the peer said `bye`.
    peer_finished: bool = False


def _encode(message: dict[str, Any]) -> bytes:
    return encoding.encode(message, LIMITS)


DONE: Final = _encode({"t": "done"})
BYE: Final = _encode({"t": "bye"})


def ops_messages(group_id: bytes, ops: Iterable[Op]) -> list[bytes]:
    """`ops` messages carrying `ops` in their order (also a relay item's payload)."""
    messages = []
    batch: list[bytes] = []
    size = 0
    for op in ops:
        if batch and (len(batch) >= MAX_OPS_PER_MESSAGE or size + len(op.raw) > MAX_MESSAGE_BYTES):
            messages.append(_encode({"t": "ops", "g": group_id, "o": batch}))
            batch, size = [], 0
        batch.append(op.raw)
        size += len(op.raw)
    if batch:
        messages.append(_encode({"t": "ops", "g": group_id, "o": batch}))
    return messages


def read_ops(data: bytes) -> tuple[bytes, list[bytes]]:
    """An `ops` message on its own (a relay item's payload): (group ID, op bytes).

    MalformedMessage unless it is exactly an `ops` message within the limits.
    """
    value = encoding.decode(data, LIMITS)
    message = fields.as_map(value, _KEYS["ops"], what="ops message")
    if message["t"] != "ops":
        raise MalformedMessage("expected an ops message")
    group = message["g"]
    if type(group) is not bytes or len(group) != 32:
        raise MalformedMessage("a group ID is 32 bytes")
    return group, _op_list(message["o"])


def _op_list(ops: Any) -> list[bytes]:
    if not isinstance(ops, list) or len(ops) > MAX_OPS_PER_MESSAGE:
        raise MalformedMessage(f"an ops message carries at most {MAX_OPS_PER_MESSAGE} ops")
    if not all(isinstance(raw, bytes) for raw in ops):
        raise MalformedMessage("ops are byte strings")
    return ops


def news_of_removal(group: Group, device: bytes, vector: Mapping[bytes, int]) -> list[Op]:
    """What a removed device lacks of the causal past of the op that removed it.

    It was a member up to that op, so these ops tell it nothing it was not
    entitled to (the keys in them are of epochs before its removal); what
    came after, or concurrently, is not sent. None if no op removed it.
    """
    removal = roster.removal_op(group.log, device)
    if removal is None:
        return []
    past = group.log.ancestors([removal.id])
    return [op for op in missing_for(group, vector) if op.id in past]


def missing_for(group: Group, vector: Mapping[bytes, int]) -> list[Op]:
    """The ops of `group` a holder of `vector` lacks, in causal order.

    An author that equivocated has every op from its fork sent, so both
    forks reach the peer as evidence.
    """
    log = group.log
    forks = {author: fork[0] for author, fork in log.equivocations.items()}
    return [
        op
        for op in log.order
        if op.seq > vector.get(op.author, 0) or op.seq >= forks.get(op.author, op.seq + 1)
    ]


class SyncSession:
    """This device's side of a sync with one authenticated peer device."""

    def __init__(self, groups: Mapping[bytes, Group], peer: bytes) -> None:
        self.groups = groups
        self.peer = peer
        self._hellos = 0
        self._needs = 0
        #: Groups held here that the peer's hello named: it knows this device there.
        self.peer_named: frozenset[bytes] = frozenset()

    def _groups_with_peer(self, *, members_only: bool) -> list[Group]:
        """Groups the peer is a member of, or (members_only=False) was ever added to."""
        found = []
        for group in self.groups.values():
            try:
                state = group.state
            except NotAMember:
                continue
            if self.peer in (state.members if members_only else state.devices):
                found.append(group)
        return found

    def hello(self) -> bytes:
        """The first message: what this device holds of every group the peer is in."""
        entries = [
            [g.id, {author.hex(): seq for author, seq in g.log.version_vector().items()}]
            for g in self._groups_with_peer(members_only=False)
        ]
        return _encode({"t": "hello", "g": entries[:MAX_GROUPS]})

    def receive(self, data: bytes) -> Outcome:
        """Handle one message from the peer. Raises InvalidInput if it is malformed."""
        value = encoding.decode(data, LIMITS)
        kind = value.get("t") if isinstance(value, dict) else None
        if not isinstance(kind, str) or kind not in _KEYS:
            raise MalformedMessage("unknown sync message")
        message = fields.as_map(value, _KEYS[kind], what="sync message")
        if kind == "hello":
            if self._hellos >= 1:
                raise MalformedMessage("a peer says hello once per session")
            self._hellos += 1
            outcome = self._on_hello(message)
        elif kind == "ops":
            return self._on_ops(message)
        elif kind == "need":
            if self._needs >= MAX_NEED_ROUNDS:
                raise MalformedMessage("too many requests for missing ops in one session")
            self._needs += 1
            outcome = self._on_need(message)
        elif kind == "bye":
            return Outcome(peer_finished=True)
        else:
            return Outcome(answered=1)
        outcome.send.append(DONE)
        return outcome

    def _group(self, group_id: Any, *, members_only: bool) -> Group | None:
        """The group, if the peer may (members_only: still) hear about it; else None.

        Ops go only to current members. Ops are taken from, and version
        vectors shown to, any device ever added: a device that others think
        removed may hold the op that, merged, makes it a member again (two
        admins removing each other: the senior one's removal wins), and it
        must be able to deliver it. Groups the peer was never in are never
        confirmed to exist.
        """
        if not isinstance(group_id, bytes) or len(group_id) != 32:
            raise MalformedMessage("a group ID is 32 bytes")
        group = self.groups.get(group_id)
        if group is None or group not in self._groups_with_peer(members_only=members_only):
            return None
        return group

    def _on_hello(self, message: dict[str, Any]) -> Outcome:
        outcome = Outcome()
        entries = message["g"]
        if not isinstance(entries, list) or len(entries) > MAX_GROUPS:
            raise MalformedMessage("a hello names at most 1,024 groups")
        named: set[bytes] = set()
        for entry in entries:
            if not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[1], dict):
                raise MalformedMessage("a hello entry is [group ID, version vector]")
            if not isinstance(entry[0], bytes) or entry[0] in named:
                raise MalformedMessage("a hello names each group once, by its 32-byte ID")
            named.add(entry[0])
            vector = _vector(entry[1])
            group = self._group(entry[0], members_only=False)
            if group is None:
                continue
            if self.peer in group.state.members:
                ops = missing_for(group, vector)
            else:
                ops = news_of_removal(group, self.peer, vector)
            outcome.send += ops_messages(group.id, ops)
        self.peer_named = frozenset(g for g in named if g in self.groups)
        return outcome

    def _on_ops(self, message: dict[str, Any]) -> Outcome:
        outcome = Outcome()
        group = self._group(message["g"], members_only=False)
        ops = _op_list(message["o"])
        if group is None:
            return outcome
        for received in group.receive_all(ops, self.peer):
            if isinstance(received, InvalidInput):
                outcome.refused.append(str(received))
            elif received.integrated:
                outcome.changed.add(group.id)
        missing = sorted(group.log.missing_parents())[:MAX_NEEDS]
        if missing:
            outcome.send.append(_encode({"t": "need", "g": group.id, "i": missing}))
            outcome.asked += 1
        return outcome

    def _on_need(self, message: dict[str, Any]) -> Outcome:
        outcome = Outcome()
        group = self._group(message["g"], members_only=True)
        wanted = message["i"]
        if not isinstance(wanted, list) or len(wanted) > MAX_NEEDS:
            raise MalformedMessage(f"a need message names at most {MAX_NEEDS} ops")
        if group is None:
            return outcome
        ids = {w for w in wanted if isinstance(w, bytes) and len(w) == 32}
        ancestors = group.log.ancestors(i for i in ids if i in group.log)
        ops = [op for op in group.log.order if op.id in ancestors]
        outcome.send += ops_messages(group.id, ops)
        return outcome


_KEYS: Final = {
    "hello": ("t", "g"),
    "ops": ("t", "g", "o"),
    "need": ("t", "g", "i"),
    "done": ("t",),
    "bye": ("t",),
}


def _vector(value: dict[Any, Any]) -> dict[bytes, int]:
    # Map keys are text in covey's encoding, so authors are hex strings.
    vector = {}
    for author, seq in value.items():
        if not isinstance(author, str) or len(author) != 64 or type(seq) is not int or seq < 0:
            raise MalformedMessage("a version vector maps author IDs (hex) to sequence numbers")
        try:
            vector[bytes.fromhex(author)] = seq
        except ValueError as exc:
            raise MalformedMessage("author IDs are hex") from exc
    return vector
