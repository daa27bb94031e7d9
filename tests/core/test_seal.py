"""Sealed data: members open it, nobody else; any change to it is caught."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core.group import Group
from covey.core.seal import CHUNK_SIZE, MAGIC, Opener, Sealer, open_bytes, seal_bytes
from covey.errors import (
    CoveyError,
    InvalidInput,
    KeyUnavailable,
    NeedsRotation,
    NeverAMember,
    NoSuchGroup,
    NotAMember,
)
from tests.conftest import SeededRng
from tests.harness import World


def finder(*groups: Group):
    by_id = {g.id: g for g in groups}

    def find(group_id: bytes) -> Group:
        if group_id not in by_id:
            raise NoSuchGroup()
        return by_id[group_id]

    return find


@pytest.fixture
def pair() -> World:
    world = World(3, seed="seal")
    world.act(0, "add", 1)
    world.sync(0, 1)
    return world


@pytest.mark.parametrize("size", [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE])
def test_round_trip_between_members(pair: World, size: int) -> None:
    data = SeededRng(str(size))(size)
    sealed = seal_bytes(pair.replicas[0], data, b"photos/2026", SeededRng())
    plain, opened = open_bytes(finder(pair.replicas[1]), sealed)
    assert plain == data
    assert opened.author == pair.id(0)
    assert opened.associated == b"photos/2026"
    assert opened.author_is_member


def test_streaming_in_odd_pieces(pair: World) -> None:
    data = SeededRng("stream")(5 * CHUNK_SIZE + 123)
    sealer = Sealer(pair.replicas[0], b"", SeededRng())
    pieces = [sealer.header]
    for start in range(0, len(data), 10_000):
        pieces += sealer.update(data[start : start + 10_000])
    pieces += sealer.finish()
    sealed = b"".join(pieces)
    opener = Opener(finder(pair.replicas[1]))
    out = b"".join(opener.feed(sealed[i : i + 777]) for i in range(0, len(sealed), 777))
    opener.close()
    assert out == data


def test_non_member_cannot_open(pair: World) -> None:
    sealed = seal_bytes(pair.replicas[0], b"secret", b"", SeededRng())
    pair.sync(0, 2)  # device 2 holds the whole log, but is not a member
    with pytest.raises(KeyUnavailable):
        open_bytes(finder(pair.replicas[2]), sealed)
    with pytest.raises(NoSuchGroup):
        open_bytes(finder(), sealed)


@given(st.data())
@settings(max_examples=200)
def test_any_bit_flip_is_caught(data: st.DataObject) -> None:
    world = _SEAL_WORLD
    sealed = _SEALED
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    mutated = bytearray(sealed)
    mutated[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(CoveyError):
        open_bytes(finder(world.replicas[1]), bytes(mutated))


def _frames(sealed: bytes) -> list[bytes]:
    body = sealed[len(MAGIC) :]
    frames = []
    while body:
        length = int.from_bytes(body[:4], "big")
        frames.append(body[: 4 + length])
        body = body[4 + length :]
    return frames


def test_truncation_reordering_and_swaps_are_caught(pair: World) -> None:
    sealed = seal_bytes(pair.replicas[0], SeededRng("t")(3 * CHUNK_SIZE + 5), b"", SeededRng())
    header, c1, c2, c3, c4, trailer = _frames(sealed)
    other = _frames(
        seal_bytes(pair.replicas[0], SeededRng("u")(3 * CHUNK_SIZE + 5), b"", SeededRng("v"))
    )
    variants = {
        "no trailer": [header, c1, c2, c3, c4],
        "no final chunk": [header, c1, c2, c3, trailer],
        "reordered": [header, c2, c1, c3, c4, trailer],
        "repeated": [header, c1, c1, c2, c3, c4, trailer],
        "chunk from another object": [header, c1, other[2], c3, c4, trailer],
        "trailer from another object": [header, c1, c2, c3, c4, other[-1]],
        "extra data": [header, c1, c2, c3, c4, trailer, c1],
        "header only": [header],
    }
    for name, frames in variants.items():
        with pytest.raises(CoveyError):
            open_bytes(finder(pair.replicas[1]), MAGIC + b"".join(frames))
        assert name


def test_not_sealed_data_is_a_clean_error(pair: World) -> None:
    for junk in (b"", b"hello", MAGIC, MAGIC + b"\xff\xff\xff\xff", b"\x00" * 100):
        with pytest.raises(InvalidInput):
            open_bytes(finder(pair.replicas[1]), junk)


def test_a_member_cannot_seal_as_another(pair: World) -> None:
    """Device 1 re-encrypts device 0's object with new content: the trailer fails."""
    sealed = seal_bytes(pair.replicas[0], b"original", b"", SeededRng())
    forged = seal_bytes(pair.replicas[1], b"forged!!", b"", SeededRng())
    header0 = _frames(sealed)[0]
    rest1 = _frames(forged)[1:]
    with pytest.raises(CoveyError):
        open_bytes(finder(pair.replicas[0]), MAGIC + header0 + b"".join(rest1))


def test_removed_device_cannot_open_what_is_sealed_after(pair: World) -> None:
    pair.act(0, "remove", 1)
    sealed = seal_bytes(pair.replicas[0], b"after removal", b"", SeededRng())
    pair.sync(0, 1)
    with pytest.raises(KeyUnavailable):
        open_bytes(finder(pair.replicas[1]), sealed)
    with pytest.raises(NotAMember):
        seal_bytes(pair.replicas[1], b"x", b"", SeededRng())


def test_sealing_waits_for_healing() -> None:
    """A merge that leaves a removed device holding the current key blocks sealing.

    Device 0 removes device 1 while device 2, apart, rotates for {0, 1, 2}.
    Which rotation is current after the merge depends on op IDs, so the
    scenario runs under several seeds and must show both outcomes.
    """
    outcomes = set()
    for seed in range(12):
        world = World(3, seed=f"heal-{seed}")
        world.act(0, "add_admin", 1)
        world.act(0, "add_admin", 2)
        world.sync(0, 1)
        world.sync(0, 2)
        world.act(0, "remove", 1)
        world.act(2, "rotate")
        world.sync(2, 0)
        needs = world.replicas[0].state.needs_healing
        outcomes.add(needs)
        if needs:
            with pytest.raises(NeedsRotation):
                seal_bytes(world.replicas[0], b"x", b"", SeededRng())
            world.act(0, "heal")
            assert not world.replicas[0].state.needs_healing
        sealed = seal_bytes(world.replicas[0], b"after the merge", b"", SeededRng())
        world.sync(0, 1)
        world.sync(2, 1)
        with pytest.raises(KeyUnavailable):
            open_bytes(finder(world.replicas[1]), sealed)
    assert outcomes == {True, False}


def test_shredded_group_opens_nothing(pair: World) -> None:
    sealed = seal_bytes(pair.replicas[0], b"x", b"", SeededRng())
    pair.replicas[1].shred()
    with pytest.raises(KeyUnavailable):
        open_bytes(finder(pair.replicas[1]), sealed)


def _make_fixture() -> tuple[World, bytes]:
    world = World(2, seed="flip")
    world.act(0, "add", 1)
    world.sync(0, 1)
    return world, seal_bytes(world.replicas[0], b"flip me" * 10, b"ad", SeededRng())


_SEAL_WORLD, _SEALED = _make_fixture()


def test_data_from_a_device_whose_add_was_vetoed_is_refused() -> None:
    """Issue 9, finding 5g. A removes admin B; apart, B adds D, and D seals.
    Once the logs meet, A's removal of B vetoes B's add of D: D was never a
    member. It holds the key of that add (a valid op, wrapped for every member
    B knew), so members could open what it sealed, reported only as "no
    longer a member". Now they refuse it, saying who added it and why that
    was undone; data from a removed member still opens (test above)."""
    A, B, C, D = 0, 1, 2, 3
    world = World(4, seed="vetoed-author")
    world.act(A, "add_admin", B)
    world.act(A, "add", C)
    for device in (B, C):
        world.sync(A, device)
    before = seal_bytes(world.replicas[B], b"while B was a member", b"", SeededRng("b"))
    world.act(A, "remove", B)
    added = world.act(B, "add", D)  # apart from A's removal of B
    world.sync(B, D)
    sealed = seal_bytes(world.replicas[D], b"from a device never admitted", b"", SeededRng("d"))
    world.converge()
    for reader in (A, C):
        group = world.replicas[reader]
        assert added is not None
        assert added.id in group.state.skipped
        assert world.id(D) not in group.state.devices
        assert added.id in group.keys  # the key is there: only the check refuses it
        with pytest.raises(NeverAMember) as refused:
            open_bytes(finder(group), sealed)
        assert str(refused.value) == (
            "sealed by 'device-3', which was never a member of 'family': its addition by"
            " 'device-1' was undone (vetoed: its author's rights were revoked concurrently)"
        )
    # What B sealed as a member still opens: from a former member.
    plain, opened = open_bytes(finder(world.replicas[C]), before)
    assert plain == b"while B was a member"
    assert not opened.author_is_member
