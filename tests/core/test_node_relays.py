"""The node's relay path, piece by piece: write tokens, pages from a lying relay, tunnel items."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import relayitems
from covey.core.node.relays import writer_tokens
from covey.errors import InvalidInput
from covey.relay.client import read_items
from tests.harness import World

BOX = b"\x07" * 32


def test_a_removed_device_holds_no_token_an_owner_registers() -> None:
    """Review finding: admin 0 removes device 3 while admin 1 rotates (3 gets that
    key); after the healing rotation (a Rotate, not a Remove) the owner registered
    the epoch before it too, which 3 holds: 3 could write into its inbox."""
    world = World(4)
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.act(0, "add", 3)
    for j in (1, 2, 3):
        world.sync(0, j)
    world.act(0, "remove", 3)
    world.act(1, "rotate")
    world.sync(0, 2)
    world.sync(1, 2)
    world.sync(1, 3)
    owner = world.replicas[2]
    assert owner.state.needs_healing
    assert writer_tokens(owner, BOX) == []  # (no epoch only members hold: none until healed)
    world.sync(2, 0)
    world.sync(1, 0)
    assert world.act(0, "heal") is not None
    world.sync(0, 2)
    registered = set(writer_tokens(owner, BOX))
    assert len(registered) == 1
    theirs = {relayitems.inbox_token(k, BOX) for k in world.replicas[3].keys.values()}
    assert not registered & theirs
    world.act(2, "rotate")  # a routine rotation: the epoch before stays registered too
    assert len(writer_tokens(owner, BOX)) == 2


JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.binary(max_size=64) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=16,
)


@given(JUNK)
@settings(max_examples=300)
def test_a_page_from_a_lying_relay_is_read_or_refused_cleanly(value: object) -> None:
    try:
        items, more = read_items(value)
    except InvalidInput:
        return
    assert isinstance(more, bool)
    assert all(len(item) in relayitems.ITEM_SIZES for _, item in items)
    assert [n for n, _ in items] == sorted({n for n, _ in items})


@pytest.mark.parametrize(
    "page",
    [
        {"items": [[2, bytes(1024), 0], [1, bytes(1024), 0]], "more": False},  # falling
        {"items": [[1, bytes(1024), 0], [1, bytes(1024), 0]], "more": False},  # twice
        {"items": [[1, bytes(1000), 0]], "more": False},  # not a padded size
        {"items": [[0, bytes(1024), 0]], "more": False},  # no item 0
        {"items": [], "more": 1},
        {"items": [], "more": False, "extra": 1},
    ],
)
def test_pages_that_break_the_rules_are_refused(page: dict) -> None:
    with pytest.raises(InvalidInput):
        read_items(page)


@given(st.binary(max_size=2048))
@settings(max_examples=300)
def test_junk_in_a_rendezvous_is_refused_cleanly(data: bytes) -> None:
    """Anything that is not a padded tunnel item is refused with InvalidInput (any
    other exception fails the test); what parses is exactly what it re-encodes to."""
    if len(data) not in relayitems.ITEM_SIZES:
        with pytest.raises(InvalidInput):
            relayitems.TunnelItem.from_bytes(data)
    padded = data.ljust(1024, b"\0")[:1024]
    with contextlib.suppress(InvalidInput):
        assert relayitems.TunnelItem.from_bytes(padded).to_bytes() == padded


@given(
    st.binary(min_size=16, max_size=16),
    st.sampled_from(["i", "j"]),
    st.integers(1, 1 << 32),
    st.binary(max_size=relayitems.TUNNEL_DATA),
    st.booleans(),
)
@settings(max_examples=100)
def test_tunnel_items_round_trip(session, sender, seq, data, end) -> None:  # type: ignore[no-untyped-def]
    item = relayitems.TunnelItem(session, sender, seq, data, end)
    raw = item.to_bytes()
    assert len(raw) in relayitems.ITEM_SIZES
    assert relayitems.TunnelItem.from_bytes(raw) == item
