"""Safety words: a fingerprint rendered as words people can read aloud.

Eight words from the SLIP-39 word list (1024 words, 10 bits each, shipped by
shamir-mnemonic, which covey's recovery shares use too) carry the first 80
bits of a fingerprint. Two people comparing them over a call check the
fingerprint to 80 bits: finding other keys with the same eight words takes
about 2^80 work.

The list's words are unique in their first four letters, so a typed word can
be matched leniently; here we compare exact lower-case words.
"""

from __future__ import annotations

from typing import Final

from shamir_mnemonic.wordlist import WORD_INDEX_MAP, WORDLIST

from covey.core import crypto
from covey.errors import InvalidArgument

WORD_COUNT: Final = 8
BITS_PER_WORD: Final = 10
FINGERPRINT_BITS: Final = WORD_COUNT * BITS_PER_WORD

assert len(WORDLIST) == 1 << BITS_PER_WORD


def safety_words(fingerprint: bytes) -> list[str]:
    """The eight safety words for a fingerprint of at least 10 bytes."""
    if len(fingerprint) * 8 < FINGERPRINT_BITS:
        raise ValueError("fingerprint is too short for safety words")
    bits = int.from_bytes(fingerprint[: FINGERPRINT_BITS // 8], "big")
    mask = (1 << BITS_PER_WORD) - 1
    return [
        WORDLIST[(bits >> (BITS_PER_WORD * (WORD_COUNT - 1 - i))) & mask] for i in range(WORD_COUNT)
    ]


def words_to_prefix(words: list[str]) -> bytes:
    """The 10 fingerprint bytes that eight safety words stand for."""
    if len(words) != WORD_COUNT:
        raise InvalidArgument(f"safety words must be {WORD_COUNT} words")
    bits = 0
    for word in words:
        index = WORD_INDEX_MAP.get(word.strip().lower())
        if index is None:
            raise InvalidArgument("that is not a safety word")
        bits = (bits << BITS_PER_WORD) | index
    return bits.to_bytes(FINGERPRINT_BITS // 8, "big")


def words_match(fingerprint: bytes, words: list[str]) -> bool:
    """Whether `words` are the safety words of `fingerprint` (constant time)."""
    return crypto.equal(fingerprint[: FINGERPRINT_BITS // 8], words_to_prefix(words))
