"""Asking holders for approval (PROTOCOL.md 19.2): the two links of the exchange.

A device that asks to be admitted, or to recover a person, shows a code as
an inviter does and waits; a holder that runs `covey recovery approve CODE`
dials it as a joiner does. The first messages are the pairing's, unchanged
(`covey.core.pairing`: SPAKE2 on the code inside Noise_XXpsk3, the code
confirmed both ways before either side shows anything): so `AskLink` is an
`InviteLink` and `ApproveLink` a `JoinLink` until then. After it:

    holder -> asker   its proof: [device record and signature, ""]  (as a joiner's)
    asker  -> holder  the request: [proof, kind, group name, person name, [op, ...]]
    holder -> asker   the answer: [approved 0|1, [op, ...], share words or "", group ID]
    asker  -> holder  the end: [the recovery claim op, or empty]

The asker's proof signs the session's handshake hash under
`covey/v1/rec-ask`. The holder's node decides (`decide`): it checks the
request, writes its `approve` op (and, for the K-th approval of an
admission, the claim), and sends the group's log and, for a recovery, its
share. The request carries the ops the asker was sent by earlier holders
(their approvals among them), so that holders who never meet still see
each other's approvals, and the K-th can claim. The asker's node checks
the share against the dealing's digest in that log (`answered`) and,
holding K shares with the paper it was given, signs the recovery claim as
the dealing's recovery record and hands it back in the last message, for
the holder to add to the log.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from covey.core import Rng, channel, crypto, encoding, fields, pairing
from covey.core.identity import DeviceRecord, Identity, open_device_record
from covey.core.node.io import ConnId, Effect
from covey.core.node.links import InviteLink, JoinLink
from covey.core.ops import REQUEST_KINDS
from covey.errors import InvalidInput, MalformedMessage, PeerRefused

#: The request: small, but for the ops it forwards (as many as a welcome holds).
ASK_LIMITS: Final = pairing.WELCOME_LIMITS
#: The answer carries the group's whole log (as a welcome does) and a share's words.
ANSWER_LIMITS: Final = dataclasses.replace(pairing.WELCOME_LIMITS, str_len=1024)
END_LIMITS: Final = encoding.Limits(
    total=64 * 1024, bin_len=60 * 1024, str_len=0, array_len=1, map_len=0, depth=2, objects=2
)


@dataclass(frozen=True)
class Ask:
    """What a requesting device asks: to be admitted to `group`, or to recover `person`."""

    kind: str
    group: str
    person: str | None
    #: Ops earlier holders sent (forwarded to the next, for their approvals).
    ops: tuple[bytes, ...] = ()


@dataclass(frozen=True)
class Answer:
    """A holder's answer: whether it approved, the group's log, its share (a recovery)."""

    approved: bool
    ops: list[bytes]
    share: str
    group_id: bytes


def encode_answer(answer: Answer) -> bytes:
    flag = int(answer.approved)
    return encoding.encode([flag, answer.ops, answer.share, answer.group_id], ANSWER_LIMITS)


def read_answer(message: bytes) -> Answer:
    value = encoding.decode(message, ANSWER_LIMITS)
    if not isinstance(value, list) or len(value) != 4:
        raise MalformedMessage("not a holder's answer")
    flag, ops, share, group_id = value
    if flag not in (0, 1) or type(flag) is not int:
        raise MalformedMessage("not a holder's answer")
    if not isinstance(ops, list) or not all(isinstance(op, bytes) for op in ops):
        raise MalformedMessage("the answer must list ops")
    if not isinstance(share, str) or len(share) > 1024:
        raise MalformedMessage("the answer's share is not text")
    fields.get_bytes({"g": group_id}, "g", size=32)
    return Answer(bool(flag), ops, share, group_id)


class AskLink(InviteLink):
    """The asking device's side: a holder's session, answered by `answered`.

    `answered(holder, answer, out)` returns the last message's op (a
    recovery claim's bytes) or b"".
    """

    def __init__(
        self,
        me: Identity,
        invitation: pairing.Invitation,
        ask: Ask,
        answered: Callable[[DeviceRecord, Answer, list[Effect]], bytes],
        forward: Callable[[], list[bytes]],
        conn: ConnId,
        address: str,
        now: float,
        rng: Rng,
    ) -> None:
        super().__init__(me, invitation, _no_welcome, conn, address, now, rng)
        self.me = me
        self.ask = ask
        self.answered = answered
        self.forward = forward
        self.holder: DeviceRecord | None = None
        self.answer: Answer | None = None

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        if self.step < 2:
            super().on_frame(frame, now, out)
            return
        assert self.reassembler is not None
        message = self.reassembler.push(frame)
        if message is None:
            return
        if self.holder is None:
            self.invitation.check_open(int(now))
            self.holder, _, _ = self.inviter.joiner(message)
            proof = channel.proof(
                self.me, crypto.SignDomain.RECOVERY_ASK, self.inviter.handshake_hash, record=True
            )
            forwarded = list(self.forward())
            request = [proof, self.ask.kind, self.ask.group, self.ask.person or "", forwarded]
            self._send_message(out, encoding.encode(request, ASK_LIMITS))
            return
        self.answer = read_answer(message)
        claim = self.answered(self.holder, self.answer, out)
        self._send_message(out, encoding.encode([claim], END_LIMITS))
        self.finished = True


def _no_welcome(*_: Any) -> Any:  # (an asking link never welcomes anyone)
    raise PeerRefused("this device asks; it does not invite")


class ApproveLink(JoinLink):
    """A holder's side: `decide(asker record bytes, Ask, out)` gives the answer; `ended`
    takes the last message's claim (b"": none)."""

    def __init__(
        self,
        me: Identity,
        secret: pairing.Secret,
        decide: Callable[[DeviceRecord, bytes, Ask, list[Effect]], Answer],
        ended: Callable[[bytes, list[Effect]], None],
        conn: ConnId,
        address: str,
        now: float,
        rng: Rng,
    ) -> None:
        super().__init__(me, secret, conn, address, now, rng)
        self.decide = decide
        self.ended = ended
        self.asker: DeviceRecord | None = None
        self.answer: Answer | None = None

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        if not self.identified:
            super().on_frame(frame, now, out)
            return
        assert self.reassembler is not None
        message = self.reassembler.push(frame)
        if message is None:
            return
        if self.asker is None:
            record, raw, ask = read_ask(message, self.joiner.handshake_hash)
            self.asker = record
            self.answer = self.decide(record, raw, ask, out)
            for piece in channel.fragments(self.joiner.transport, encode_answer(self.answer)):
                self.send(out, piece)
            return
        value = encoding.decode(message, END_LIMITS)
        if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], bytes):
            raise MalformedMessage("not the end of an approval")
        self.ended(value[0], out)
        self.finished = True


def read_ask(message: bytes, handshake_hash: bytes) -> tuple[DeviceRecord, bytes, Ask]:
    """The asking device's record (its proof checked), its record's bytes, what it asks."""
    value = encoding.decode(message, ASK_LIMITS)
    if not isinstance(value, list) or len(value) != 5:
        raise MalformedMessage("not a request")
    proof, kind, group, person, ops = value
    if not isinstance(ops, list) or not all(isinstance(op, bytes) for op in ops):
        raise MalformedMessage("a request forwards ops")
    if not isinstance(proof, bytes) or kind not in REQUEST_KINDS:
        raise MalformedMessage("not a request")
    group = fields.get_str({"group": group}, "group", min_len=1, max_len=64)
    person = fields.get_str({"person": person}, "person", max_len=64) or None
    if (kind == "recover") != (person is not None):
        raise MalformedMessage("a recovery names a person, an admission none")
    raw, signature = channel.read_proof(proof)
    try:
        record = open_device_record(raw).body
    except InvalidInput as exc:
        raise PeerRefused("the asking device's record does not verify") from exc
    channel.check_proof(record, signature, crypto.SignDomain.RECOVERY_ASK, handshake_hash)
    return record, raw, Ask(kind, group, person, tuple(ops))
