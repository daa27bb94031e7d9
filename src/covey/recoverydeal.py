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

from shamir_mnemonic import generate_mnemonics

from covey.core import crypto, shares
from covey.entropy import system_rng


def deal(threshold: int, count: int) -> shares.Dealt:
    """Draw a 256-bit recovery secret and split it into `count` SLIP-39 shares, any
    `threshold` of which recover it.

    One group, no passphrase (a wrong passphrase would silently give another
    secret), the pinned `shares.EXTENDABLE` and `shares.ITERATION_EXPONENT`:
    the library's own `generate_mnemonics`, so any SLIP-39 tool reads the
    words. Before returning, the last `threshold` shares are combined by
    covey's own path: a dealing that would not recover is never handed out.
    """
    shares.check_counts(threshold, count)
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
    return shares.Dealt(secret, nonce, threshold, tuple(mnemonics), digests)
