"""The only module that imports PyNaCl: safe recipes over libsodium.

Everything else in covey calls these functions instead of touching a
primitive. Each recipe fixes its own domain separation: every signature,
keyed hash and derived key names what it is for (the constants in
`HashDomain` and `SignDomain`), so a value made for one purpose can never be accepted for another.

Randomness is an argument (`rng`), never drawn here, so the core stays pure.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from enum import Enum
from typing import Final

import nacl.bindings as sodium
import nacl.encoding
import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import nacl.secret
import nacl.signing

from covey.core import Rng
from covey.errors import BadSignature, DecryptionFailed, InvalidArgument

KEY_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
SALT_BYTES: Final = argon2id.SALTBYTES
SECRETBOX_OVERHEAD: Final = nacl.secret.SecretBox.NONCE_SIZE + nacl.secret.SecretBox.MACBYTES

# Argon2id limits: what covey uses for new passphrases ("moderate", about a
# second and 256 MiB here), and the bounds it accepts when reading parameters
# back from a store, so that a tampered store cannot make unlocking take
# forever or exhaust memory.
ARGON2_OPSLIMIT: Final = argon2id.OPSLIMIT_MODERATE
ARGON2_MEMLIMIT: Final = argon2id.MEMLIMIT_MODERATE
ARGON2_OPSLIMIT_RANGE: Final = (argon2id.OPSLIMIT_MIN, 6)
ARGON2_MEMLIMIT_RANGE: Final = (argon2id.MEMLIMIT_MIN, 512 << 20)


class HashDomain(bytes, Enum):
    """BLAKE2b personalisations (at most 16 bytes): one per purpose, never reused."""

    DEVICE_ID = b"covey/v1/devid"
    FINGERPRINT = b"covey/v1/fprint"
    PASSPHRASE = b"covey/v1/kek"
    OP_ID = b"covey/v1/opid"
    EPOCH_COMMIT = b"covey/v1/epochc"
    HISTORY_LINK = b"covey/v1/histl"
    SEAL_WRAP_KEY = b"covey/v1/sealkw"
    SEAL_DIGEST = b"covey/v1/sealh"
    PAIRING_PSK = b"covey/v1/pairpsk"
    PAIRING_SAS = b"covey/v1/sas"
    PAIRING_CONFIRM_JOINER = b"covey/v1/pairkcj"
    PAIRING_CONFIRM_INVITER = b"covey/v1/pairkci"
    INVITATION_TAG = b"covey/v1/invtag"
    DISCOVERY_TAG = b"covey/v1/disct"
    DISCOVERY_PAIR = b"covey/v1/discpk"
    #: Relays (PROTOCOL.md section 18): a device's inbox key from its signing
    #: seed (over the group ID and the relay key), an inbox ID from the inbox's public
    #: key, the hash of an inbox's write token, a mirror segment's read
    #: token from its write token, and its ID from its read token; from an
    #: epoch key, an inbox's write token, a segment's write token, and the
    #: key of a segment's items.
    RELAY_INBOX_KEY = b"covey/v1/inboxk"
    RELAY_INBOX_ID = b"covey/v1/inbox"
    RELAY_INBOX_WRITER = b"covey/v1/inboxwh"
    RELAY_INBOX_WRITE = b"covey/v1/inboxw"
    RELAY_SEGMENT_WRITE = b"covey/v1/mirrw"
    RELAY_MIRROR_KEY = b"covey/v1/mirrk"
    RELAY_SEGMENT_READ = b"covey/v1/mirrrd"
    RELAY_SEGMENT_ID = b"covey/v1/mirrid"
    #: Pairing through a relay: the rendezvous segment's write token, from the
    #: relay key and an invitation's number, or from a link's key.
    RELAY_RENDEZVOUS = b"covey/v1/pairrv"
    #: A sealed file put on a relay (`covey put`): its pieces' key, from the
    #: key of the epoch it was sealed under and the put's random nonce.
    RELAY_BLOB_KEY = b"covey/v1/blobk"
    #: Recovery (PROTOCOL.md section 19, `covey.core.shares`): a recovery
    #: share's digest, keyed by its dealing's nonce (so a wrong share is named,
    #: not only detected); from the recovery secret, over the dealing's nonce,
    #: the recovery signing seed and the recovery box key. (The draft's
    #: `covey/v1/recshare` is 17 bytes, one more than a personalisation holds.)
    RECOVERY_SHARE = b"covey/v1/recshr"
    RECOVERY_SIGN = b"covey/v1/recsign"
    RECOVERY_BOX = b"covey/v1/recbox"
    RECOVERY_CHANNEL = b"covey/v1/recchan"
    #: A request to be admitted or to recover a person: the ID holders approve.
    RECOVERY_REQUEST = b"covey/v1/recreq"


class SignDomain(bytes, Enum):
    """Signature domains, signed as `domain || 0x00 || message`: one per purpose."""

    ENVELOPE = b"covey/v1/envelope"
    CHANNEL_INITIATOR = b"covey/v1/chan-initiator"
    CHANNEL_RESPONDER = b"covey/v1/chan-responder"
    PAIRING_JOINER = b"covey/v1/pair-joiner"
    PAIRING_INVITER = b"covey/v1/pair-inviter"
    #: A relay's proof over a connection's handshake hash.
    RELAY_PROOF = b"covey/v1/relay-proof"
    #: An inbox owner's signature over a connection's challenge and the inbox ID.
    RELAY_INBOX_AUTH = b"covey/v1/inbox-auth"
    #: A requesting device's proof over the session a holder approves it in.
    RECOVERY_ASK = b"covey/v1/rec-ask"


def blake2b(data: bytes, domain: HashDomain, *, size: int = 32, key: bytes = b"") -> bytes:
    """BLAKE2b of `data`, personalised with `domain` (and keyed if `key`).

    CPython's hashlib BLAKE2b (RFC 7693, the reference implementation) gives
    the same digests as libsodium's generichash (a test checks it) and costs
    less per call; op IDs hash every op.
    """
    return hashlib.blake2b(data, digest_size=size, key=key, person=_PERSON[domain]).digest()


def blake2b_after(
    prefix: bytes, domain: HashDomain, *, size: int = 32, key: bytes = b""
) -> Callable[[bytes], bytes]:
    """`data -> blake2b(prefix + data, domain, size=size, key=key)`, with the key
    and `prefix` absorbed once, for many hashes that share them (half the work
    of each when the data is short)."""
    start = hashlib.blake2b(prefix, digest_size=size, key=key, person=_PERSON[domain])

    def finish(data: bytes) -> bytes:
        state = start.copy()
        state.update(data)
        return state.digest()

    return finish


def equal(a: bytes, b: bytes) -> bool:
    """Constant-time comparison of two byte strings (time depends only on length)."""
    return hmac.compare_digest(a, b)


# --- Ed25519 ---------------------------------------------------------------


def signing_public_key(seed: bytes) -> bytes:
    """The Ed25519 public key for a 32-byte seed."""
    public, _ = sodium.crypto_sign_seed_keypair(seed)
    return public


#: Each signature domain's prefix, `domain || 0x00`, computed once.
_SIGN_PREFIX: Final = {domain: domain.value + b"\x00" for domain in SignDomain}
_PERSON: Final = {domain: domain.value for domain in HashDomain}


def _signed_bytes(domain: SignDomain, message: bytes) -> bytes:
    return _SIGN_PREFIX[domain] + message


def sign(seed: bytes, domain: SignDomain, message: bytes) -> bytes:
    """A detached Ed25519 signature over `domain || 0x00 || message`."""
    return nacl.signing.SigningKey(seed).sign(_signed_bytes(domain, message)).signature


def verify(public_key: bytes, domain: SignDomain, message: bytes, signature: bytes) -> None:
    """Check a signature made by `sign`; raise BadSignature if it does not verify.

    libsodium rejects non-canonical signatures and small-order public keys, so
    a valid signature cannot be mutated into another valid one.
    """
    if len(public_key) != KEY_BYTES or len(signature) != SIGNATURE_BYTES:
        raise BadSignature()
    try:
        sodium.crypto_sign_open(signature + _SIGN_PREFIX[domain] + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError) as exc:
        raise BadSignature() from exc


# --- X25519 ----------------------------------------------------------------


def new_x25519_secret(rng: Rng) -> bytes:
    """A fresh X25519 secret key (libsodium clamps it when used)."""
    return rng(KEY_BYTES)


def x25519_public_key(secret: bytes) -> bytes:
    """The X25519 public key for a secret key."""
    return sodium.crypto_scalarmult_base(secret)


def box_wrap(sender_secret: bytes, recipient_public: bytes, secret: bytes, rng: Rng) -> bytes:
    """crypto_box `secret` from sender to recipient: nonce || ciphertext.

    The recipient learns who wrapped it: only the holder of `sender_secret`
    (or the recipient) can make a box that opens with the sender's public key.
    """
    nonce = rng(sodium.crypto_box_NONCEBYTES)
    return nonce + sodium.crypto_box_easy(secret, nonce, recipient_public, sender_secret)


def box_unwrap(recipient_secret: bytes, sender_public: bytes, wrapped: bytes) -> bytes:
    """Open a `box_wrap` result; raise DecryptionFailed if it is not for us from them."""
    nonce_len = sodium.crypto_box_NONCEBYTES
    try:
        return sodium.crypto_box_open_easy(
            wrapped[nonce_len:], wrapped[:nonce_len], sender_public, recipient_secret
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionFailed() from exc


#: Bytes `seal_anonymous` adds: the fresh public key, the nonce and the tag.
#: (crypto_box_SEALBYTES is the key and the tag.)
ANONYMOUS_OVERHEAD: Final = sodium.crypto_box_SEALBYTES + sodium.crypto_box_NONCEBYTES


def seal_anonymous(recipient_public: bytes, plaintext: bytes, rng: Rng) -> bytes:
    """crypto_box `plaintext` to `recipient_public` from a fresh key pair:
    fresh public key || nonce || box.

    libsodium's sealed box (crypto_box_seal) does the same but draws its key
    pair inside libsodium; here the fresh secret key and the nonce come from
    `rng`, so the core stays deterministic. Only the recipient opens it; the
    box tells nobody who made it.
    """
    ephemeral = new_x25519_secret(rng)
    return x25519_public_key(ephemeral) + box_wrap(ephemeral, recipient_public, plaintext, rng)


def open_anonymous(recipient_secret: bytes, sealed: bytes) -> bytes:
    """Open a `seal_anonymous` result; raise DecryptionFailed if it is not for us."""
    if len(sealed) < ANONYMOUS_OVERHEAD:
        raise DecryptionFailed()
    return box_unwrap(recipient_secret, sealed[:KEY_BYTES], sealed[KEY_BYTES:])


def derive_key(key: bytes, domain: HashDomain, context: bytes = b"") -> bytes:
    """A 32-byte subkey of `key` for one purpose: keyed BLAKE2b over `context`."""
    return blake2b(context, domain, key=key)


#: Bytes `aead_seal` adds: the nonce and the tag.
AEAD_OVERHEAD: Final = (
    sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
    + sodium.crypto_aead_xchacha20poly1305_ietf_ABYTES
)


def aead_seal(key: bytes, plaintext: bytes, associated: bytes, rng: Rng) -> bytes:
    """XChaCha20-Poly1305 (IETF): nonce || ciphertext, bound to `associated`."""
    nonce = rng(sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES)
    return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
        plaintext, associated, nonce, key
    )


def aead_open(key: bytes, sealed: bytes, associated: bytes) -> bytes:
    """Open an `aead_seal` result; raise DecryptionFailed on any mismatch."""
    nonce_len = sodium.crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            sealed[nonce_len:], associated, sealed[:nonce_len], key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionFailed() from exc


# --- Noise primitives (25519, ChaChaPoly, BLAKE2b), as the Noise spec names them --

NOISE_DH_BYTES: Final = 32
NOISE_HASH_BYTES: Final = 64
NOISE_TAG_BYTES: Final = 16


def noise_dh(secret: bytes, public: bytes) -> bytes:
    """DH(): X25519. libsodium refuses a low-order public key (all-zero output)."""
    try:
        return sodium.crypto_scalarmult(secret, public)
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError) as exc:
        raise DecryptionFailed("the peer's key is not usable") from exc


#: Any clamped scalar: X25519 of it with a low-order point is all zero,
#: which libsodium refuses (it is not a secret).
_CHECK_SCALAR: Final = bytes([8]) + bytes(30) + bytes([64])


def x25519_usable(public: bytes) -> bool:
    """Whether `public` is an X25519 key that DH can use (not of low order)."""
    try:
        sodium.crypto_scalarmult(_CHECK_SCALAR, public)
    except (nacl.exceptions.CryptoError, nacl.exceptions.RuntimeError, ValueError):
        return False
    return True


def noise_hash(data: bytes) -> bytes:
    """HASH(): BLAKE2b-512, no key, no personalisation (as the Noise spec says)."""
    return hashlib.blake2b(data, digest_size=NOISE_HASH_BYTES).digest()


def noise_hmac(key: bytes, data: bytes) -> bytes:
    """HMAC-HASH(): RFC 2104 HMAC over BLAKE2b-512 (block size 128), not keyed BLAKE2b."""
    return hmac.new(key, data, hashlib.blake2b).digest()


def noise_hkdf(chaining_key: bytes, ikm: bytes, outputs: int) -> list[bytes]:
    """HKDF() of the Noise spec, section 4.3: two or three 64-byte outputs."""
    temp = noise_hmac(chaining_key, ikm)
    out = [noise_hmac(temp, b"\x01")]
    for i in range(2, outputs + 1):
        out.append(noise_hmac(temp, out[-1] + bytes([i])))
    return out


def _noise_nonce(n: int) -> bytes:
    return bytes(4) + n.to_bytes(8, "little")


def noise_encrypt(key: bytes, n: int, associated: bytes, plaintext: bytes) -> bytes:
    """ENCRYPT(): ChaCha20-Poly1305 (IETF), nonce = 32 zero bits || n (64-bit LE)."""
    return sodium.crypto_aead_chacha20poly1305_ietf_encrypt(
        plaintext, associated, _noise_nonce(n), key
    )


def noise_decrypt(key: bytes, n: int, associated: bytes, ciphertext: bytes) -> bytes:
    """DECRYPT(): raise DecryptionFailed if the tag does not verify."""
    try:
        return sodium.crypto_aead_chacha20poly1305_ietf_decrypt(
            ciphertext, associated, _noise_nonce(n), key
        )
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionFailed() from exc


# --- streams ----------------------------------------------------------------

STREAM_HEADER_BYTES: Final = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
STREAM_OVERHEAD: Final = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
_TAG_MESSAGE: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
_TAG_FINAL: Final = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


class StreamEncryptor:
    """libsodium secretstream (XChaCha20-Poly1305), encrypting side.

    Each chunk is authenticated and numbered; the last carries the FINAL tag,
    so truncation, reordering, repetition and splicing are all detected.
    """

    def __init__(self, key: bytes) -> None:
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        self.header: bytes = sodium.crypto_secretstream_xchacha20poly1305_init_push(
            self._state, key
        )

    def push(self, chunk: bytes, final: bool) -> bytes:
        tag = _TAG_FINAL if final else _TAG_MESSAGE
        return sodium.crypto_secretstream_xchacha20poly1305_push(self._state, chunk, None, tag)


class StreamDecryptor:
    """libsodium secretstream, decrypting side: raises DecryptionFailed on any change."""

    def __init__(self, key: bytes, header: bytes) -> None:
        self._state = sodium.crypto_secretstream_xchacha20poly1305_state()
        try:
            sodium.crypto_secretstream_xchacha20poly1305_init_pull(self._state, header, key)
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionFailed() from exc

    def pull(self, ciphertext: bytes) -> tuple[bytes, bool]:
        """(plaintext, whether this was the final chunk)."""
        try:
            plain, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(
                self._state, ciphertext, None
            )
        except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
            raise DecryptionFailed() from exc
        return plain, tag == _TAG_FINAL


def stream_digest() -> hashlib.blake2b:
    """An incremental BLAKE2b-256 for sealed streams (domain `covey/v1/sealh`).

    This is CPython's BLAKE2b (the reference implementation): on these
    machines it hashes about twice as fast as libsodium's build, and a
    sealed stream hashes every byte it carries.
    """
    return hashlib.blake2b(digest_size=32, person=HashDomain.SEAL_DIGEST.value)


# --- secret-key encryption -------------------------------------------------


def secretbox_seal(key: bytes, plaintext: bytes, rng: Rng) -> bytes:
    """XSalsa20-Poly1305 (libsodium secretbox): nonce || ciphertext."""
    nonce = rng(nacl.secret.SecretBox.NONCE_SIZE)
    return bytes(nacl.secret.SecretBox(key).encrypt(plaintext, nonce))


def secretbox_open(key: bytes, sealed: bytes) -> bytes:
    """Open a `secretbox_seal` result; raise DecryptionFailed if it was altered."""
    try:
        return nacl.secret.SecretBox(key).decrypt(sealed)
    except (nacl.exceptions.CryptoError, ValueError, TypeError) as exc:
        raise DecryptionFailed() from exc


# --- passphrases -----------------------------------------------------------


def passphrase_key(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    """A 32-byte key-encryption key from a passphrase (Argon2id).

    The derived key is then run through keyed BLAKE2b under its own domain,
    so it is bound to its purpose even if the same passphrase and salt were
    ever fed to Argon2id elsewhere.
    """
    try:
        secret = passphrase.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument("the passphrase is not valid text") from exc
    raw = argon2id.kdf(KEY_BYTES, secret, salt, opslimit=opslimit, memlimit=memlimit)
    return blake2b(b"", HashDomain.PASSPHRASE, key=raw)
