"""One connection's protocol, as a small state machine per kind of connection.

DESIGN. Every connection a node has is a `Link`: bytes in (`feed`), effects
out (appended to the `out` list the node passes). A link knows its own
protocol and nothing of the node's other connections; what it needs of the
node (the groups, which devices are known, how to persist a change, what to
do with a finished pairing) it asks through the `LinkHost` protocol, which
the node implements.

    Accepted  --preamble "cv1c"-->  ChannelLink (responder)
              --preamble "cv1p"+tag-->  InviteLink (the inviter's side)
    dialed:   ChannelLink (initiator) or JoinLink (the joiner's side)

A ChannelLink runs Noise_NN (no static keys: the handshake identifies
nobody), then the two sides prove which devices they are inside the
channel (`covey.core.channel.proof`): the initiator first, sealed to the
device it dialed, the responder only once it knows the initiator; so
neither shows anything that identifies it to a device it does not know.
Then one anti-entropy sync (`covey.core.sync`): hellos cross, ops and needs
flow, and once each side has sent and received `bye` the link is finished
and closes. Pairing links run Noise_XXpsk3 with SPAKE2 and confirm the code
both ways before either side proves who it is (`covey.core.pairing`), then
the inviter sends the welcome.

Any `InvalidInput` a link raises closes that connection only; the node
reports it and goes on. Deadlines: a handshake must finish within
`HANDSHAKE_TIMEOUT` of the connection's start, each later message must come
within `READ_TIMEOUT` of the one before, and a whole connection lasts at
most `SESSION_TIMEOUT`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from covey.core import Rng, channel, crypto, noise, pairing
from covey.core.channel import Deframer, Reassembler
from covey.core.group import Group
from covey.core.identity import DeviceRecord, Identity
from covey.core.node.io import ConnId, Effect, Send
from covey.core.sync import BYE, SyncSession
from covey.errors import (
    DecryptionFailed,
    HandshakeFailed,
    InvalidInput,
    MalformedMessage,
    PeerRefused,
)

#: Seconds to finish a handshake (three messages: milliseconds on a LAN).
HANDSHAKE_TIMEOUT: Final = 5.0
#: Seconds to wait for any one message after the handshake.
READ_TIMEOUT: Final = 60.0
#: Seconds one connection may last, however lively the peer.
SESSION_TIMEOUT: Final = 300.0
#: Bytes of a preamble, at most (pairing: 4 + an 8-byte tag).
MAX_PREAMBLE: Final = channel.PREAMBLE_BYTES + channel.PAIR_TAG_BYTES


class LinkHost(Protocol):
    """What a link needs of its node."""

    @property
    def me(self) -> Identity: ...

    @property
    def groups(self) -> Mapping[bytes, Group]: ...

    def known_device(self, device_id: bytes) -> DeviceRecord | None:
        """The record of this device if it was ever added to one of our groups."""
        ...

    def introduce(
        self,
        device_id: bytes,
        introduction: channel.Introduction,
        check: Callable[[DeviceRecord], None],
        out: list[Effect],
    ) -> int:
        """Take a dialer's introduction (`covey.core.introduction.admit`), persist
        what it changed; return how many groups changed. PeerRefused if it fails
        the checks every introduction must pass."""
        ...

    def persist(self, groups: set[bytes], out: list[Effect]) -> None:
        """Make these groups' changes durable (before anything sent after)."""
        ...


@dataclass
class SyncResult:
    """What a finished sync did, for the node's log line and its peer table."""

    peer: DeviceRecord
    changed: int
    refused: int
    #: The groups the peer's hello named that this device holds: those where
    #: the peer knows this device (it names every group it was ever added to).
    named: frozenset[bytes] = frozenset()


class Link:
    """What every kind of connection shares: its ID, framing and deadlines."""

    def __init__(self, conn: ConnId, address: str, now: float) -> None:
        self.conn = conn
        self.address = address
        self.started = now
        self.last_read = now
        #: A known device proved itself: not the first to be dropped when
        #: connections run short.
        self.proven = False
        #: A whole message arrived: not silent (silent ones are dropped first).
        self.heard = False
        #: The protocol finished: the node closes the link.
        self.finished = False
        self.deframer = Deframer()
        #: The device this dial is for, and the node's log generation when
        #: it started (set by the node for its own channel dials).
        self.dials_for: bytes | None = None
        #: The device a probe (a dial of an advert not recognized) seeks.
        self.probe_for: bytes | None = None
        self.generation = -1
        #: The addresses and port dialed (for the node's `Peer.good`).
        self.dialed: tuple[tuple[str, ...], int] | None = None
        #: The command this pairing link serves (invitations).
        self.request: int | None = None
        #: Seconds to prove who it is (longer for a pairing through a relay,
        #: whose messages wait for the other side's next read of the rendezvous).
        self.handshake_timeout = HANDSHAKE_TIMEOUT

    def deadline(self) -> float:
        end = self.started + SESSION_TIMEOUT
        if not self.proven:
            return min(end, self.started + self.handshake_timeout)
        return min(end, self.last_read + READ_TIMEOUT)

    def connected(self, out: list[Effect]) -> None:
        """The dial reached the peer: say the first message (initiators)."""

    def feed(self, data: bytes, now: float, out: list[Effect]) -> None:
        for message in self.deframer.feed(data):
            if self.finished:
                raise MalformedMessage("the peer sent more after the end")
            # Only a whole frame counts as the peer being alive: a byte now
            # and then does not keep a connection open.
            self.last_read = now
            self.heard = True
            self.on_frame(message, now, out)

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        raise NotImplementedError

    def send(self, out: list[Effect], data: bytes) -> None:
        out.append(Send(self.conn, data))


class Accepted(Link):
    """An accepted connection whose preamble has not arrived yet."""

    def __init__(self, conn: ConnId, address: str, now: float) -> None:
        super().__init__(conn, address, now)
        self.head = b""

    def take_preamble(self, data: bytes) -> tuple[bytes, bytes, bytes] | None:
        """(kind, tag, rest of the data) once the preamble is whole, else None."""
        self.head += data
        if len(self.head) < channel.PREAMBLE_BYTES:
            return None
        kind = self.head[: channel.PREAMBLE_BYTES]
        if kind == channel.CHANNEL_PREAMBLE:
            return kind, b"", self.head[channel.PREAMBLE_BYTES :]
        if kind == channel.PAIR_PREAMBLE:
            if len(self.head) < MAX_PREAMBLE:
                return None
            return kind, self.head[channel.PREAMBLE_BYTES : MAX_PREAMBLE], self.head[MAX_PREAMBLE:]
        raise MalformedMessage("not a covey connection")


class ChannelLink(Link):
    """A Noise_NN channel to a known device, proofs of identity inside, then one sync.

    The initiator dialed a device it recognized (`expect`): once the
    handshake is done it sends its proof sealed to that device's channel
    key, and waits for the responder's proof. The responder opens the
    initiator's proof, checks it is from a device it knows, and only then
    sends its own. Whatever does not check is PeerRefused, and the
    connection closes with nothing more said.

    A dialer that the dialed device may not know yet (it was added while
    that one was away) seals an `introduction` with its proof: per group,
    the ops that make it a member (`covey.core.introduction`). The
    responder takes them through its logs (persisted before anything is
    sent), then looks the dialer up again; a dialer that is still not known
    is refused the same way as any other.
    """

    def __init__(
        self,
        host: LinkHost,
        conn: ConnId,
        address: str,
        now: float,
        rng: Rng,
        *,
        initiator: bool,
        expect: DeviceRecord | None = None,
        introduction: channel.Introduction | None = None,
    ) -> None:
        super().__init__(conn, address, now)
        self.host = host
        self.initiator = initiator
        self._rng = rng
        #: The device the dialed advert belongs to: the responder must prove it is.
        self.expect = expect
        #: What the initiator seals with its proof for a device that may not know it.
        self.introduction = introduction or []
        self.noise = noise.Handshake(
            channel.PATTERN, initiator=initiator, rng=rng, prologue=channel.PROLOGUE
        )
        self.transport: noise.Transport | None = None
        self.reassembler: Reassembler | None = None
        self.peer: DeviceRecord | None = None
        #: The initiator sent its proof, and waits for the responder's.
        self.proof_sent = False
        self.session: SyncSession | None = None
        self.waiting = 0
        self.sent_bye = False
        self.peer_bye = False
        self.changed = 0
        self.refused = 0

    def connected(self, out: list[Effect]) -> None:
        self.send(out, channel.CHANNEL_PREAMBLE + channel.frame(self.noise.write_message()))

    def send_message(self, out: list[Effect], message: bytes) -> None:
        assert self.transport is not None
        for piece in channel.fragments(self.transport, message):
            self.send(out, piece)

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        if self.transport is None:
            self._handshake(frame, out)
            return
        assert self.reassembler is not None
        message = self.reassembler.push(frame)
        if message is None:
            return
        if self.peer is None:
            self._peer_proof(message, out)
        else:
            self._sync(message, out)

    def _handshake(self, frame: bytes, out: list[Effect]) -> None:
        self.noise.read_message(frame)
        if not self.noise.complete and self.noise.my_turn():
            self.send(out, channel.frame(self.noise.write_message()))
        if self.noise.complete:
            self.transport = self.noise.transport
            assert self.transport is not None
            self.reassembler = Reassembler(self.transport)
            if self.initiator:
                if self.expect is None:
                    raise PeerRefused("a dial is always for a device this one knows")
                mine = channel.proof(
                    self.host.me,
                    crypto.SignDomain.CHANNEL_INITIATOR,
                    self.transport.handshake_hash,
                    record=False,
                    introduction=self.introduction,
                )
                sealed = crypto.seal_anonymous(self.expect.channel_key, mine, self._rng)
                self.send_message(out, sealed)
                self.proof_sent = True

    def _peer_proof(self, message: bytes, out: list[Effect]) -> None:
        assert self.transport is not None
        handshake_hash = self.transport.handshake_hash
        try:
            if self.initiator:
                assert self.expect is not None
                peer = self.expect
                device, signature = channel.read_proof(message)
                domain = crypto.SignDomain.CHANNEL_RESPONDER
                if not crypto.equal(device, peer.device_id.raw):
                    raise PeerRefused("the device that answered is not the one dialed")
            else:
                opened = crypto.open_anonymous(self.host.me.secrets.channel_secret, message)
                device, signature, introduction = channel.read_dialer_proof(opened)
                domain = crypto.SignDomain.CHANNEL_INITIATOR
                if introduction:
                    self.changed += self.host.introduce(
                        device,
                        introduction,
                        lambda record: channel.check_proof(
                            record, signature, domain, handshake_hash
                        ),
                        out,
                    )
                known = self.host.known_device(device)
                if known is None:
                    raise PeerRefused("the peer is not a device this one knows")
                peer = known
            channel.check_proof(peer, signature, domain, handshake_hash)
        except (DecryptionFailed, MalformedMessage) as exc:
            # One answer for every failure: nothing tells the peer why.
            raise PeerRefused("the peer is not a device this one knows") from exc
        self.peer = peer
        self.proven = True
        if not self.initiator:
            self.send_message(
                out,
                channel.proof(
                    self.host.me, crypto.SignDomain.CHANNEL_RESPONDER, handshake_hash, record=False
                ),
            )
        self.session = SyncSession(self.host.groups, peer.device_id.raw)
        self.send_message(out, self.session.hello())
        self.waiting = 1  # our hello awaits its "done"

    def _sync(self, message: bytes, out: list[Effect]) -> None:
        assert self.session is not None
        outcome = self.session.receive(message)
        self.refused += len(outcome.refused)
        if outcome.changed:
            self.changed += len(outcome.changed)
            self.host.persist(outcome.changed, out)  # persist, then send
        for reply in outcome.send:
            self.send_message(out, reply)
        self.waiting += outcome.asked - outcome.answered
        self.peer_bye |= outcome.peer_finished
        if self.waiting <= 0 and not self.sent_bye:
            self.send_message(out, BYE)
            self.sent_bye = True
        if self.sent_bye and self.peer_bye:
            self.finished = True

    def result(self) -> SyncResult | None:
        if not self.finished or self.peer is None:
            return None
        named = frozenset() if self.session is None else self.session.peer_named
        return SyncResult(self.peer, self.changed, self.refused, named)


class InviteLink(Link):
    """The inviter's side of a pairing; `welcome` is called once the joiner is proven.

    `welcome(record, record_bytes, person, out)` adds the device (persisting the add;
    `person` is the one the joiner proposes, or None)
    and returns the group whose log the joiner is sent, and whether the
    device was a member already (then nothing was added, and the invitation
    is not used up). Steps: 0, waiting for message 1; 1, for message 3 (the
    code check: a wrong code is `wrong_code`, one attempt spent); 2, for the
    joiner's proof.
    """

    def __init__(
        self,
        me: Identity,
        invitation: pairing.Invitation,
        welcome: Callable[[DeviceRecord, bytes, str | None, list[Effect]], tuple[Group, bool]],
        conn: ConnId,
        address: str,
        now: float,
        rng: Rng,
    ) -> None:
        super().__init__(conn, address, now)
        self.invitation = invitation
        self.inviter = pairing.Inviter(me, invitation, rng)
        self.welcome = welcome
        self.step = 0
        #: Message 3 did not prove the code: this link cost the invitation an attempt.
        self.wrong_code = False
        self.reassembler: Reassembler | None = None
        #: (the joiner's record, the pairing words, whether it was a member already)
        self.joined: tuple[DeviceRecord, list[str], bool] | None = None

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        if self.step == 0:
            self.invitation.check_open(int(now))
            self.send(out, channel.frame(self.inviter.second(frame)))
            self.step = 1
            return
        if self.step == 1:
            self.step = 2
            try:
                confirmation = self.inviter.confirm(frame)
            except HandshakeFailed:
                self.wrong_code = True
                raise
            self.invitation.check_open(int(now))
            self.reassembler = Reassembler(self.inviter.transport)
            self._send_message(out, confirmation)
            return
        assert self.reassembler is not None
        proof = self.reassembler.push(frame)
        if proof is None:
            return
        record, record_bytes, person = self.inviter.joiner(proof)
        self.invitation.check_open(int(now))
        group, already = self.welcome(record, record_bytes, person, out)
        if not already:  # (a member proving the code again spends nothing)
            self.invitation.succeeded()
        self._send_message(out, self.inviter.welcome(group, already=already))
        self.joined = (record, self.inviter.pairing_words, already)
        self.finished = True

    def _send_message(self, out: list[Effect], message: bytes) -> None:
        for piece in channel.fragments(self.inviter.transport, message):
            self.send(out, piece)


class JoinLink(Link):
    """The joiner's side of a pairing: on success `joined` holds the group."""

    def __init__(
        self,
        me: Identity,
        secret: pairing.Secret,
        conn: ConnId,
        address: str,
        now: float,
        rng: Rng,
        person: str | None = None,
    ) -> None:
        super().__init__(conn, address, now)
        self.me = me
        self.secret = secret
        self.joiner = pairing.Joiner(me, secret, rng, person)
        self.reached = False
        self.reassembler: Reassembler | None = None
        #: The inviter's confirmation checked, and this device's proof went out.
        self.identified = False
        #: (what the welcome brought, the pairing words)
        self.joined: tuple[pairing.Welcome, list[str]] | None = None

    def connected(self, out: list[Effect]) -> None:
        self.reached = True
        preamble = channel.PAIR_PREAMBLE + self.secret.tag
        self.send(out, preamble + channel.frame(self.joiner.first()))

    def on_frame(self, frame: bytes, now: float, out: list[Effect]) -> None:
        if self.reassembler is None:
            self.send(out, channel.frame(self.joiner.third(frame)))
            self.reassembler = Reassembler(self.joiner.transport)
            return
        try:
            message = self.reassembler.push(frame)
        except InvalidInput:
            if not self.identified:  # (a party without the code cannot encrypt to us)
                raise HandshakeFailed("the other device does not know the code") from None
            raise
        if message is None:
            return
        if not self.identified:
            proof = self.joiner.identify(message)
            self.identified = True
            for piece in channel.fragments(self.joiner.transport, proof):
                self.send(out, piece)
            return
        welcome = pairing.read_welcome(self.me, message, self.joiner.handshake_hash)
        self.joined = (welcome, self.joiner.pairing_words)
        self.finished = True


def closed_early(link: Link) -> HandshakeFailed:
    """The error a pairing link reports when the peer went away before the end."""
    if isinstance(link, JoinLink):
        return HandshakeFailed(
            "the inviting device closed the connection: wrong code, or the invitation is over"
        )
    return HandshakeFailed("the joining device went away")
