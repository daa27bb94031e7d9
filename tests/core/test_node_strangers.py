"""What strangers get from a node: issue 9, findings 4a, 4b and 5d.

* 4a: anyone who connects to a serving node learns nothing that identifies
  it (before: the node's long-term channel key, the Noise static of XX, the
  same in every session, so its connections could be linked over time).
* 4b: an impostor who answers a joiner without knowing the code learns
  nothing that identifies the joiner (before: XXpsk3 sent the joiner's
  channel key in message 3 under keys that did not include the code).
* 5d: strangers who hold connections to an inviter open and silent neither
  keep a real joiner out nor spend the invitation's attempts.

A spy records everything the stranger's side could read: every byte it was
sent, every key and payload its Noise handshakes learned, every transport
message it could decrypt. Then the test looks for the victim's identity in
all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from covey.core import channel, discovery, noise, pairing
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, io
from covey.core.node.links import HANDSHAKE_TIMEOUT, ChannelLink
from covey.core.node.node import MAX_CONNECTIONS, MAX_PER_ADDRESS, OpenInvitation
from tests.conftest import NOW, SeededRng
from tests.core.test_node import ME, Wire, advert_of, paired

PHONE = create_identity("phone", NOW, SeededRng("strangers-phone"))
MALLORY = create_identity("mallory", NOW, SeededRng("strangers-mallory"))


def identity_bytes(identity: Identity) -> dict[str, bytes]:
    """Every value that would tell who a device is."""
    record = identity.record
    return {
        "device ID": record.device_id.raw,
        "signing key": record.signing_key,
        "box key": record.box_key,
        "channel key": record.channel_key,
        "record": identity.record_bytes,
    }


def leaked(identity: Identity, learned: list[bytes]) -> list[str]:
    """Which of `identity`'s values appear anywhere in what was learned."""
    return sorted(
        name
        for name, value in identity_bytes(identity).items()
        if any(value in blob for blob in learned)
    )


@contextmanager
def spy(monkeypatch: pytest.MonkeyPatch, *, initiator: bool) -> Iterator[list[bytes]]:
    """Record what every Noise handshake on one side (`initiator` or not) learns:
    the peer's keys, the payloads it decrypts, the transport messages it opens."""
    learned: list[bytes] = []
    transports: set[int] = set()
    read, write, decrypt = (
        noise.Handshake.read_message,
        noise.Handshake.write_message,
        noise.Transport.decrypt,
    )

    def note(handshake: noise.Handshake) -> None:
        learned.extend(k for k in (handshake.rs, handshake.re) if k is not None)
        if handshake.transport is not None:
            transports.add(id(handshake.transport))

    def read_message(self: noise.Handshake, message: bytes) -> bytes:
        if self.initiator != initiator:
            return read(self, message)
        try:
            payload = read(self, message)
            learned.append(payload)
            return payload
        finally:
            note(self)

    def write_message(self: noise.Handshake, payload: bytes = b"") -> bytes:
        out = write(self, payload)
        if self.initiator == initiator:
            note(self)
        return out

    def transport_decrypt(self: noise.Transport, ciphertext: bytes, ad: bytes = b"") -> bytes:
        plain = decrypt(self, ciphertext, ad)
        if id(self) in transports:
            learned.append(plain)
        return plain

    monkeypatch.setattr(noise.Handshake, "read_message", read_message)
    monkeypatch.setattr(noise.Handshake, "write_message", write_message)
    monkeypatch.setattr(noise.Transport, "decrypt", transport_decrypt)
    yield learned


# --- 4a: a stranger who connects -----------------------------------------------


def connect_as_stranger(wire: Wire, stranger: Node, conn: int, now: float) -> None:
    """The stranger dials the laptop (wire.a) and runs the channel protocol as
    far as the laptop lets it, claiming to expect the laptop's own record (it
    may have seen it in a group's log) and pretending to know whoever answers."""
    link = ChannelLink(
        stranger, -conn, "", now, SeededRng(f"s{conn}"), initiator=True, expect=ME.record
    )
    stranger.links[-conn] = link
    wire.ends[(id(stranger), -conn)] = (wire.a, conn)
    wire.ends[(id(wire.a), conn)] = (stranger, -conn)
    wire.now = now
    wire.feed(wire.a, io.Incoming(conn, "10.0.0.66"))
    wire.feed(stranger, io.Connected(-conn, "10.0.0.1"))


def test_a_stranger_who_connects_learns_nothing_that_identifies_the_node(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 4a. Before: message 2 of Noise_XX carried the node's channel
    key (its long-term static), the same in every session, to whoever
    connected; the spy found it twice."""
    stranger_id = create_identity("stranger", NOW, SeededRng("strangers-stranger"))
    stranger = Node(stranger_id)
    # The stranger goes as far as it can: it takes any answer for a device it
    # knows (`knows_key` and `knows` were the checks before the fix; the
    # laptop's record is what it claims to expect).
    stranger.knows_key = lambda key: True  # type: ignore[attr-defined]
    stranger.knows = lambda record: True  # type: ignore[attr-defined]
    stranger.known_device = lambda device: ME.record  # type: ignore[method-assign]
    wire = Wire(Node(ME), stranger)
    wire.feed(wire.a, io.Command(1, io.CreateGroup("family")))
    sessions = []
    with spy(monkeypatch, initiator=True) as learned:
        for conn in (1, 2):
            before = len(learned)
            connect_as_stranger(wire, stranger, conn, NOW + conn)
            sessions.append(learned[before:])
            assert conn not in wire.a.links  # refused
    sent = [e.data for name, e in wire.log if name == "laptop" and isinstance(e, io.Send)]
    assert sent, "the laptop answered the handshake"
    assert leaked(ME, learned + sent) == []
    # Nothing the stranger learned in one session shows up in the other.
    first = {bytes(b) for b in sessions[0] if len(b) >= 16}
    assert not any(b in first for b in sessions[1] if len(b) >= 16)


# --- 4b: an impostor who answers a joiner ----------------------------------------


def impostor_inviter(code: str) -> tuple[Node, list[io.Effect]]:
    """Mallory's node with an invitation of her own under the same number as
    `code` (the number is public: it is the advert's tag), other words."""
    node = Node(MALLORY)
    node.handle(io.Command(1, io.CreateGroup("fake")), NOW, SeededRng("m0"))
    real = pairing.parse_code(code)
    guess = next(w for w in ("academic-acid", "acne-acid") if f"{real.nameplate}-{w}" != real.code)
    secret = pairing.parse_code(f"{real.nameplate}-{guess}")
    secret = pairing.Secret(secret.nameplate, secret.code, SeededRng("m-link")(32))
    group_id = next(iter(node.groups))
    invitation = pairing.Invitation(group_id, "member", secret, NOW + 600)
    node.invitations[1] = OpenInvitation(invitation, "m-advert")
    advert = io.Advertise(
        "m-advert", discovery.padded_advert(secret.advert_tags, SeededRng("m-pad"))
    )
    return node, [advert]


def test_an_impostor_answering_a_joiner_learns_none_of_its_identity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Finding 4b. Before: the impostor read the joiner's channel key out of
    handshake message 3 (XXpsk3 sends `s` before the psk is mixed in)."""
    laptop = Node(ME)
    laptop.handle(io.Command(1, io.CreateGroup("family")), NOW, SeededRng("l0"))
    invited = laptop.handle(io.Command(2, io.Invite("family")), NOW, SeededRng("l1"))
    code = next(e for e in invited if isinstance(e, io.Reply)).data["code"]
    mallory, advert = impostor_inviter(code)
    wire = Wire(mallory, Node(PHONE))
    with spy(monkeypatch, initiator=False) as learned:
        wire.feed(wire.b, io.Command(1, io.Join(code=code, timeout=5)))
        wire.feed(wire.b, advert_of(advert))
        wire.now = NOW + 10
        wire.feed(wire.b, io.Tick())
    replies = [e for name, e in wire.log if name == "phone" and isinstance(e, io.Reply)]
    assert replies
    assert replies[-1].error == "HandshakeFailed"
    assert wire.b.groups == {}
    got = [e.data for name, e in wire.log if name == "phone" and isinstance(e, io.Send)]
    assert got, "the phone did start the pairing with the impostor"
    assert leaked(PHONE, learned + got) == []
    # The impostor did not get in either: its invitation counted a wrong code,
    # or the joiner stopped before it could test one.
    assert not any(r.data.get("event") == "joined" for r in replies)


def test_an_impostor_joiner_learns_nothing_that_identifies_the_inviter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The other way round: someone who knows the number (it is on the LAN)
    but not the words connects to the inviter. Before: message 2 carried the
    inviter's channel key (XX's responder static)."""
    laptop = Node(ME)
    laptop.handle(io.Command(1, io.CreateGroup("family")), NOW, SeededRng("l0"))
    invited = laptop.handle(io.Command(2, io.Invite("family")), NOW, SeededRng("l1"))
    reply = next(e for e in invited if isinstance(e, io.Reply))
    real = pairing.parse_code(reply.data["code"])
    wrong = next(
        f"{real.nameplate}-{w}"
        for w in ("academic-acid", "acne-acid")
        if f"{real.nameplate}-{w}" != real.code
    )
    wire = Wire(laptop, Node(MALLORY))
    with spy(monkeypatch, initiator=True) as learned:
        wire.feed(wire.b, io.Command(1, io.Join(code=wrong, timeout=5)))
        wire.feed(wire.b, advert_of(invited))
    got = [e.data for name, e in wire.log if name == "laptop" and isinstance(e, io.Send)]
    assert got
    assert leaked(ME, learned + got) == []
    assert laptop.invitations[2].invitation.attempts_left == pairing.MAX_ATTEMPTS - 1


# --- 5d: silent strangers at an invitation -----------------------------------------


def inviting() -> tuple[Wire, list[io.Effect]]:
    wire = Wire(Node(ME), Node(PHONE))
    wire.feed(wire.a, io.Command(1, io.CreateGroup("family")))
    effects = wire.a.handle(io.Command(2, io.Invite("family")), NOW, SeededRng("i"))
    return wire, effects


def join(wire: Wire, effects: list[io.Effect], now: float) -> list[io.Reply]:
    code = next(e for e in effects if isinstance(e, io.Reply)).data["code"]
    wire.now = now
    wire.feed(wire.b, io.Command(1, io.Join(code=code)))
    return join_with(wire, effects, now)


def join_with(wire: Wire, effects: list[io.Effect], now: float) -> list[io.Reply]:
    """The joiner (already joining) sees the inviter's advert and pairs."""
    wire.now = now
    wire.feed(wire.b, advert_of(effects))
    return [e for name, e in wire.log if name == "phone" and isinstance(e, io.Reply)]


def attempts_left(node: Node) -> int:
    return node.invitations[2].invitation.attempts_left


def no_attempt_failed(wire: Wire) -> bool:
    return not any(
        isinstance(e, io.Reply) and e.data.get("event") == "attempt_failed" for _, e in wire.log
    )


def test_silent_connections_from_one_host_neither_block_a_joiner_nor_spend_attempts() -> None:
    """Finding 5d: a stranger holds connections to `covey invite` and says
    nothing. Each source address gets MAX_PER_ADDRESS connections at most;
    the joiner, from another address, pairs at once (handshakes run side by
    side in the node, no lock), and no attempt is spent."""
    wire, effects = inviting()
    laptop = wire.a
    events: list[io.Effect] = []
    for conn in range(1000, 1000 + MAX_PER_ADDRESS + 5):
        events += laptop.handle(io.Incoming(conn, "192.0.2.66"), NOW, SeededRng(str(conn)))
    held = [c for c in laptop.links if c >= 1000]
    assert len(held) == MAX_PER_ADDRESS
    assert attempts_left(laptop) == pairing.MAX_ATTEMPTS
    replies = join(wire, effects, NOW + 1)
    assert replies[-1].data.get("event") == "joined", replies
    assert all(c in laptop.links for c in held)  # still open, still silent
    assert no_attempt_failed(wire)


def test_a_full_table_of_silent_strangers_gives_way_to_a_joiner() -> None:
    """Silent strangers from as many addresses as there are connections: the
    joiner's connection takes the place of the oldest one that proved nothing."""
    wire, effects = inviting()
    laptop = wire.a
    for conn in range(1000, 1000 + MAX_CONNECTIONS):
        laptop.handle(io.Incoming(conn, f"192.0.2.{conn - 999}"), NOW, SeededRng(str(conn)))
    assert len(laptop.links) == MAX_CONNECTIONS
    replies = join(wire, effects, NOW + 1)
    assert replies[-1].data.get("event") == "joined", replies
    assert no_attempt_failed(wire)


@pytest.mark.parametrize("stall", ["nothing", "preamble", "first message"])
def test_a_stranger_who_stalls_before_it_could_test_a_guess_spends_no_attempt(
    stall: str,
) -> None:
    """Connections that time out before the joiner side could test a guess at
    the code (silent, a preamble only, or a first handshake message and then
    nothing) are closed at the handshake deadline and cost the invitation
    nothing; a real joiner pairs afterwards."""
    wire, effects = inviting()
    laptop = wire.a
    code = next(e for e in effects if isinstance(e, io.Reply)).data["code"]
    tag = pairing.parse_code(code).tag
    stranger = pairing.Joiner(MALLORY, pairing.parse_code(code), SeededRng("stall"))
    data: dict[str, Any] = {
        "nothing": b"",
        "preamble": channel.PAIR_PREAMBLE + tag,
        "first message": channel.PAIR_PREAMBLE + tag + channel.frame(stranger.first()),
    }
    out: list[io.Effect] = []
    for conn, address in ((1000, "192.0.2.1"), (1001, "192.0.2.2")):
        out += laptop.handle(io.Incoming(conn, address), NOW, SeededRng("in"))
        if data[stall]:
            out += laptop.handle(io.Received(conn, data[stall]), NOW, SeededRng("rx"))
    out += laptop.handle(io.Tick(), NOW + HANDSHAKE_TIMEOUT, SeededRng("t"))
    assert io.Close(1000) in out
    assert io.Close(1001) in out
    assert attempts_left(laptop) == pairing.MAX_ATTEMPTS
    assert not any(isinstance(e, io.Reply) for e in out)
    replies = join(wire, effects, NOW + HANDSHAKE_TIMEOUT + 1)
    assert replies[-1].data.get("event") == "joined", replies
    assert no_attempt_failed(wire)


def test_pairing_still_works_and_both_sides_see_the_same_words() -> None:
    wire, _ = paired()
    joined = [e for name, e in wire.log if name == "phone" and isinstance(e, io.Reply)]
    served = [e for name, e in wire.log if name == "laptop" and isinstance(e, io.Reply)]
    assert joined[-1].data["pairing_words"] == served[-1].data["pairing_words"]
    assert joined[-1].data["inviter"] == "laptop"


def test_answers_that_test_no_guess_do_not_use_up_a_joiners_attempts() -> None:
    """A joiner gives up after as many failed handshakes as an inviter allows,
    since each lets whoever answered test a guess at the code. Strangers at
    copies of the invitation's advert that answer junk before message 3
    tested nothing: they cost the joiner no attempt (before: each did, and
    three of them ended the join)."""
    wire, effects = inviting()
    phone = wire.b
    code = next(e for e in effects if isinstance(e, io.Reply)).data["code"]
    tag = pairing.parse_code(code).tag
    phone.handle(io.Command(1, io.Join(code=code, timeout=60)), NOW, SeededRng("j"))
    for i in range(pairing.MAX_ATTEMPTS + 1):
        txt = discovery.padded_advert([tag], SeededRng(f"pad{i}"))
        copy = io.AdvertSeen(f"copy{i}", (f"192.0.2.{i}",), 9, txt)
        (dial,) = [e for e in phone.handle(copy, NOW, SeededRng(f"c{i}")) if isinstance(e, io.Dial)]
        phone.handle(io.Connected(dial.conn, f"192.0.2.{i}"), NOW, SeededRng(f"d{i}"))
        junk = channel.frame(bytes(80))
        out = phone.handle(io.Received(dial.conn, junk), NOW, SeededRng(f"e{i}"))
        assert io.Close(dial.conn) in out
        assert not [e for e in out if isinstance(e, io.Reply)]
    assert phone.joins[1].attempts == 0
    replies = join_with(wire, effects, NOW + 1)
    assert replies[-1].data.get("event") == "joined", replies


def test_strangers_arriving_mid_pairing_push_out_silent_connections_not_the_joiner() -> None:
    """A table full of silent strangers, a joiner halfway through its pairing,
    then a new silent stranger for every place: each new one takes the place
    of a connection that never sent a whole message, never the joiner's
    (before: of the oldest unproven, and the joiner's turn came)."""
    wire, effects = inviting()
    laptop = wire.a
    for conn in range(1000, 1000 + MAX_CONNECTIONS):
        laptop.handle(io.Incoming(conn, f"192.0.2.{conn - 999}"), NOW, SeededRng(str(conn)))
    code = pairing.parse_code(next(e for e in effects if isinstance(e, io.Reply)).data["code"])
    phone = pairing.Joiner(PHONE, code, SeededRng("phone"))
    replies: list[io.Reply] = []

    def say(data: bytes, now: float) -> list[bytes]:
        """Bytes from the phone (conn 7); the Noise messages the laptop answers."""
        out = laptop.handle(io.Received(7, data), now, SeededRng(f"say{now}"))
        replies.extend(e for e in out if isinstance(e, io.Reply))
        sent = b"".join(e.data for e in out if isinstance(e, io.Send) and e.conn == 7)
        return channel.Deframer().feed(sent)

    laptop.handle(io.Incoming(7, "10.0.0.2"), NOW + 1, SeededRng("in"))
    (second,) = say(channel.PAIR_PREAMBLE + code.tag + channel.frame(phone.first()), NOW + 1)
    for conn in range(2000, 2000 + MAX_CONNECTIONS):
        address = f"198.51.100.{conn - 1999}"
        laptop.handle(io.Incoming(conn, address), NOW + 2, SeededRng(str(conn)))
    assert 7 in laptop.links
    (confirmation,) = say(channel.frame(phone.third(second)), NOW + 2)
    proof = phone.identify(phone.transport.decrypt(confirmation)[1:])
    say(b"".join(channel.fragments(phone.transport, proof)), NOW + 2)
    assert [r.data.get("event") for r in replies] == ["joined"]
