"""A relay connection end to end in memory: the proof, inboxes, mirrors, blobs, limits.

Each test drives the device's client and the relay's session through the
real Noise channel (`tests.relay.pipe`), and checks what the device is
told: an answer, or a refusal it can name. None of these is silent.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import channel, crypto, encoding, relayitems
from covey.errors import (
    HandshakeFailed,
    RelayBadLifetime,
    RelayInboxFull,
    RelayItemTooLarge,
    RelayMalformed,
    RelayNotAllowed,
    RelayNothingThere,
    RelaySegmentFull,
    RelaySlowDown,
)
from covey.relay import client, requests, session
from covey.relay.limits import DEFAULT_LIMITS, ITEM_SIZES, padded_size
from tests.relay.pipe import ACCESS, RELAY, Pipe

ITEM = b"\x07" * ITEM_SIZES[0]
GROUP = b"g" * 32
OWNER_SEED = b"o" * 32
TOKEN = b"t" * 32


def owner_inbox(pipe: Pipe, seed: bytes = OWNER_SEED) -> bytes:
    """Authorize the owner's inbox on this connection and let TOKEN write; its ID."""
    inbox_seed, _ = relayitems.inbox_key(seed, GROUP, RELAY.public)
    auth = client.inbox_auth(inbox_seed, pipe.ready.challenge)
    assert pipe.call("inbox-auth", **auth) is True
    assert pipe.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(TOKEN)]) == 1
    return auth["box"]


def test_the_device_learns_the_limits_and_a_fresh_challenge() -> None:
    first, second = Pipe(seed="a"), Pipe(seed="b")
    assert first.ready.limits == DEFAULT_LIMITS
    assert len(first.ready.challenge) == 32
    assert first.ready.challenge != second.ready.challenge


def test_a_relay_without_the_pinned_key_is_refused_before_anything_is_asked() -> None:
    other = session.RelayIdentity.from_seed(b"x" * 32)
    with pytest.raises(HandshakeFailed, match="did not prove"):
        Pipe(pinned=other.public)


def test_an_inbox_takes_items_from_token_holders_and_gives_them_to_its_owner() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    sender = Pipe(relay.store, seed="sender")
    first = sender.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    second = sender.call("inbox-put", box=box, token=TOKEN, item=ITEM[:-1] + b"!", ttl=60)
    assert (first, second) == (1, 2)
    got = relay.call("inbox-fetch", box=box, after=0)
    assert [n for n, _, _ in got["items"]] == [1, 2]
    assert got["items"][1][1].endswith(b"!")
    assert got["items"][0][2] == relay.now + DEFAULT_LIMITS.ttl_default
    assert got["items"][1][2] == relay.now + 60
    assert relay.call("inbox-ack", box=box, numbers=[1]) == 1
    assert [n for n, _, _ in relay.call("inbox-fetch", box=box, after=0)["items"]] == [2]


def test_a_put_without_the_token_is_refused_like_a_put_to_no_inbox() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    stranger = Pipe(relay.store, seed="stranger")
    wrong = stranger.call("inbox-put", box=box, token=b"w" * 32, item=ITEM, ttl=0)
    nowhere = stranger.call("inbox-put", box=b"n" * 32, token=TOKEN, item=ITEM, ttl=0)
    assert isinstance(wrong, RelayNotAllowed)
    assert isinstance(nowhere, RelayNotAllowed)


def test_only_the_owner_reads_acknowledges_or_sets_writers() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    other = Pipe(relay.store, seed="other")
    for op, fields in (
        ("inbox-fetch", {"after": 0}),
        ("inbox-ack", {"numbers": [1]}),
        ("inbox-writers", {"hashes": []}),
    ):
        assert isinstance(other.call(op, box=box, **fields), RelayNotAllowed), op


def test_an_owner_signature_from_another_connection_is_not_accepted() -> None:
    first, second = Pipe(seed="a"), Pipe(seed="b")
    inbox_seed, _ = relayitems.inbox_key(OWNER_SEED, GROUP, RELAY.public)
    replayed = client.inbox_auth(inbox_seed, first.ready.challenge)
    assert first.call("inbox-auth", **replayed) is True
    assert isinstance(second.call("inbox-auth", **replayed), RelayNotAllowed)


def test_an_inbox_key_that_is_not_the_inbox_is_not_accepted() -> None:
    relay = Pipe()
    mine, my_public = relayitems.inbox_key(OWNER_SEED, GROUP, RELAY.public)
    _, their_public = relayitems.inbox_key(b"v" * 32, GROUP, RELAY.public)
    theirs = relayitems.inbox_id(their_public)
    # A valid signature by my inbox key over their inbox's ID: still not theirs.
    signature = crypto.sign(
        mine,
        crypto.SignDomain.RELAY_INBOX_AUTH,
        session.inbox_auth_message(relay.ready.challenge, theirs),
    )
    refused = relay.call("inbox-auth", box=theirs, pub=my_public, sig=signature)
    assert isinstance(refused, RelayNotAllowed)


def test_inbox_ids_differ_per_group_and_per_relay() -> None:
    ids = {
        relayitems.inbox_id(relayitems.inbox_key(OWNER_SEED, group, relay)[1])
        for group in (b"a" * 32, b"b" * 32)
        for relay in (b"r" * 32, b"s" * 32)
    }
    assert len(ids) == 4


def test_a_full_inbox_says_so_until_its_owner_acknowledges() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, inbox_items=2)
    relay = Pipe(limits=limits)
    box = owner_inbox(relay)
    for _ in range(2):
        relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    assert isinstance(
        relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0), RelayInboxFull
    )
    relay.call("inbox-ack", box=box, numbers=[1])
    assert relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 3


def test_an_inbox_byte_quota_counts_padded_sizes() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, inbox_bytes=ITEM_SIZES[1] + ITEM_SIZES[0])
    relay = Pipe(limits=limits)
    box = owner_inbox(relay)
    assert relay.call("inbox-put", box=box, token=TOKEN, item=b"a" * ITEM_SIZES[1], ttl=0) == 1
    assert relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 2
    full = relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    assert isinstance(full, RelayInboxFull)


def test_a_fetch_pages_by_bytes_and_says_more_are_waiting() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, fetch_bytes=2 * ITEM_SIZES[0])
    relay = Pipe(limits=limits)
    box = owner_inbox(relay)
    for _ in range(5):
        relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    first = relay.call("inbox-fetch", box=box, after=0)
    assert [n for n, _, _ in first["items"]] == [1, 2]
    assert first["more"] is True
    last = relay.call("inbox-fetch", box=box, after=4)
    assert [n for n, _, _ in last["items"]] == [5]
    assert last["more"] is False


def test_items_expire_and_idle_inboxes_go() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=10)
    relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=100)
    relay.now += 10
    assert [n for n, _, _ in relay.call("inbox-fetch", box=box, after=0)["items"]] == [2]
    relay.now += DEFAULT_LIMITS.inbox_idle
    later = Pipe(relay.store, seed="later", now=relay.now)
    refused = later.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0)
    assert isinstance(refused, RelayNotAllowed)  # the inbox is gone, with its writers


def test_lifetimes_past_the_maximum_are_refused_and_the_connection_goes_on() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    too_long = relay.call(
        "inbox-put", box=box, token=TOKEN, item=ITEM, ttl=DEFAULT_LIMITS.ttl_max + 1
    )
    assert isinstance(too_long, RelayBadLifetime)
    assert relay.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=DEFAULT_LIMITS.ttl_max) == 1
    assert not relay.ended


def test_an_item_over_the_relays_limit_is_refused_by_name() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, item_bytes=ITEM_SIZES[1])
    relay = Pipe(limits=limits)
    box = owner_inbox(relay)
    big = relay.call("inbox-put", box=box, token=TOKEN, item=b"b" * ITEM_SIZES[2], ttl=0)
    assert isinstance(big, RelayItemTooLarge)
    assert not relay.ended


def test_an_item_of_no_padded_size_ends_the_connection_as_malformed() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    odd = relay.call("inbox-put", box=box, token=TOKEN, item=b"odd", ttl=0)
    assert isinstance(odd, RelayMalformed)
    assert relay.ended == ["a request did not parse"]


def test_padded_sizes_are_the_seven() -> None:
    assert [padded_size(n) for n in (0, 1024, 1025, 4 << 20)] == [1024, 1024, 4096, 4 << 20]
    assert set(map(padded_size, range(0, 4097, 7))) == {1024, 4096}


def test_requests_past_the_burst_are_told_to_slow_down_and_pass_again_later() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, request_burst=3, requests_per_second=1)
    relay = Pipe(limits=limits, access=False)
    answers = [relay.call("blob-get", id=b"i" * 32) for _ in range(4)]
    assert [type(a) for a in answers] == [RelayNothingThere] * 3 + [RelaySlowDown]
    relay.now += 2
    assert isinstance(relay.call("blob-get", id=b"i" * 32), RelayNothingThere)


def test_a_mirror_segment_is_bound_to_its_tokens() -> None:
    relay = Pipe()
    assert relay.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 1
    assert relay.call("mirror-put", token=b"z" * 32, item=ITEM, ttl=0) == 1  # another segment
    reader = Pipe(relay.store, seed="reader", access=False)
    got = reader.call("mirror-get", read=session.read_token(TOKEN), after=0)
    assert [n for n, _, _ in got["items"]] == [1]
    assert reader.call("mirror-get", read=session.read_token(TOKEN), after=1)["items"] == []
    assert isinstance(reader.call("mirror-get", read=TOKEN, after=0), RelayNothingThere)


def test_a_segment_and_its_blobs_share_one_quota() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, segment_items=2)
    relay = Pipe(limits=limits)
    relay.call("mirror-put", token=TOKEN, item=ITEM, ttl=0)
    blob_id = relay.call("blob-put", token=TOKEN, blob=ITEM, ttl=0)
    assert len(blob_id) == 32
    full = relay.call("mirror-put", token=TOKEN, item=ITEM, ttl=0)
    assert isinstance(full, RelaySegmentFull)
    assert Pipe(relay.store, seed="getter", access=False).call("blob-get", id=blob_id) == ITEM


def test_a_blob_makes_its_segment_only_with_the_access_secret_and_expires() -> None:
    relay = Pipe()
    stranger = Pipe(relay.store, seed="stranger", access=False)
    refused = stranger.call("blob-put", token=TOKEN, blob=ITEM, ttl=0)
    assert isinstance(refused, RelayNotAllowed)
    blob_id = relay.call("blob-put", token=TOKEN, blob=ITEM, ttl=5)  # (makes the segment)
    assert len(stranger.call("blob-put", token=TOKEN, blob=ITEM, ttl=0)) == 32  # (it exists)
    relay.now += 5
    assert isinstance(relay.call("blob-get", id=blob_id), RelayNothingThere)


def test_without_the_access_secret_nothing_new_is_made_and_what_exists_still_works() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    relay.call("mirror-put", token=TOKEN, item=ITEM, ttl=0)
    stranger = Pipe(relay.store, seed="stranger", access=False)
    inbox_seed, _ = relayitems.inbox_key(b"s" * 32, GROUP, RELAY.public)
    auth = client.inbox_auth(inbox_seed, stranger.ready.challenge)
    assert stranger.call("inbox-auth", **auth) is True  # (proving a key makes nothing)
    made = stranger.call("inbox-writers", box=auth["box"], hashes=[])
    assert isinstance(made, RelayNotAllowed)
    assert isinstance(
        stranger.call("mirror-put", token=b"n" * 32, item=ITEM, ttl=0), RelayNotAllowed
    )
    assert isinstance(stranger.call("access", secret=b"B" * 32), RelayNotAllowed)
    # A member without the link still writes where the relay's users let it.
    assert stranger.call("inbox-put", box=box, token=TOKEN, item=ITEM, ttl=0) == 1
    assert stranger.call("mirror-put", token=TOKEN, item=ITEM, ttl=0) == 2


def test_a_connection_reads_one_inbox_only() -> None:
    relay = Pipe()
    owner_inbox(relay)
    other_seed, _ = relayitems.inbox_key(b"p" * 32, GROUP, RELAY.public)
    second = client.inbox_auth(other_seed, relay.ready.challenge)
    assert isinstance(relay.call("inbox-auth", **second), RelayNotAllowed)


def test_a_page_holds_at_most_the_advertised_number_of_items() -> None:
    limits = dataclasses.replace(DEFAULT_LIMITS, fetch_items=3)
    relay = Pipe(limits=limits)
    for _ in range(5):
        relay.call("mirror-put", token=TOKEN, item=ITEM, ttl=0)
    page = relay.call("mirror-get", read=session.read_token(TOKEN), after=0)
    assert [n for n, _, _ in page["items"]] == [1, 2, 3]
    assert page["more"] is True


def test_an_inbox_gone_idle_is_reported_to_its_owner() -> None:
    relay = Pipe()
    box = owner_inbox(relay)
    relay.now += DEFAULT_LIMITS.inbox_idle
    assert isinstance(relay.call("inbox-fetch", box=box, after=0), RelayNothingThere)


def test_bytes_that_are_not_a_relay_connection_end_it_at_once() -> None:
    relay = session.RelaySession(RELAY, DEFAULT_LIMITS, 0, ACCESS)
    outputs = relay.receive(b"GET / HTTP/1.1\r\n", 0, lambda n: bytes(n))
    assert outputs == [session.End("not a relay connection")]
    assert relay.receive(b"more", 0, lambda n: bytes(n)) == []


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_junk_after_the_handshake_only_ever_ends_the_connection(junk: bytes) -> None:
    relay = Pipe(access=False)
    relay.send_raw(junk)
    # Whatever the junk: the session neither raised nor answered anything but
    # a refusal, and the connection ended if (and only if) a frame came whole.
    assert all(
        isinstance(e, client.Refused) for e in relay.events if not isinstance(e, client.Ready)
    )
    whole_frame = len(junk) >= 2 and len(junk) >= 2 + int.from_bytes(junk[:2], "big")
    assert bool(relay.ended) == whole_frame


@settings(max_examples=200)
@given(
    st.dictionaries(
        st.sampled_from(["n", "op", "box", "item", "ttl", "after", "x"]),
        st.one_of(
            st.integers(-2, 2**64 - 1),
            st.binary(max_size=40),
            st.sampled_from(list(requests.FIELDS)),
            st.none(),
        ),
        max_size=6,
    )
)
def test_any_request_map_is_answered_or_ends_the_connection(value: dict) -> None:
    relay = Pipe(access=False)
    data = encoding.encode(value)
    transport = relay.client._transport
    assert transport is not None
    relay.send_raw(b"".join(channel.fragments(transport, data, requests.MAX_REQUEST)))
    answers = [e for e in relay.events if not isinstance(e, client.Ready)]
    assert len(answers) == 1
    if relay.ended:
        assert isinstance(answers[0], client.Refused)
        assert isinstance(answers[0].refusal, RelayMalformed)
