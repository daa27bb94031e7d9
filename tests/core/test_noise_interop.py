"""covey's Noise against an independent implementation (the noiseprotocol package).

Handshakes in both directions, XX and XXpsk3, then transport messages both
ways, and a wrong psk failing on both sides. noiseprotocol (built on the
`cryptography` package, not libsodium) is used only here.
"""

from __future__ import annotations

import pytest

from covey.core import crypto
from covey.core.noise import Handshake
from covey.errors import HandshakeFailed
from tests.conftest import SeededRng

noise_connection = pytest.importorskip("noise.connection")


def theirs(pattern: str, initiator: bool, static: bytes, psk: bytes | None, prologue: bytes):
    connection = noise_connection.NoiseConnection.from_name(
        f"Noise_{pattern}_25519_ChaChaPoly_BLAKE2b".encode()
    )
    if initiator:
        connection.set_as_initiator()
    else:
        connection.set_as_responder()
    connection.set_keypair_from_private_bytes(noise_connection.Keypair.STATIC, static)
    connection.set_prologue(prologue)
    if psk is not None:
        connection.set_psks(psk=psk)
    connection.start_handshake()
    return connection


@pytest.mark.parametrize("pattern", ["XX", "XXpsk3"])
@pytest.mark.parametrize("covey_initiates", [True, False])
def test_handshake_and_transport_with_noiseprotocol(pattern: str, covey_initiates: bool) -> None:
    rng = SeededRng(f"{pattern}-{covey_initiates}")
    psk = rng(32) if pattern.endswith("psk3") else None
    ours_static, theirs_static = rng(32), rng(32)
    prologue = b"covey/v1/test"
    ours = Handshake(
        pattern,
        initiator=covey_initiates,
        rng=rng,
        prologue=prologue,
        static_secret=ours_static,
        psks=(psk,) if psk else (),
    )
    other = theirs(pattern, not covey_initiates, theirs_static, psk, prologue)
    for i in range(3):
        covey_writes = (i % 2 == 0) == covey_initiates
        payload = f"message {i}".encode()
        if covey_writes:
            assert other.read_message(ours.write_message(payload)) == payload
        else:
            assert ours.read_message(other.write_message(payload)) == payload
    assert ours.complete
    assert other.handshake_finished
    assert ours.transport.handshake_hash == other.get_handshake_hash()
    assert ours.transport.remote_static == crypto.x25519_public_key(theirs_static)
    for n in range(3):
        assert other.decrypt(ours.transport.encrypt(b"ours %d" % n)) == b"ours %d" % n
        assert ours.transport.decrypt(other.encrypt(b"theirs %d" % n)) == b"theirs %d" % n


def test_wrong_psk_against_noiseprotocol() -> None:
    rng = SeededRng("wrong")
    ours = Handshake("XXpsk3", initiator=True, rng=rng, static_secret=rng(32), psks=(rng(32),))
    other = theirs("XXpsk3", False, rng(32), rng(32), b"")
    other.read_message(ours.write_message())
    ours.read_message(other.write_message())
    invalid_tag = pytest.importorskip("cryptography.exceptions").InvalidTag
    with pytest.raises(invalid_tag):  # theirs reports the failed decryption as such
        other.read_message(ours.write_message())
    # And the other way round: our side refuses theirs.
    ours = Handshake("XXpsk3", initiator=False, rng=rng, static_secret=rng(32), psks=(rng(32),))
    other = theirs("XXpsk3", True, rng(32), rng(32), b"")
    ours.read_message(other.write_message())
    other.read_message(ours.write_message())
    with pytest.raises(HandshakeFailed):
        ours.read_message(other.write_message())
