"""Noise: the published vectors for our suite, and sans-I/O handshakes stepped by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from covey.core import crypto
from covey.core.noise import Handshake, NoiseStateError
from covey.errors import HandshakeFailed
from tests.conftest import SeededRng

VECTORS = json.loads(
    (Path(__file__).parent.parent / "vectors" / "noise-25519-ChaChaPoly-BLAKE2b.json").read_text()
)["vectors"]


def fixed(key_hex: str):
    """An rng that yields exactly one given ephemeral key."""
    key = bytes.fromhex(key_hex)

    def rng(n: int) -> bytes:
        assert n == 32
        return key

    return rng


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_published_vectors(vector: dict) -> None:
    pattern = vector["protocol_name"].split("_")[1]
    assert vector["protocol_name"] == f"Noise_{pattern}_25519_ChaChaPoly_BLAKE2b"

    def side(prefix: str, initiator: bool) -> Handshake:
        static = vector.get(f"{prefix}_static")
        return Handshake(
            pattern,
            initiator=initiator,
            rng=fixed(vector[f"{prefix}_ephemeral"]),
            prologue=bytes.fromhex(vector[f"{prefix}_prologue"]),
            static_secret=bytes.fromhex(static) if static else None,
            psks=tuple(bytes.fromhex(p) for p in vector.get(f"{prefix}_psks", [])),
        )

    initiator, responder = side("init", True), side("resp", False)
    for i, message in enumerate(vector["messages"]):
        sender, receiver = (initiator, responder) if i % 2 == 0 else (responder, initiator)
        payload = bytes.fromhex(message["payload"])
        expected = bytes.fromhex(message["ciphertext"])
        if not sender.complete:
            assert sender.write_message(payload) == expected, f"message {i}"
            assert receiver.read_message(expected) == payload, f"message {i}"
        else:
            assert sender.transport.encrypt(payload) == expected, f"transport message {i}"
            assert receiver.transport.decrypt(expected) == payload, f"transport message {i}"
    assert initiator.complete
    assert responder.complete
    # Some vectors name each side's expected remote static key: XX learns it.
    if "init_remote_static" in vector:
        remote = crypto.x25519_public_key(bytes.fromhex(vector["resp_static"]))
        assert bytes.fromhex(vector["init_remote_static"]) == remote
        assert initiator.transport.remote_static == remote
    if "handshake_hash" in vector:
        assert initiator.transport.handshake_hash.hex() == vector["handshake_hash"]
        assert responder.transport.handshake_hash.hex() == vector["handshake_hash"]


def test_the_psk3_vectors_exist() -> None:
    names = {v["protocol_name"] for v in VECTORS}
    assert "Noise_XX_25519_ChaChaPoly_BLAKE2b" in names
    assert "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2b" in names


def pair(pattern: str = "XX", psk: bytes | None = None, seed: str = "pair"):
    rng = SeededRng(seed)
    psks = (psk,) if psk else ()
    alice = Handshake(pattern, initiator=True, rng=rng, static_secret=rng(32), psks=psks)
    bob_psks = psks
    bob = Handshake(pattern, initiator=False, rng=rng, static_secret=rng(32), psks=bob_psks)
    return alice, bob


def run(alice: Handshake, bob: Handshake) -> None:
    bob.read_message(alice.write_message(b"hello"))
    alice.read_message(bob.write_message(b"hi"))
    bob.read_message(alice.write_message(b"done"))


def test_xx_authenticates_both_static_keys() -> None:
    alice, bob = pair()
    run(alice, bob)
    assert alice.transport.remote_static == bob.s_public
    assert bob.transport.remote_static == alice.s_public
    assert alice.transport.handshake_hash == bob.transport.handshake_hash
    ciphertext = alice.transport.encrypt(b"op bytes")
    assert bob.transport.decrypt(ciphertext) == b"op bytes"
    assert alice.transport.decrypt(bob.transport.encrypt(b"reply")) == b"reply"


def test_wrong_psk_fails_on_the_first_message_that_uses_it() -> None:
    rng = SeededRng("psk")
    alice = Handshake("XXpsk3", initiator=True, rng=rng, static_secret=rng(32), psks=(rng(32),))
    bob = Handshake("XXpsk3", initiator=False, rng=rng, static_secret=rng(32), psks=(rng(32),))
    bob.read_message(alice.write_message())
    alice.read_message(bob.write_message())
    with pytest.raises(HandshakeFailed):
        bob.read_message(alice.write_message())
    assert not bob.complete


@pytest.mark.parametrize("index", [0, 1, 2])
@pytest.mark.parametrize("damage", ["flip", "cut"])
def test_tampered_or_truncated_messages_fail(index: int, damage: str) -> None:
    """Any change to any handshake message makes the handshake fail.

    The first XX message travels in the clear, so a change to it shows only
    later, when the keys the two sides derived from it disagree.
    """
    alice, bob = pair(seed=f"t{index}{damage}")
    turns = [(alice, bob), (bob, alice), (alice, bob)]
    failed_at = None
    for i, (writer, reader) in enumerate(turns):
        message = writer.write_message(b"payload")
        if i == index:
            message = message[:-1] if damage == "cut" else message[:-1] + bytes([message[-1] ^ 1])
        try:
            reader.read_message(message)
        except HandshakeFailed:
            failed_at = i
            break
    assert failed_at is not None
    assert failed_at >= index
    assert not (alice.complete and bob.complete)


def test_out_of_turn_calls_are_refused() -> None:
    alice, bob = pair()
    with pytest.raises(NoiseStateError):
        bob.write_message()
    with pytest.raises(NoiseStateError):
        alice.read_message(b"x" * 48)
    run(alice, bob)
    with pytest.raises(NoiseStateError):
        alice.write_message()


def test_low_order_ephemeral_is_refused() -> None:
    alice, bob = pair()
    alice.write_message()
    bob.read_message(bytes(32))  # an all-zero ephemeral key, no payload
    with pytest.raises(HandshakeFailed):
        bob.write_message()  # its "ee" would be DH with a low-order point


def test_transport_messages_cannot_be_replayed_or_reordered() -> None:
    alice, bob = pair()
    run(alice, bob)
    first, second = alice.transport.encrypt(b"1"), alice.transport.encrypt(b"2")
    with pytest.raises(HandshakeFailed):
        bob.transport.decrypt(second)
    assert bob.transport.decrypt(first) == b"1"
    with pytest.raises(HandshakeFailed):
        bob.transport.decrypt(first)
    assert crypto.NOISE_TAG_BYTES == 16


def test_channel_fragments_are_bounded() -> None:
    from covey.core import channel
    from covey.errors import MalformedMessage, OversizeMessage

    alice, bob = pair(seed="frag")
    run(alice, bob)
    reassembler = channel.Reassembler(bob.transport)
    with pytest.raises(MalformedMessage):  # an empty fragment that is not the last
        reassembler.push(alice.transport.encrypt(channel.MORE))
    reassembler = channel.Reassembler(bob.transport)
    piece = channel.MORE + b"x"
    for _ in range(channel.MAX_FRAGMENTS):
        assert reassembler.push(alice.transport.encrypt(piece)) is None
    with pytest.raises(OversizeMessage):
        reassembler.push(alice.transport.encrypt(piece))
    # A real message of the largest size still goes through.
    big = b"y" * channel.MAX_MESSAGE
    receiver = channel.Reassembler(bob.transport)
    frames = channel.fragments(alice.transport, big)
    assert len(frames) == channel.MAX_FRAGMENTS
    results = [receiver.push(frame[2:]) for frame in frames]
    assert results[-1] == big
