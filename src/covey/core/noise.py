"""The Noise protocol framework, exactly as its specification (revision 34) says.

Only what covey uses: the 25519 / ChaChaPoly / BLAKE2b suite and the
interactive patterns NN, XX and XX with psk modifiers (covey uses NN between
devices, which then prove who they are inside the channel, and XXpsk3 for
pairing). The primitives are libsodium's
(`covey.core.crypto`); this module is the state machines of sections 5
(CipherState, SymmetricState, HandshakeState) and 9 (psk modifiers), and
nothing else: the names follow the specification so it can be read beside it.

Sans-I/O: `Handshake.write_message(payload)` returns bytes to send,
`read_message(bytes)` returns the peer's payload; the caller moves bytes. The
ephemeral key comes from the `rng` argument.

Failures: a message that does not decrypt or parse is `HandshakeFailed` (an
InvalidInput: the peer's fault); calling methods out of turn is a
`NoiseStateError` (a bug in the caller).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from covey.core import Rng, crypto
from covey.errors import DecryptionFailed, HandshakeFailed

DHLEN: Final = crypto.NOISE_DH_BYTES
HASHLEN: Final = crypto.NOISE_HASH_BYTES
#: A Noise message is at most 65,535 bytes (section 3).
MAX_MESSAGE: Final = 65_535
#: The highest nonce: 2^64 - 1 is reserved (section 5.1).
MAX_NONCE: Final = (1 << 64) - 2

#: Interactive handshake patterns (section 7.5), message by message.
PATTERNS: Final[dict[str, tuple[tuple[str, ...], ...]]] = {
    "NN": (("e",), ("e", "ee")),
    "XX": (("e",), ("e", "ee", "s", "es"), ("s", "se")),
}


class NoiseStateError(Exception):
    """A Noise object was used out of turn: a bug in the caller, not the peer's fault."""


def _pattern(name: str) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """("XX", messages with psk tokens placed) for a name such as "XXpsk0+psk3"."""
    base = name[:2]
    if base not in PATTERNS:
        raise ValueError(f"unsupported handshake pattern {name!r}")
    messages = [list(tokens) for tokens in PATTERNS[base]]
    modifiers = name[2:]
    if modifiers:
        for modifier in modifiers.split("+"):
            if not modifier.startswith("psk") or not modifier[3:].isdigit():
                raise ValueError(f"unsupported modifier {modifier!r}")
            position = int(modifier[3:])
            if position == 0:
                messages[0].insert(0, "psk")
            elif position <= len(messages):
                messages[position - 1].append("psk")
            else:
                raise ValueError(f"no message {position} for {modifier!r}")
    return base, tuple(tuple(tokens) for tokens in messages)


class CipherState:
    """Section 5.1: a key and a nonce."""

    def __init__(self, key: bytes | None = None) -> None:
        self.k = key
        self.n = 0

    def has_key(self) -> bool:
        return self.k is not None

    def encrypt_with_ad(self, ad: bytes, plaintext: bytes) -> bytes:
        if self.k is None:
            return plaintext
        if self.n > MAX_NONCE:
            raise NoiseStateError("this channel has sent all the messages it may")
        ciphertext = crypto.noise_encrypt(self.k, self.n, ad, plaintext)
        self.n += 1
        return ciphertext

    def decrypt_with_ad(self, ad: bytes, ciphertext: bytes) -> bytes:
        if self.k is None:
            return ciphertext
        if self.n > MAX_NONCE:
            raise NoiseStateError("this channel has received all the messages it may")
        try:
            plaintext = crypto.noise_decrypt(self.k, self.n, ad, ciphertext)
        except DecryptionFailed as exc:
            raise HandshakeFailed("a Noise message did not decrypt") from exc
        self.n += 1  # only after success, as section 5.1 says
        return plaintext


class SymmetricState:
    """Section 5.2: the chaining key, the handshake hash and a CipherState."""

    def __init__(self, protocol_name: bytes) -> None:
        if len(protocol_name) <= HASHLEN:
            self.h = protocol_name.ljust(HASHLEN, b"\x00")
        else:
            self.h = crypto.noise_hash(protocol_name)
        self.ck = self.h
        self.cipher = CipherState()

    def mix_key(self, ikm: bytes) -> None:
        self.ck, temp_k = crypto.noise_hkdf(self.ck, ikm, 2)
        self.cipher = CipherState(temp_k[:32])

    def mix_hash(self, data: bytes) -> None:
        self.h = crypto.noise_hash(self.h + data)

    def mix_key_and_hash(self, ikm: bytes) -> None:
        self.ck, temp_h, temp_k = crypto.noise_hkdf(self.ck, ikm, 3)
        self.mix_hash(temp_h)
        self.cipher = CipherState(temp_k[:32])

    def encrypt_and_hash(self, plaintext: bytes) -> bytes:
        ciphertext = self.cipher.encrypt_with_ad(self.h, plaintext)
        self.mix_hash(ciphertext)
        return ciphertext

    def decrypt_and_hash(self, ciphertext: bytes) -> bytes:
        plaintext = self.cipher.decrypt_with_ad(self.h, ciphertext)
        self.mix_hash(ciphertext)
        return plaintext

    def split(self) -> tuple[CipherState, CipherState]:
        temp_k1, temp_k2 = crypto.noise_hkdf(self.ck, b"", 2)
        return CipherState(temp_k1[:32]), CipherState(temp_k2[:32])


@dataclass(frozen=True)
class Transport:
    """The two CipherStates a completed handshake yields, from one side's view."""

    send: CipherState
    receive: CipherState
    #: The peer's static public key (None for NN).
    remote_static: bytes | None
    #: The handshake hash: unique to this session, for channel binding.
    handshake_hash: bytes

    def encrypt(self, plaintext: bytes, ad: bytes = b"") -> bytes:
        if len(plaintext) + crypto.NOISE_TAG_BYTES > MAX_MESSAGE:
            raise NoiseStateError("a Noise message is at most 65,535 bytes")
        return self.send.encrypt_with_ad(ad, plaintext)

    def decrypt(self, ciphertext: bytes, ad: bytes = b"") -> bytes:
        if len(ciphertext) > MAX_MESSAGE:
            raise HandshakeFailed("a Noise message is at most 65,535 bytes")
        return self.receive.decrypt_with_ad(ad, ciphertext)


class Handshake:
    """Section 5.3: one side of a handshake, stepped message by message."""

    def __init__(
        self,
        pattern: str,
        *,
        initiator: bool,
        rng: Rng,
        prologue: bytes = b"",
        static_secret: bytes | None = None,
        psks: tuple[bytes, ...] | None = (),
    ) -> None:
        """`psks=None` in a psk pattern: they are given later, by `provide_psks`,
        before the message that uses them (pairing learns its psk from SPAKE2
        carried in the first two messages)."""
        _, messages = _pattern(pattern)
        self.messages = messages
        self.initiator = initiator
        self._rng = rng
        self._psk_count = sum(tokens.count("psk") for tokens in messages)
        self._psks: list[bytes] = []
        if psks is not None:
            self.provide_psks(*psks)
        self.psk_mode = self._psk_count > 0
        self.s = static_secret
        self.s_public = None if static_secret is None else crypto.x25519_public_key(static_secret)
        self.e: bytes | None = None
        self.rs: bytes | None = None
        self.re: bytes | None = None
        name = f"Noise_{pattern}_25519_ChaChaPoly_BLAKE2b".encode("ascii")
        self.symmetric = SymmetricState(name)
        self.symmetric.mix_hash(prologue)
        self._turn = 0
        self.transport: Transport | None = None

    def provide_psks(self, *psks: bytes) -> None:
        """Set the pre-shared keys (32 bytes each), once, before any is used."""
        if self._psks or len(psks) != self._psk_count or any(len(p) != 32 for p in psks):
            raise ValueError(f"this pattern needs {self._psk_count} psks of 32 bytes, once")
        self._psks = list(psks)

    @property
    def complete(self) -> bool:
        return self.transport is not None

    def my_turn(self) -> bool:
        """Whether this side writes the next handshake message."""
        return (self._turn % 2 == 0) == self.initiator

    def _dh(self, step: str) -> bytes:
        # Section 7.1: "es" is DH(e, rs) for the initiator, DH(s, re) for the
        # responder; "se" the other way round.
        mine, theirs = {
            "ee": (self.e, self.re),
            "es": (self.e, self.rs) if self.initiator else (self.s, self.re),
            "se": (self.s, self.re) if self.initiator else (self.e, self.rs),
            "ss": (self.s, self.rs),
        }[step]
        if mine is None or theirs is None:
            raise NoiseStateError(f"token {step} needs a key this side does not have")
        try:
            return crypto.noise_dh(mine, theirs)
        except DecryptionFailed as exc:
            raise HandshakeFailed("the peer sent an unusable key") from exc

    def write_message(self, payload: bytes = b"") -> bytes:
        if self.complete or self._turn >= len(self.messages) or not self.my_turn():
            raise NoiseStateError("it is not this side's turn to write")
        buffer = bytearray()
        for step in self.messages[self._turn]:
            if step == "e":
                self.e = self._rng(DHLEN)
                public = crypto.x25519_public_key(self.e)
                buffer += public
                self.symmetric.mix_hash(public)
                if self.psk_mode:
                    self.symmetric.mix_key(public)
            elif step == "s":
                if self.s_public is None:
                    raise NoiseStateError("this pattern needs a static key")
                buffer += self.symmetric.encrypt_and_hash(self.s_public)
            elif step == "psk":
                self.symmetric.mix_key_and_hash(self._next_psk())
            else:
                self.symmetric.mix_key(self._dh(step))
        buffer += self.symmetric.encrypt_and_hash(payload)
        if len(buffer) > MAX_MESSAGE:
            raise NoiseStateError("a Noise message is at most 65,535 bytes")
        self._advance()
        return bytes(buffer)

    def read_message(self, message: bytes) -> bytes:
        if self.complete or self._turn >= len(self.messages) or self.my_turn():
            raise NoiseStateError("it is not this side's turn to read")
        if len(message) > MAX_MESSAGE:
            raise HandshakeFailed("a Noise message is at most 65,535 bytes")
        view = memoryview(message)
        for step in self.messages[self._turn]:
            if step == "e":
                if len(view) < DHLEN:
                    raise HandshakeFailed("a Noise handshake message is too short")
                self.re = bytes(view[:DHLEN])
                view = view[DHLEN:]
                self.symmetric.mix_hash(self.re)
                if self.psk_mode:
                    self.symmetric.mix_key(self.re)
            elif step == "s":
                size = DHLEN + (crypto.NOISE_TAG_BYTES if self.symmetric.cipher.has_key() else 0)
                if len(view) < size:
                    raise HandshakeFailed("a Noise handshake message is too short")
                self.rs = self.symmetric.decrypt_and_hash(bytes(view[:size]))
                view = view[size:]
            elif step == "psk":
                self.symmetric.mix_key_and_hash(self._next_psk())
            else:
                self.symmetric.mix_key(self._dh(step))
        payload = self.symmetric.decrypt_and_hash(bytes(view))
        self._advance()
        return payload

    def _next_psk(self) -> bytes:
        if not self._psks:
            raise NoiseStateError("the pre-shared key is needed now and was not given")
        return self._psks.pop(0)

    def _advance(self) -> None:
        self._turn += 1
        if self._turn == len(self.messages):
            first, second = self.symmetric.split()
            send, receive = (first, second) if self.initiator else (second, first)
            self.transport = Transport(send, receive, self.rs, self.symmetric.h)
