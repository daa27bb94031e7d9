"""Recovery shares (`covey.core.shares`, `covey.recoverydeal`): SLIP-39 through shamir-mnemonic.

Three kinds of check. Interoperability: covey's dealings recombine with the
library's own `combine_mnemonics`, and the library's own dealings with
covey's pinned parameters combine in covey. The published SLIP-39 vectors:
covey decodes each of their mnemonics exactly as the reference does, and
refuses each as a covey share with a typed error (they are made with the
passphrase "TREZOR", in shapes covey does not deal, so covey's `combine`
cannot be run on them; the library's combine with "TREZOR" shows the file
is read right). Adversarial properties: any K of N combine and K-1 do not;
a share from another dealing, altered (even with a valid checksum),
repeated, or of another shape is refused and named; and no error message
carries a word of any share.

Dealings draw OS randomness inside the library (that is why they are at
the edge), so these properties hold for every dealing, not a seeded one.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import inspect
import json
import re
from pathlib import Path

import pytest
import shamir_mnemonic
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from shamir_mnemonic import wordlist
from shamir_mnemonic.shamir import EncryptedMasterSecret, split_ems
from shamir_mnemonic.share import Share as Slip39Share

from covey import errors, recoverydeal
from covey.core import crypto, shares
from covey.core.shares import Share
from covey.errors import (
    BadDealing,
    BadShare,
    CoveyError,
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

VECTORS = json.loads((Path(__file__).parent.parent / "vectors" / "slip39-vectors.json").read_text())
WORDS = frozenset(wordlist.WORDLIST)
NONCE = bytes(range(16))
LONG_HEX = re.compile(r"[0-9a-fA-F]{16,}")

nonces = st.binary(min_size=shares.NONCE_BYTES, max_size=shares.NONCE_BYTES)
secrets_ = st.binary(min_size=shares.SECRET_BYTES, max_size=shares.SECRET_BYTES)


@st.composite
def k_of_n(draw: st.DrawFn, max_n: int = 7) -> tuple[int, int]:
    n = draw(st.integers(shares.MIN_THRESHOLD, max_n))
    return draw(st.integers(shares.MIN_THRESHOLD, n)), n


@functools.cache
def pooled(k: int, n: int, which: int) -> shares.Dealt:
    """One of a few dealings per shape, made once a run, for tests of reading
    words (where a fresh dealing per example would only cost time)."""
    return recoverydeal.deal(k, n)


#: A share's words from a few dealings of a few shapes.
pooled_words = st.builds(
    lambda kn, which, i: pooled(*kn, which).mnemonics[i % kn[1]].split(),
    st.sampled_from([(2, 3), (3, 5), (2, 16)]),
    st.integers(0, 3),
    st.integers(0, 15),
)


def parsed(mnemonics: list[str] | tuple[str, ...]) -> list[Share]:
    return [shares.parse_words(m, label=f"share {i}") for i, m in enumerate(mnemonics, 1)]


def digests_of(nonce: bytes, dealt: list[Share]) -> dict[int, bytes]:
    return {share.member_index: shares.share_digest(nonce, share) for share in dealt}


def library_dealing(secret: bytes, k: int, n: int, identifier: int) -> list[Share]:
    """A dealing made by the library's own split, with a chosen identifier."""
    ems = EncryptedMasterSecret.from_master_secret(
        secret, b"", identifier, shares.EXTENDABLE, shares.ITERATION_EXPONENT
    )
    (group,) = split_ems(1, [(k, n)], ems)
    return parsed([share.mnemonic() for share in group])


def slip39_words_in(message: str) -> set[str]:
    """The SLIP-39 words a message holds as whole words."""
    return {token for token in re.findall(r"[a-z]+", message.lower()) if token in WORDS}


def assert_clean(error: CoveyError, words: list[str] | tuple[str, ...] = ()) -> None:
    """One line, no word of the share, indeed no SLIP-39 word at all (covey's
    messages are worded without any, so whatever a share holds cannot show),
    no long run of hex."""
    message = str(error)
    assert "\n" not in message
    assert not set(words) & set(re.findall(r"[a-z]+", message.lower())), message
    assert slip39_words_in(message) == set(), message
    assert not LONG_HEX.search(message), message


# --- interoperability -----------------------------------------------------------


@given(k_of_n(), st.data())
def test_a_covey_dealing_recombines_with_the_librarys_own_combine(
    kn: tuple[int, int], data: st.DataObject
) -> None:
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    chosen = data.draw(st.permutations(range(n)))[: data.draw(st.integers(k, n))]
    # The library takes exactly K mnemonics; covey takes K or more.
    library = shamir_mnemonic.combine_mnemonics([dealt.mnemonics[i] for i in chosen[:k]])
    ours = shares.combine(
        [parsed(dealt.mnemonics)[i] for i in chosen],
        nonce=dealt.nonce,
        digests=dealt.digests,
        threshold=k,
    )
    assert library == ours == dealt.secret
    assert len(dealt.secret) == shares.SECRET_BYTES
    assert len(dealt.mnemonics) == n
    assert all(len(m.split()) == shares.SHARE_WORDS for m in dealt.mnemonics)


@given(k_of_n(), secrets_, nonces, st.data())
def test_the_librarys_own_dealing_with_covey_parameters_combines_in_covey(
    kn: tuple[int, int], secret: bytes, nonce: bytes, data: st.DataObject
) -> None:
    k, n = kn
    (mnemonics,) = shamir_mnemonic.generate_mnemonics(
        1,
        [(k, n)],
        secret,
        passphrase=b"",
        extendable=shares.EXTENDABLE,
        iteration_exponent=shares.ITERATION_EXPONENT,
    )
    dealt = parsed(mnemonics)
    chosen = data.draw(st.permutations(dealt))[:k]
    got = shares.combine(chosen, nonce=nonce, digests=digests_of(nonce, dealt), threshold=k)
    assert got == secret


def test_the_pinned_parameters_are_the_librarys_defaults() -> None:
    """A share any current SLIP-39 tool makes by default is shaped as covey's."""
    defaults = inspect.signature(shamir_mnemonic.generate_mnemonics).parameters
    assert defaults["extendable"].default is shares.EXTENDABLE
    assert defaults["iteration_exponent"].default == shares.ITERATION_EXPONENT
    (mnemonics,) = shamir_mnemonic.generate_mnemonics(1, [(2, 3)], bytes(32))
    assert [s.member_index for s in parsed(mnemonics)] == [0, 1, 2]


def test_the_library_refuses_more_than_k_and_covey_does_not() -> None:
    """Found while writing: `recover_ems` wants exactly K shares of a group."""
    dealt = recoverydeal.deal(2, 3)
    with pytest.raises(shamir_mnemonic.MnemonicError):
        shamir_mnemonic.combine_mnemonics(list(dealt.mnemonics))
    got = shares.combine(
        parsed(dealt.mnemonics), nonce=dealt.nonce, digests=dealt.digests, threshold=2
    )
    assert got == dealt.secret


# --- the published SLIP-39 vectors ------------------------------------------------


def test_the_vector_file_is_read_right() -> None:
    """Each vector as the reference reads it, with the vectors' passphrase "TREZOR"."""
    assert len(VECTORS) == 45
    for description, mnemonics, secret, _xprv in VECTORS:
        if secret:
            got = shamir_mnemonic.combine_mnemonics(mnemonics, b"TREZOR")
            assert got.hex() == secret, description
        else:
            with pytest.raises(shamir_mnemonic.MnemonicError):
                shamir_mnemonic.combine_mnemonics(mnemonics, b"TREZOR")
    assert sum(bool(v[2]) for v in VECTORS) == 15


def vector_mnemonics() -> list[tuple[str, int, str]]:
    return [(v[0], i, m) for v in VECTORS for i, m in enumerate(v[1], 1)]


@pytest.mark.parametrize(("description", "index", "mnemonic"), vector_mnemonics())
def test_covey_decodes_each_vector_mnemonic_as_the_reference_does(
    description: str, index: int, mnemonic: str
) -> None:
    label = f"share {index}"
    try:
        reference = Slip39Share.from_mnemonic(mnemonic)
    except shamir_mnemonic.MnemonicError:
        reference = None
    if reference is None:
        with pytest.raises(BadShare) as refused:
            shares.decode_words(mnemonic, label=label)
        assert label in str(refused.value)
        assert_clean(refused.value, mnemonic.split())
    else:
        share = shares.decode_words(mnemonic, label=label)
        assert share == Share.from_slip39(reference, label=label)
        assert share.to_slip39() == reference
        assert share.mnemonic() == " ".join(mnemonic.split())


#: What each invalid vector whose fault is in one mnemonic is refused as.
ONE_MNEMONIC_FAULTS = {
    "invalid checksum": ShareChecksumFailed,
    "invalid padding": ShareUndecodable,
    "greater group threshold than group counts": ShareUndecodable,
    "insufficient length": ShareWrongLength,
    "invalid master secret length": ShareWrongLength,
}


def test_each_faulty_vector_mnemonic_is_refused_for_its_fault() -> None:
    seen = set()
    for description, mnemonics, _secret, _xprv in VECTORS:
        faults = [key for key in ONE_MNEMONIC_FAULTS if key in description.lower()]
        if not faults:
            continue
        seen.update(faults)
        for mnemonic in mnemonics:
            with pytest.raises(ONE_MNEMONIC_FAULTS[faults[0]]) as refused:
                shares.decode_words(mnemonic, label="line 4 of words.txt")
            assert "line 4 of words.txt" in str(refused.value)
            assert_clean(refused.value, mnemonic.split())
    assert seen == set(ONE_MNEMONIC_FAULTS)


@pytest.mark.parametrize(("description", "index", "mnemonic"), vector_mnemonics())
def test_no_vector_mnemonic_is_taken_for_a_covey_share(
    description: str, index: int, mnemonic: str
) -> None:
    """None of them is shaped as covey deals (128 bits, several groups, other
    settings, one share alone): each is refused by `parse_words`, typed and named."""
    with pytest.raises(BadShare) as refused:
        shares.parse_words(mnemonic, label=f"share {index}")
    assert f"share {index}" in str(refused.value)
    assert_clean(refused.value, mnemonic.split())


def test_covey_shares_of_the_vectors_keep_every_field() -> None:
    """Re-encoded from covey's decoding, each valid vector still gives its secret."""
    for description, mnemonics, secret, _xprv in VECTORS:
        if secret:
            again = [shares.decode_words(m, label="a share").mnemonic() for m in mnemonics]
            got = shamir_mnemonic.combine_mnemonics(again, b"TREZOR")
            assert got.hex() == secret, description


# --- combining ----------------------------------------------------------------------


@given(k_of_n(max_n=shares.MAX_SHARES), st.data())
@settings(max_examples=60)
def test_any_k_of_n_combine_and_any_fewer_do_not(kn: tuple[int, int], data: st.DataObject) -> None:
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    all_shares = parsed(dealt.mnemonics)
    order = data.draw(st.permutations(all_shares))
    got = shares.combine(order[:k], nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    assert got == dealt.secret
    fewer = data.draw(st.integers(0, k - 1))
    with pytest.raises(NotEnoughShares) as refused:
        shares.combine(order[:fewer], nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    assert str(refused.value) == f"{fewer} of {k} shares: need {k - fewer} more"


@given(k_of_n(), secrets_, st.data())
def test_a_share_from_another_dealing_is_named(
    kn: tuple[int, int], other_secret: bytes, data: st.DataObject
) -> None:
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    ours = parsed(dealt.mnemonics)[:k]
    identifier = ours[0].identifier
    other_id = data.draw(st.integers(0, 2**15 - 1).filter(lambda i: i != identifier))
    foreign = library_dealing(other_secret, k, n, other_id)
    at = data.draw(st.integers(1, k - 1))  # (the first stays ours: it names the dealing)
    stranger = dataclasses.replace(foreign[at], label="line 7 of words.txt")
    mixed = [*ours[:at], stranger, *ours[at + 1 :]]
    with pytest.raises(ShareFromAnotherDealing) as refused:
        shares.combine(mixed, nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    assert str(refused.value) == "line 7 of words.txt is from another dealing than share 1"
    assert_clean(refused.value, [*stranger.words(), *ours[0].words()])


@given(k_of_n(), secrets_, st.data())
def test_a_share_of_another_dealing_with_the_same_identifier_is_not_the_one_dealt(
    kn: tuple[int, int], other_secret: bytes, data: st.DataObject
) -> None:
    """SLIP-39's identifier is 15 bits: two dealings share one about once in
    32,768. The digests still name the stranger."""
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    ours = parsed(dealt.mnemonics)[:k]
    foreign = library_dealing(other_secret, k, n, ours[0].identifier)
    at = data.draw(st.integers(0, k - 1))
    stranger = dataclasses.replace(foreign[at], label="share 9")
    mixed = [*ours[:at], stranger, *ours[at + 1 :]]
    with pytest.raises(ShareNotDealt) as refused:
        shares.combine(mixed, nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    assert str(refused.value) == "share 9 is not the one dealt (altered or from another dealing)"
    assert_clean(refused.value, stranger.words())


@given(pooled_words, st.data())
def test_one_changed_word_fails_the_checksum_and_is_named(
    words: list[str], data: st.DataObject
) -> None:
    """RS1024 detects any error in up to three words: one changed word always fails."""
    at = data.draw(st.integers(0, len(words) - 1))
    words[at] = data.draw(st.sampled_from(wordlist.WORDLIST).filter(lambda w: w != words[at]))
    with pytest.raises(ShareChecksumFailed) as refused:
        shares.parse_words(" ".join(words), label="share 2")
    assert str(refused.value) == "share 2 has a mistyped word: its checksum fails"
    assert_clean(refused.value, words)


#: A share re-encoded with one field changed: the library gives it a valid
#: checksum, so only the dealing's digest can tell.
ALTERATIONS = {
    "value": lambda s, d: dataclasses.replace(
        s, value=bytes([s.value[0] ^ d.draw(st.integers(1, 255))]) + s.value[1:]
    ),
    "value's last byte": lambda s, d: dataclasses.replace(
        s, value=s.value[:-1] + bytes([s.value[-1] ^ d.draw(st.integers(1, 255))])
    ),
    "member index": lambda s, d: dataclasses.replace(
        s, member_index=d.draw(st.integers(0, 15).filter(lambda i: i != s.member_index))
    ),
    "member threshold": lambda s, d: dataclasses.replace(
        s, member_threshold=d.draw(st.integers(2, 16).filter(lambda t: t != s.member_threshold))
    ),
    "identifier": lambda s, d: dataclasses.replace(
        s, identifier=d.draw(st.integers(0, 2**15 - 1).filter(lambda i: i != s.identifier))
    ),
}


@given(k_of_n(), st.sampled_from(sorted(ALTERATIONS)), st.data())
def test_an_altered_share_with_a_valid_checksum_is_named(
    kn: tuple[int, int], field: str, data: st.DataObject
) -> None:
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    chosen = data.draw(st.permutations(parsed(dealt.mnemonics)))[:k]
    at = data.draw(st.integers(0, k - 1))
    altered = ALTERATIONS[field](chosen[at], data)
    # Re-encoded: its words pass SLIP-39's checksum and covey's shape.
    retyped = shares.parse_words(altered.mnemonic(), label="the printed share")
    assert retyped == altered
    chosen[at] = retyped
    with pytest.raises((ShareNotDealt, ShareFromAnotherDealing)) as refused:
        shares.combine(chosen, nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    assert "the printed share" in str(refused.value)
    assert_clean(refused.value, altered.words())


@given(k_of_n(), st.data())
def test_a_share_given_twice_is_named(kn: tuple[int, int], data: st.DataObject) -> None:
    k, n = kn
    dealt = recoverydeal.deal(k, n)
    chosen = parsed(dealt.mnemonics)[:k]
    again = dataclasses.replace(data.draw(st.sampled_from(chosen)), label="line 3 of words.txt")
    at = data.draw(st.integers(0, k))
    given_shares = [*chosen[:at], again, *chosen[at:]]
    with pytest.raises(DuplicateShare) as refused:
        shares.combine(given_shares, nonce=dealt.nonce, digests=dealt.digests, threshold=k)
    message = str(refused.value)
    assert message.endswith(f"the same share as share {again.member_index + 1}") or (
        message.startswith(f"share {again.member_index + 1} is the same share as")
    )
    assert "line 3 of words.txt" in message
    assert_clean(refused.value, again.words())


def test_a_share_the_dealing_does_not_list_is_not_the_one_dealt() -> None:
    dealt = recoverydeal.deal(2, 3)
    chosen = parsed(dealt.mnemonics)
    fewer = {i: d for i, d in dealt.digests.items() if i != 2}
    with pytest.raises(ShareNotDealt, match=r"^share 3 is not the one dealt"):
        shares.combine(chosen, nonce=dealt.nonce, digests=fewer, threshold=2)


def test_the_wrong_nonce_names_every_share_as_not_dealt() -> None:
    dealt = recoverydeal.deal(2, 3)
    with pytest.raises(ShareNotDealt, match=r"^share 1 "):
        shares.combine(parsed(dealt.mnemonics), nonce=bytes(16), digests=dealt.digests, threshold=2)


def test_shares_the_dealing_listed_that_do_not_combine_are_a_faulty_dealing() -> None:
    """A dealer that listed digests of shares it altered: every digest matches,
    so SLIP-39's own 4-byte check is the one to fail."""
    dealt = recoverydeal.deal(3, 5)
    chosen = parsed(dealt.mnemonics)[:3]
    chosen[1] = dataclasses.replace(chosen[1], value=bytes(32))
    with pytest.raises(BadDealing) as refused:
        shares.combine(chosen, nonce=NONCE, digests=digests_of(NONCE, chosen), threshold=3)
    assert_clean(refused.value)


def test_a_dealing_that_states_another_threshold_than_its_shares_is_faulty() -> None:
    dealt = recoverydeal.deal(2, 3)
    with pytest.raises(BadDealing, match="another threshold"):
        shares.combine(
            parsed(dealt.mnemonics), nonce=dealt.nonce, digests=dealt.digests, threshold=3
        )


def test_combine_refuses_a_nonce_or_threshold_it_cannot_use() -> None:
    dealt = recoverydeal.deal(2, 2)
    two = parsed(dealt.mnemonics)
    for nonce in (b"", bytes(15), bytes(17)):
        with pytest.raises(InvalidArgument, match="16 bytes"):
            shares.combine(two, nonce=nonce, digests=dealt.digests, threshold=2)
    for threshold in (0, 1, 17):
        with pytest.raises(InvalidArgument, match="2 to 16"):
            shares.combine(two, nonce=dealt.nonce, digests=dealt.digests, threshold=threshold)


# --- shapes covey does not deal -------------------------------------------------------


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ({"group_threshold": 2, "groups": [(2, 3), (2, 3)]}, "in 2 groups"),
        ({"group_threshold": 1, "groups": [(2, 3), (2, 3)]}, "in 2 groups"),
        ({"secret": bytes(16)}, "128-bit backup"),
        ({"secret": bytes(24)}, "192-bit backup"),
        ({"extendable": False}, "other SLIP-39 settings"),
        ({"iteration_exponent": 0}, "other SLIP-39 settings"),
        ({"groups": [(1, 1)]}, "one share opens alone"),
    ],
)
def test_a_share_of_another_shape_is_not_a_covey_share(how: dict, reason: str) -> None:
    made = {
        "group_threshold": 1,
        "groups": [(2, 3)],
        "secret": bytes(range(32)),
        "extendable": True,
        "iteration_exponent": 1,
    } | how
    groups = shamir_mnemonic.generate_mnemonics(
        made["group_threshold"],
        made["groups"],
        made["secret"],
        extendable=made["extendable"],
        iteration_exponent=made["iteration_exponent"],
    )
    mnemonic = groups[0][0]
    assert shares.decode_words(mnemonic, label="share 1").member_index == 0  # (it is SLIP-39)
    with pytest.raises(NotACoveyShare) as refused:
        shares.parse_words(mnemonic, label="share 1")
    assert str(refused.value).startswith("share 1 is a SLIP-39 share ")
    assert reason in str(refused.value)
    assert_clean(refused.value, mnemonic.split())


def test_combine_checks_the_shape_of_shares_made_by_hand() -> None:
    dealt = recoverydeal.deal(2, 3)
    two = parsed(dealt.mnemonics)[:2]
    two[1] = dataclasses.replace(two[1], group_count=2, label="share 2")
    with pytest.raises(NotACoveyShare, match=r"^share 2 is a SLIP-39 share from a backup in 2"):
        shares.combine(two, nonce=dealt.nonce, digests=dealt.digests, threshold=2)


# --- reading words ----------------------------------------------------------------------

garbage = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12).filter(
    lambda w: w.split() == [w] and w.lower() not in WORDS
)


@given(pooled_words, st.data(), garbage)
def test_an_unknown_word_is_named_by_its_position_and_share(
    words: list[str], data: st.DataObject, bad: str
) -> None:
    at = data.draw(st.integers(0, len(words) - 1))
    words[at] = bad
    with pytest.raises(ShareWordUnknown) as refused:
        shares.parse_words(" ".join(words), label="share 2")
    assert str(refused.value) == f"word {at + 1} of share 2 is not a SLIP-39 word"


separators = st.sampled_from([" ", "  ", "\t", "\n", "\r\n", " \n ", "\u00a0", "\u3000"])
cases = st.sampled_from([str.lower, str.upper, str.title, str.swapcase])


@given(pooled_words, st.data())
def test_whitespace_and_case_do_not_matter(words: list[str], data: st.DataObject) -> None:
    mnemonic = " ".join(words)
    expected = shares.parse_words(mnemonic, label="share 1")
    typed = data.draw(separators)
    for word in mnemonic.split():
        typed += data.draw(cases)(word) + data.draw(separators)
    assert shares.parse_words(typed, label="share 1") == expected


@pytest.mark.parametrize("drop", [1, 2, 7, 13])
def test_a_share_with_words_missing_or_doubled_is_the_wrong_length(drop: int) -> None:
    dealt = recoverydeal.deal(2, 3)
    words = dealt.mnemonics[0].split()
    for wrong in (words[:-drop], words + words[:drop], words[drop:]):
        with pytest.raises(BadShare) as refused:
            shares.parse_words(" ".join(wrong), label="share 1")
        assert type(refused.value) is ShareWrongLength
        expected = f"share 1 has {len(wrong)} words: a covey recovery share has 33"
        assert str(refused.value) == expected


def test_text_far_longer_than_a_share_is_refused_before_it_is_read() -> None:
    with pytest.raises(ShareWrongLength, match=r"^share 1 is far longer than a recovery share$"):
        shares.parse_words("acid " * 1000, label="share 1")
    with pytest.raises(ShareWordUnknown):  # (a long line of one word is read as words)
        shares.parse_words("x" * shares.MAX_TEXT, label="share 1")
    with pytest.raises(ShareWrongLength, match="has 0 words"):
        shares.parse_words(" \n\t ", label="share 1")


#: Ways a person can get a share's words wrong.
CORRUPTIONS = {
    "swap two words": lambda w, d: _swapped(w, d.draw(st.integers(0, len(w) - 2))),
    "drop a word": lambda w, d: w[:-1],
    "repeat a word": lambda w, d: [*w[:5], w[5], *w[5:]],
    "change a word": lambda w, d: [
        *w[:3],
        d.draw(st.sampled_from(wordlist.WORDLIST).filter(lambda x: x != w[3])),
        *w[4:],
    ],
    "change three words": lambda w, d: [w[0], "acid", "acne", "aide", *w[4:]],
    "mistype a word": lambda w, d: [*w[:9], w[9][:-1] + "q", *w[10:]],
    "glue two words": lambda w, d: [*w[:2], w[2] + w[3], *w[4:]],
    "paste two shares": lambda w, d: w + w,
    "cut to twenty": lambda w, d: w[:20],
    "cut to twenty-two": lambda w, d: w[:22],
}


def _swapped(words: list[str], i: int) -> list[str]:
    out = list(words)
    out[i], out[i + 1] = out[i + 1], out[i]
    return out


@given(pooled_words, st.sampled_from(sorted(CORRUPTIONS)), st.data())
def test_no_error_message_holds_a_word_of_the_share(
    words: list[str], corruption: str, data: st.DataObject
) -> None:
    wrong = CORRUPTIONS[corruption](words, data)
    assume(wrong != words)
    with pytest.raises(BadShare) as refused:
        shares.parse_words(" ".join(wrong), label="share 1")
    assert "share 1" in str(refused.value)
    assert_clean(refused.value, words + wrong)


def test_the_new_errors_are_worded_without_slip39_words() -> None:
    """Each one's default message (the class docstring's first line), for
    errors raised without a message (BadDealing)."""
    new = [
        errors.BadShare,
        *errors.BadShare.__subclasses__(),
        errors.BadDealing,
        errors.NotEnoughShares,
    ]
    assert len(new) == 11
    for cls in new:
        assert slip39_words_in(str(cls())) == set(), cls


# --- digests, and what the secret keys ----------------------------------------------


def test_the_digest_is_keyed_blake2b_over_the_shares_canonical_words() -> None:
    """Recomputed here from the definition (PROTOCOL.md 19), so another
    implementation can: BLAKE2b-256, key the dealing nonce, personalisation
    covey/v1/recshr, over the words, lowercase, one space apart."""
    mnemonic = VECTORS[44][1][0]  # (any SLIP-39 share digests the same way)
    share = shares.decode_words(mnemonic.upper().replace(" ", "\n "), label="share 1")
    expected = hashlib.blake2b(
        " ".join(mnemonic.split()).encode("ascii"),
        digest_size=32,
        key=NONCE,
        person=b"covey/v1/recshr",
    ).digest()
    assert shares.share_digest(NONCE, share) == expected
    # Pinned, so the format never changes silently (the deal op will list these).
    assert expected.hex() == "bbcb1dfb2b25ac941eb3033277f817f29ef7df81b5eb473f11292f7ea8d06f60"


@given(k_of_n(), nonces, nonces)
@settings(max_examples=30)
def test_digests_differ_by_share_and_by_nonce(kn: tuple[int, int], a: bytes, b: bytes) -> None:
    assume(a != b)
    dealt = parsed(recoverydeal.deal(*kn).mnemonics)
    under_a = [shares.share_digest(a, s) for s in dealt]
    under_b = [shares.share_digest(b, s) for s in dealt]
    assert len(set(under_a + under_b)) == 2 * len(dealt)
    assert all(len(d) == shares.DIGEST_BYTES for d in under_a)


def test_a_share_digest_needs_a_dealing_nonce() -> None:
    share = parsed(recoverydeal.deal(2, 2).mnemonics)[0]
    with pytest.raises(InvalidArgument):
        shares.share_digest(bytes(15), share)


@given(secrets_, secrets_, nonces, nonces)
@settings(max_examples=30)
def test_the_recovery_keys_are_keyed_by_the_secret_over_the_nonce(
    secret: bytes, other: bytes, nonce: bytes, other_nonce: bytes
) -> None:
    assume(secret != other and nonce != other_nonce)
    seed = shares.signing_seed(secret, nonce)
    box = shares.box_secret(secret, nonce)
    for key, person in ((seed, b"covey/v1/recsign"), (box, b"covey/v1/recbox")):
        expected = hashlib.blake2b(nonce, digest_size=32, key=secret, person=person).digest()
        assert key == expected
    assert seed != box
    assert seed not in (shares.signing_seed(other, nonce), shares.signing_seed(secret, other_nonce))
    assert box not in (shares.box_secret(other, nonce), shares.box_secret(secret, other_nonce))
    # Usable as they are: a signature verifies under the seed's public key.
    signature = crypto.sign(seed, crypto.SignDomain.ENVELOPE, b"claim")
    crypto.verify(crypto.signing_public_key(seed), crypto.SignDomain.ENVELOPE, b"claim", signature)


def test_the_recovery_keys_refuse_a_secret_or_nonce_of_another_size() -> None:
    for secret, nonce in ((bytes(31), NONCE), (bytes(33), NONCE), (bytes(32), bytes(8))):
        with pytest.raises(InvalidArgument):
            shares.signing_seed(secret, nonce)
        with pytest.raises(InvalidArgument):
            shares.box_secret(secret, nonce)


# --- dealing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("threshold", "count", "limit"),
    [(1, 3, "at least 2"), (0, 0, "at least 2"), (4, 3, "at least 4 shares, not 3"),
     (2, 17, "at most 16"), (17, 17, "at most 16")],
)  # fmt: skip
def test_dealing_refuses_counts_outside_its_limits(threshold: int, count: int, limit: str) -> None:
    with pytest.raises(InvalidArgument, match=limit):
        recoverydeal.deal(threshold, count)


@pytest.mark.parametrize(("threshold", "count"), [(2, 2), (16, 16), (2, 16)])
def test_dealing_at_its_limits(threshold: int, count: int) -> None:
    dealt = recoverydeal.deal(threshold, count)
    assert sorted(dealt.digests) == list(range(count))
    assert [s.member_threshold for s in parsed(dealt.mnemonics)] == [threshold] * count
    assert len(dealt.nonce) == shares.NONCE_BYTES
    assert shamir_mnemonic.combine_mnemonics(list(dealt.mnemonics[-threshold:])) == dealt.secret


def test_dealings_differ() -> None:
    a, b = recoverydeal.deal(2, 3), recoverydeal.deal(2, 3)
    assert a.secret != b.secret
    assert a.nonce != b.nonce
    assert set(a.mnemonics).isdisjoint(b.mnemonics)


def test_no_repr_shows_a_secret_or_a_word() -> None:
    dealt = recoverydeal.deal(2, 3)
    share = parsed(dealt.mnemonics)[0]
    for text in (repr(dealt), str(dealt), repr(share)):
        assert dealt.secret.hex() not in text
        assert repr(dealt.secret) not in text
        assert all(m not in text for m in dealt.mnemonics)
        assert repr(share.value) not in text
    assert "value" not in repr(share)
    assert "secret" not in repr(dealt)
    assert "mnemonics" not in repr(dealt)


def test_the_pure_share_layer_uses_nothing_of_the_library_that_draws_randomness() -> None:
    """`covey.core.shares` may decode and recover; splitting (which draws from
    `secrets` inside the library) is only in `covey.recoverydeal`."""
    tree = ast.parse(Path(shares.__file__).read_text())
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shamir_mnemonic")
        for alias in node.names
    }
    assert names.isdisjoint({"generate_mnemonics", "split_ems", "RANDOM_BYTES"})
    assert "RANDOM_BYTES" not in Path(shares.__file__).read_text()
