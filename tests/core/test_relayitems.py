"""Relay items: padded to the seven sizes, sealed, signed, and only for their inbox."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import relayitems
from covey.core.identity import create_identity
from covey.core.relayitems import ItemBody
from covey.errors import DecryptionFailed, InvalidInput, MalformedMessage, UnknownDevice
from covey.relay import session
from tests.conftest import NOW, SeededRng
from tests.relay.pipe import Pipe

ALICE = create_identity("alice", NOW, SeededRng("alice"))
BOB = create_identity("bob", NOW, SeededRng("bob"))
EVE = create_identity("eve", NOW, SeededRng("eve"))
GROUP = b"g" * 32
KEYS = {d.device_id.raw: d.record.signing_key for d in (ALICE, BOB, EVE)}.get
BOB_ID = BOB.device_id.raw


def for_bob(payload: bytes, group: bytes = GROUP, recipient: bytes = BOB_ID) -> bytes:
    body = ItemBody(group, recipient, "ops", payload)
    return relayitems.seal_for_inbox(ALICE, recipient, BOB.record.box_key, body, SeededRng("s"))


@settings(max_examples=50)
@given(st.integers(0, 70_000))
def test_an_inbox_item_is_one_of_the_seven_sizes_and_opens_to_what_was_sealed(n: int) -> None:
    payload = bytes([n % 251]) * n
    item = for_bob(payload)
    assert len(item) in relayitems.ITEM_SIZES
    assert len(item) == min(s for s in relayitems.ITEM_SIZES if s >= len(item))
    opened = relayitems.open_from_inbox(BOB, GROUP, item, KEYS)
    assert opened.author == ALICE.device_id.raw
    assert opened.body.payload == payload


def test_only_the_recipient_opens_an_inbox_item() -> None:
    with pytest.raises(DecryptionFailed):
        relayitems.open_from_inbox(EVE, GROUP, for_bob(b"x"), KEYS)


def test_an_item_for_another_group_or_device_is_refused_by_its_recipient() -> None:
    other_group = for_bob(b"x", group=b"h" * 32)
    with pytest.raises(MalformedMessage, match="another inbox"):
        relayitems.open_from_inbox(BOB, GROUP, other_group, KEYS)
    # Sealed to Bob, but naming Eve inside: a relay moved it, or Alice erred.
    body = ItemBody(GROUP, EVE.device_id.raw, "ops", b"x")
    moved = relayitems.seal_for_inbox(
        ALICE, EVE.device_id.raw, BOB.record.box_key, body, SeededRng("m")
    )
    with pytest.raises(MalformedMessage, match="another inbox"):
        relayitems.open_from_inbox(BOB, GROUP, moved, KEYS)


def test_an_item_from_an_unknown_device_is_refused() -> None:
    with pytest.raises(UnknownDevice):
        relayitems.open_from_inbox(BOB, GROUP, for_bob(b"x"), {}.get)


@settings(max_examples=100)
@given(st.data())
def test_any_changed_byte_is_a_typed_error(data: st.DataObject) -> None:
    item = bytearray(for_bob(b"payload"))
    i = data.draw(st.integers(0, len(item) - 1))
    item[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(InvalidInput):
        relayitems.open_from_inbox(BOB, GROUP, bytes(item), KEYS)


def test_a_mirror_item_opens_only_with_its_epochs_key_and_in_its_segment() -> None:
    epoch = b"e" * 32
    relay = b"r" * 32
    key = relayitems.mirror_key(epoch, relay)
    segment = session.segment_id(session.read_token(relayitems.segment_token(epoch, relay)))
    body = ItemBody(GROUP, b"", "ops", b"ops bytes")
    item = relayitems.seal_for_mirror(ALICE, key, segment, body, SeededRng("m"))
    assert len(item) == relayitems.ITEM_SIZES[0]
    assert relayitems.open_from_mirror(key, segment, GROUP, item, KEYS).body == body
    with pytest.raises(DecryptionFailed):
        relayitems.open_from_mirror(key, b"s" * 32, GROUP, item, KEYS)
    with pytest.raises(DecryptionFailed):
        relayitems.open_from_mirror(
            relayitems.mirror_key(b"f" * 32, relay), segment, GROUP, item, KEYS
        )


def test_tokens_and_keys_differ_by_purpose_epoch_and_place() -> None:
    values = {
        relayitems.inbox_token(b"e" * 32, b"r" * 32),
        relayitems.segment_token(b"e" * 32, b"r" * 32),
        relayitems.mirror_key(b"e" * 32, b"r" * 32),
        relayitems.inbox_token(b"f" * 32, b"r" * 32),
        relayitems.segment_token(b"e" * 32, b"s" * 32),
    }
    assert len(values) == 5


def test_an_item_goes_through_a_relay_and_opens_at_the_other_end() -> None:
    from covey.relay import client

    relay = Pipe()
    inbox_seed, _ = relayitems.inbox_key(BOB.secrets.signing_seed, GROUP, b"r" * 32)
    auth = client.inbox_auth(inbox_seed, relay.ready.challenge)
    assert relay.call("inbox-auth", **auth) is True
    token = relayitems.inbox_token(b"e" * 32, auth["box"])
    assert relay.call("inbox-writers", box=auth["box"], hashes=[session.writer_hash(token)]) == 1
    sender = Pipe(relay.store, seed="alice", access=False)
    assert sender.call("inbox-put", box=auth["box"], token=token, item=for_bob(b"hi"), ttl=0) == 1
    [(_, item, _)] = relay.call("inbox-fetch", box=auth["box"], after=0)["items"]
    assert relayitems.open_from_inbox(BOB, GROUP, item, KEYS).body.payload == b"hi"
