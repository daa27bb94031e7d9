"""Recovery shares (issue 11, PROTOCOL.md section 19): reading, naming and combining them.

A recovery secret (32 random bytes) is split with SLIP-39 through the
reference implementation, the `shamir-mnemonic` package: one group, a
member threshold K of N shares, no passphrase. A paper share is a standard
SLIP-39 word list, so any SLIP-39 tool can recombine the shares without
covey. Nothing here is home-made cryptography: the words, the RS1024
checksum, the Shamir interpolation over GF(256) and SLIP-39's own digest
are the library's; covey adds only what SLIP-39 cannot say, which share is
wrong. A dealing lists each share's *digest* (keyed BLAKE2b, see
`share_digest`), so a share that does not belong is named ("share 3 is not
the one dealt"), not merely detected when the combined secret fails
SLIP-39's 4-byte check.

Everything here is deterministic: dealing draws OS randomness (the library
draws the identifier and the random shares from `secrets`) and so lives at
the edge, in `covey.recoverydeal`. This module uses only the library's
decoding and recovery (`Share.from_mnemonic`, `Share.words`, `recover_ems`,
`EncryptedMasterSecret.decrypt`, the word list and RS1024), none of which
draws randomness.

Shares are secret. No error message or repr here carries a word, a value or
a secret: a share is named by the caller's *label* ("share 2", "line 3 of
words.txt") and a word by its position. The library's own messages quote a
share's first words, so none of them is passed on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from shamir_mnemonic import rs1024, wordlist
from shamir_mnemonic.constants import (
    CUSTOMIZATION_STRING_EXTENDABLE,
    CUSTOMIZATION_STRING_ORIG,
    METADATA_LENGTH_WORDS,
    MIN_MNEMONIC_LENGTH_WORDS,
    RADIX_BITS,
)
from shamir_mnemonic.shamir import ShareGroup, recover_ems
from shamir_mnemonic.share import Share as Slip39Share
from shamir_mnemonic.utils import MnemonicError

from covey.core import crypto
from covey.errors import (
    BadDealing,
    DuplicateShare,
    InvalidArgument,
    NotACoveyShare,
    NotEnoughShares,
    ShareChecksumFailed,
    ShareFromAnotherDealing,
    ShareNotDealt,
    ShareUndecodable,
    ShareWordUnknown,
    ShareWrongLength,
)

#: The recovery secret: 256 bits, SLIP-39's largest common strength, so a
#: share carries as much entropy as the epoch keys it stands for.
SECRET_BYTES: Final = 32
#: SLIP-39 encodes a member index in 4 bits: at most 16 shares in a group.
MAX_SHARES: Final = 16
#: A threshold of 1 would make every share the secret itself (SLIP-39 copies
#: it into each share); PROTOCOL.md 19 (H3) asks for K >= 2.
MIN_THRESHOLD: Final = 2
#: SLIP-39's "extendable backup" flag, pinned. shamir-mnemonic 0.3.0's
#: `generate_mnemonics` defaults to True (the SLIP-39 revision of 2024
#: recommends it for new backups; Trezor's firmware makes them so): the
#: encryption no longer depends on the identifier, so more share sets of the
#: same secret could be made later. covey deals a fresh secret each time and
#: never extends, but following the reference default means a covey paper
#: share is what any current SLIP-39 tool makes and expects.
EXTENDABLE: Final = True
#: SLIP-39's PBKDF2 iteration exponent (10,000 x 2**e iterations in all),
#: pinned at shamir-mnemonic 0.3.0's default of 1. The stretch protects a
#: weak passphrase; covey uses none and the secret is 256 random bits, so
#: more iterations would only slow every recovery. A share states its own
#: exponent, so any SLIP-39 tool recombines it either way.
ITERATION_EXPONENT: Final = 1
#: A dealing's nonce, drawn when it is dealt: the key of its share digests.
NONCE_BYTES: Final = 16
DIGEST_BYTES: Final = 32
#: Words in a covey share: SLIP-39's 7 words of metadata and checksum, and
#: 26 words (260 bits) for the 256-bit value.
SHARE_WORDS: Final = 33
#: The longest text read as one share: 33 words of at most 8 letters with
#: room for any spacing and line breaks. Longer text is refused before it
#: is split, so a pasted file costs nothing.
MAX_TEXT: Final = 1024


@dataclass(frozen=True)
class Share:
    """One decoded SLIP-39 share, with the label that names it to people.

    The value is secret, so it is left out of the repr (a traceback or a log
    line never shows it); the label is not part of a share's identity.
    """

    identifier: int
    extendable: bool
    iteration_exponent: int
    group_index: int
    group_threshold: int
    group_count: int
    member_index: int
    member_threshold: int
    value: bytes = field(repr=False)
    label: str = field(default="a share", compare=False)

    @classmethod
    def from_slip39(cls, share: Slip39Share, *, label: str) -> Share:
        return cls(
            identifier=share.identifier,
            extendable=share.extendable,
            iteration_exponent=share.iteration_exponent,
            group_index=share.group_index,
            group_threshold=share.group_threshold,
            group_count=share.group_count,
            member_index=share.index,
            member_threshold=share.member_threshold,
            value=bytes(share.value),
            label=label,
        )

    def to_slip39(self) -> Slip39Share:
        """The library's share, for its encoder and its recovery."""
        return Slip39Share(
            self.identifier,
            self.extendable,
            self.iteration_exponent,
            self.group_index,
            self.group_threshold,
            self.group_count,
            self.member_index,
            self.member_threshold,
            self.value,
        )

    def words(self) -> list[str]:
        """The share's SLIP-39 words, in order (what goes on paper)."""
        return [str(word) for word in self.to_slip39().words()]

    def mnemonic(self) -> str:
        """The canonical text of the share: its words, lowercase, one space apart."""
        return " ".join(self.words())


# --- reading words ------------------------------------------------------------


def _words_of(text: str, label: str) -> list[str]:
    """The words of `text`: split at any whitespace, lower-cased, each a SLIP-39 word."""
    if len(text) > MAX_TEXT:
        raise ShareWrongLength(f"{label} is far longer than a recovery share")
    words = text.lower().split()
    for position, word in enumerate(words, start=1):
        if word not in wordlist.WORD_INDEX_MAP:
            raise ShareWordUnknown(f"word {position} of {label} is not a SLIP-39 word")
    return words


def _slip39_length(count: int) -> bool:
    """Whether a SLIP-39 share can have `count` words (SLIP-39's rule, as the library
    applies it): at least 20, and the value's words hold whole bytes with at
    most 8 bits of padding."""
    value_bits = int(RADIX_BITS) * (count - int(METADATA_LENGTH_WORDS))
    return count >= int(MIN_MNEMONIC_LENGTH_WORDS) and value_bits % 16 <= 8


def _decode(words: list[str], label: str) -> Share:
    """The library's decoding of known words, its refusals mapped to covey's errors."""
    if not _slip39_length(len(words)):
        raise ShareWrongLength(f"{label} has {len(words)} words, which no SLIP-39 share has")
    try:
        return Share.from_slip39(Slip39Share.from_mnemonic(" ".join(words)), label=label)
    except MnemonicError:
        pass  # (its message quotes the share's first words: not passed on)
    indices = [wordlist.WORD_INDEX_MAP[word] for word in words]
    if not any(
        rs1024.verify_checksum(indices, custom)
        for custom in (CUSTOMIZATION_STRING_ORIG, CUSTOMIZATION_STRING_EXTENDABLE)
    ):
        raise ShareChecksumFailed(f"{label} has a mistyped word: its checksum fails")
    raise ShareUndecodable(f"{label} has no mistyped word but does not decode as a SLIP-39 share")


def decode_words(text: str, *, label: str) -> Share:
    """Any SLIP-39 share (any strength, groups, flags), or a typed `BadShare` naming `label`.

    Whitespace and case do not matter. An unknown word is named by its
    position; a share whose checksum fails "has a mistyped word". (The
    checksum is tried under both of SLIP-39's customisation strings to tell
    a mistyped word from a share that fails for another reason, without
    reading the library's messages.)
    """
    return _decode(_words_of(text, label), label)


def check_shape(share: Share) -> Share:
    """`share` if it is shaped as covey deals, else `NotACoveyShare` saying how it differs.

    covey deals one group (group threshold and count 1), a 256-bit secret,
    the pinned `EXTENDABLE` and `ITERATION_EXPONENT`, and a member threshold
    of at least `MIN_THRESHOLD`: anything else is some other SLIP-39 backup
    (a wallet's, say), and saying so beats a later "not the one dealt".
    """
    if share.group_count != 1 or share.group_threshold != 1:
        reason = f"from a backup in {share.group_count} groups (covey deals one)"
    elif len(share.value) != SECRET_BYTES:
        bits = 8 * len(share.value)
        reason = f"of a {bits}-bit backup (covey deals {8 * SECRET_BYTES}-bit ones)"
    elif share.extendable != EXTENDABLE or share.iteration_exponent != ITERATION_EXPONENT:
        reason = "made with other SLIP-39 settings than covey's"
    elif share.member_threshold < MIN_THRESHOLD:
        reason = f"of a backup one share opens alone (covey deals {MIN_THRESHOLD} or more)"
    else:
        return share
    raise NotACoveyShare(f"{share.label} is a SLIP-39 share {reason}, not a covey recovery share")


def parse_words(text: str, *, label: str) -> Share:
    """A covey recovery share from the words a person typed or pasted.

    Errors are typed `BadShare`s, one line, naming the share by `label` and
    a word by its position, never quoting a word. Words that do not decode
    and are not 33 are said to be the wrong number (a word left out or
    doubled, most likely); a share of another length that decodes is some
    other SLIP-39 backup and is said to be one.
    """
    words = _words_of(text, label)
    try:
        share = _decode(words, label)
    except (ShareWrongLength, ShareChecksumFailed, ShareUndecodable):
        if len(words) != SHARE_WORDS:
            raise ShareWrongLength(
                f"{label} has {len(words)} words: a covey recovery share has {SHARE_WORDS}"
            ) from None
        raise
    return check_shape(share)


# --- digests and combining ----------------------------------------------------


def _check_nonce(nonce: bytes) -> None:
    if len(nonce) != NONCE_BYTES:
        raise InvalidArgument(f"a dealing's nonce is {NONCE_BYTES} bytes")


def share_digest(nonce: bytes, share: Share) -> bytes:
    """The digest a dealing lists for `share`: BLAKE2b-256 keyed by the dealing's nonce.

    It covers the whole decoded share in one canonical form, its mnemonic
    (`Share.mnemonic()`, ASCII): every field (identifier, flags, exponent,
    group and member parameters, member index, value) is in those words,
    and SLIP-39 decodes exactly one way (padding bits must be zero), so
    two shares have the same mnemonic only if they are the same share. Any
    SLIP-39 tool can recompute it from the paper. A share holds at least
    128 bits of entropy, so the listed digest reveals nothing of it; the
    nonce keys the digests of each dealing apart.
    """
    _check_nonce(nonce)
    return crypto.blake2b(
        share.mnemonic().encode("ascii"), crypto.HashDomain.RECOVERY_SHARE, key=nonce
    )


def _check_same_dealing(shares: Sequence[Share]) -> None:
    for share in shares:
        check_shape(share)
    for share in shares[1:]:
        if share.identifier != shares[0].identifier:
            raise ShareFromAnotherDealing(
                f"{share.label} is from another dealing than {shares[0].label}"
            )


def _check_dealt(shares: Sequence[Share], nonce: bytes, digests: Mapping[int, bytes]) -> None:
    """Each share is exactly the one dealt for its member index; no share twice."""
    seen: dict[int, Share] = {}
    for share in shares:
        first = seen.setdefault(share.member_index, share)
        if first is not share and first == share:
            raise DuplicateShare(f"{share.label} is the same share as {first.label}")
    for share in shares:
        listed = digests.get(share.member_index)
        if listed is None or not crypto.equal(share_digest(nonce, share), listed):
            raise ShareNotDealt(
                f"{share.label} is not the one dealt (altered or from another dealing)"
            )


def combine(
    shares: Sequence[Share], *, nonce: bytes, digests: Mapping[int, bytes], threshold: int
) -> bytes:
    """The dealing's 32-byte recovery secret from `threshold` or more of its shares.

    Checks, in this order, each failure a typed one-line error naming the
    share: every share has covey's shape; all are of one dealing (one
    identifier); none is given twice; each is exactly the share the dealing
    lists for its member index (`digests`: member index -> digest, compared
    in constant time); there are at least `threshold` of them. Then the
    library recovers and decrypts (empty passphrase). Two shares with one
    member index but different words are not duplicates: the one that is
    not the listed share is named as not dealt.
    """
    _check_nonce(nonce)
    if not MIN_THRESHOLD <= threshold <= MAX_SHARES:
        raise InvalidArgument(f"a dealing's threshold is {MIN_THRESHOLD} to {MAX_SHARES}")
    _check_same_dealing(shares)
    _check_dealt(shares, nonce, digests)
    distinct = list({share.member_index: share for share in shares}.values())
    if len(distinct) < threshold:
        raise NotEnoughShares(
            f"{len(distinct)} of {threshold} shares: need {threshold - len(distinct)} more"
        )
    if distinct[0].member_threshold != threshold:
        raise BadDealing("the shares were dealt with another threshold than the dealing states")
    group = ShareGroup()
    for share in distinct[:threshold]:  # (the library takes exactly the threshold)
        group.add(share.to_slip39())
    try:
        secret = bytes(recover_ems({distinct[0].group_index: group}).decrypt(b""))
    except MnemonicError:
        raise BadDealing() from None
    assert len(secret) == SECRET_BYTES
    return secret


# --- what the secret keys -----------------------------------------------------


def _derive(secret: bytes, domain: crypto.HashDomain, nonce: bytes) -> bytes:
    if len(secret) != SECRET_BYTES:
        raise InvalidArgument(f"a recovery secret is {SECRET_BYTES} bytes long")
    _check_nonce(nonce)
    return crypto.derive_key(secret, domain, nonce)


def signing_seed(secret: bytes, nonce: bytes) -> bytes:
    """The recovery key's 32-byte Ed25519 seed (`crypto.sign` takes it as it is).

    BLAKE2b keyed by the secret over the dealing's nonce, domain
    `covey/v1/recsign`: only K shares together give it, and the deal op
    lists its public key (`crypto.signing_public_key`).
    """
    return _derive(secret, crypto.HashDomain.RECOVERY_SIGN, nonce)


def box_secret(secret: bytes, nonce: bytes) -> bytes:
    """The recovery box key's 32-byte X25519 secret key (libsodium clamps it when used).

    BLAKE2b keyed by the secret over the dealing's nonce, domain
    `covey/v1/recbox`: members seal bundle entries to its public key
    (`crypto.x25519_public_key`), which only K shares together can open.
    """
    return _derive(secret, crypto.HashDomain.RECOVERY_BOX, nonce)


def channel_secret(secret: bytes, nonce: bytes) -> bytes:
    """The recovery record's channel secret (X25519), domain `covey/v1/recchan`.

    A device record has a channel key; the recovery record never opens a
    channel, but its key is derived apart from the box key all the same
    (one key, one purpose).
    """
    return _derive(secret, crypto.HashDomain.RECOVERY_CHANNEL, nonce)


@dataclass(frozen=True)
class Dealt:
    """A fresh dealing: its secret, its nonce, its threshold, and one mnemonic per share.

    Made at the edge (`covey.recoverydeal.deal`), handed to the pure node,
    which builds the deal op from it and drops it. `digests` (member index
    -> digest) is what the deal op lists for each share. The secret and the
    words are kept out of the repr.
    """

    secret: bytes = field(repr=False)
    nonce: bytes
    threshold: int
    mnemonics: tuple[str, ...] = field(repr=False)
    digests: dict[int, bytes]


def check_counts(threshold: int, count: int) -> None:
    """Refuse a threshold or a share count covey does not deal, naming the limit."""
    if count > MAX_SHARES:
        raise InvalidArgument(f"at most {MAX_SHARES} recovery shares (SLIP-39's limit)")
    if threshold < MIN_THRESHOLD:
        raise InvalidArgument(
            f"a recovery threshold is at least {MIN_THRESHOLD}: one share alone would open it"
        )
    if threshold > count:
        raise InvalidArgument(
            f"a threshold of {threshold} needs at least {threshold} shares, not {count}"
        )
