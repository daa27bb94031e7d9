"""Dealing recovery shares (issue 11, PROTOCOL.md section 19): the one step that draws randomness.

Why this is at the edge and not in `covey.core.shares`: SLIP-39 splitting
draws randomness inside shamir-mnemonic (the share identifier and the
random shares come from its module-level `RANDOM_BYTES`, which is
`secrets.token_bytes`), and the core takes no OS randomness. The
alternative, replacing that global with the core's `rng`, would change a
library's behaviour for the whole process behind its back; covey never
does it. So the edge draws the secret and the nonce from the OS
(`covey.entropy.system_rng`), lets the library split, and hands the words
to the pure core, which reads, digests and combines them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shamir_mnemonic import generate_mnemonics

from covey.core import crypto, shares
from covey.entropy import system_rng
from covey.errors import InvalidArgument


@dataclass(frozen=True)
class Dealt:
    """A fresh dealing: its secret, its nonce, its threshold, and one mnemonic per share.

    `digests` (member index -> digest) is what the deal op lists for each
    share. The secret and the words are kept out of the repr.
    """

    secret: bytes = field(repr=False)
    nonce: bytes
    threshold: int
    mnemonics: tuple[str, ...] = field(repr=False)
    digests: dict[int, bytes]


def check_counts(threshold: int, count: int) -> None:
    """Refuse a threshold or a share count covey does not deal, naming the limit."""
    if count > shares.MAX_SHARES:
        raise InvalidArgument(f"at most {shares.MAX_SHARES} recovery shares (SLIP-39's limit)")
    if threshold < shares.MIN_THRESHOLD:
        raise InvalidArgument(
            f"a recovery threshold is at least {shares.MIN_THRESHOLD}: one share alone "
            "would open it"
        )
    if threshold > count:
        raise InvalidArgument(
            f"a threshold of {threshold} needs at least {threshold} shares, not {count}"
        )


def deal(threshold: int, count: int) -> Dealt:
    """Draw a 256-bit recovery secret and split it into `count` SLIP-39 shares, any
    `threshold` of which recover it.

    One group, no passphrase (a wrong passphrase would silently give another
    secret), the pinned `shares.EXTENDABLE` and `shares.ITERATION_EXPONENT`:
    the library's own `generate_mnemonics`, so any SLIP-39 tool reads the
    words. Before returning, the last `threshold` shares are combined by
    covey's own path: a dealing that would not recover is never handed out.
    """
    check_counts(threshold, count)
    secret = system_rng(shares.SECRET_BYTES)
    nonce = system_rng(shares.NONCE_BYTES)
    (mnemonics,) = generate_mnemonics(
        group_threshold=1,
        groups=[(threshold, count)],
        master_secret=secret,
        passphrase=b"",
        extendable=shares.EXTENDABLE,
        iteration_exponent=shares.ITERATION_EXPONENT,
    )
    parsed = [shares.parse_words(words, label=f"share {i}") for i, words in enumerate(mnemonics, 1)]
    digests = {share.member_index: shares.share_digest(nonce, share) for share in parsed}
    recovered = shares.combine(
        parsed[-threshold:], nonce=nonce, digests=digests, threshold=threshold
    )
    assert crypto.equal(recovered, secret), "SLIP-39 did not give back the secret it split"
    return Dealt(secret, nonce, threshold, tuple(mnemonics), digests)
