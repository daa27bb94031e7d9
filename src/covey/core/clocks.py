"""Vector clocks that share structure: the causal order of a log's ops, compactly.

Every op of a group's log has a vector clock: per author, the highest
sequence number of theirs in the op's causal past. A full copy per op costs
memory in the number of authors (4.7 KB per op at 100 authors: two thirds of
a replica's memory, the review measured). Here a clock is a tuple of chunks
of `CHUNK` entries, indexed by a small number per author (`Authors`). An op
with one parent changes one entry of its parent's clock, so it copies one
chunk and the outer tuple and shares every other chunk with its parent;
joining two clocks shares every chunk the two have in common. Per op that is
O(CHUNK + authors / CHUNK) words, not O(authors); reading an entry is O(1).
"""

from __future__ import annotations

from typing import Final, TypeAlias

#: Entries per chunk (a power of two): the copy an op makes is about
#: CHUNK + authors / CHUNK words, least near CHUNK = sqrt(authors).
CHUNK: Final = 32
_SHIFT: Final = 5
_MASK: Final = CHUNK - 1

Clock: TypeAlias = tuple[tuple[int, ...], ...]
EMPTY: Final[Clock] = ()


class Authors:
    """Small numbers for author IDs, in order of first sight (one per log)."""

    __slots__ = ("_index",)

    def __init__(self) -> None:
        self._index: dict[bytes, int] = {}

    def of(self, author: bytes) -> int:
        """The author's number, given on first sight."""
        index = self._index.get(author)
        if index is None:
            index = self._index[author] = len(self._index)
        return index

    def get(self, author: bytes) -> int | None:
        """The author's number, or None if it was never seen."""
        return self._index.get(author)

    def __len__(self) -> int:
        return len(self._index)


def get(clock: Clock, index: int) -> int:
    """The clock's entry for author `index` (0 if it has none)."""
    chunk = index >> _SHIFT
    if chunk >= len(clock):
        return 0
    part = clock[chunk]
    offset = index & _MASK
    return part[offset] if offset < len(part) else 0


def put(clock: Clock, index: int, value: int) -> Clock:
    """A clock equal to `clock` but for the entry of author `index`, which is `value`."""
    chunk = index >> _SHIFT
    offset = index & _MASK
    if chunk >= len(clock):
        clock = clock + ((),) * (chunk + 1 - len(clock))
    part = clock[chunk]
    if offset >= len(part):
        part = part + (0,) * (offset + 1 - len(part))
    part = (*part[:offset], value, *part[offset + 1 :])
    return (*clock[:chunk], part, *clock[chunk + 1 :])


def join(a: Clock, b: Clock) -> Clock:
    """The entry-wise maximum of two clocks (chunks the two share are shared)."""
    if a is b:
        return a
    if len(a) < len(b):
        a, b = b, a
    chunks = list(a)
    for i, theirs in enumerate(b):
        mine = chunks[i]
        if mine is theirs or mine == theirs:
            continue
        if len(mine) < len(theirs):
            mine, theirs = theirs, mine
        chunks[i] = tuple(
            x if j >= len(theirs) or x >= theirs[j] else theirs[j] for j, x in enumerate(mine)
        )
    return tuple(chunks)
