"""Discovery adverts: what a LAN observer sees, what a fellow device recognizes.

The privacy claims of PROTOCOL.md section 14, as properties: every advert
has the same size and number of tags whatever the device's groups; no two
adverts share a tag value (one device's, in one hour or across hours; two
members'); the salt enters every tag; a fellow device recognizes the
advert, a stranger's keys do not. And the TXT record is a bounded decoder:
covey's own shape round-trips, anything else is refused with one error type.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import discovery
from covey.core.discovery import (
    ADVERT_TAGS,
    HOUR,
    MAX_TXT_STRING,
    SALT_BYTES,
    TAG_BYTES,
    TXT_BYTES,
    AdvertText,
    Discovery,
    decode_advert,
    encode_advert,
    read_advert,
)
from covey.core.identity import create_identity
from covey.errors import MalformedMessage
from tests.conftest import NOW, SeededRng

#: Enough devices for a device with more fellows than one advert can name.
POOL = [create_identity(f"d{i}", NOW, SeededRng(f"disc-{i}")) for i in range(ADVERT_TAGS + 40)]
RECORDS = [me.record for me in POOL]
#: Every device of the pool, as a looker knows them (device ID -> record).
KNOWN = {r.device_id.raw: r for r in RECORDS}
ME = POOL[0]
MINE = Discovery(ME)
#: One of the devices ME advertises for below, and one it does not, both knowing
#: the first 20 devices.
FELLOW, OUTSIDER = Discovery(POOL[3]), Discovery(POOL[50])
FIRST_20 = {r.device_id.raw: r for r in RECORDS[:20]}

tags_st = st.binary(min_size=ADVERT_TAGS * TAG_BYTES, max_size=ADVERT_TAGS * TAG_BYTES).map(
    lambda b: [b[i : i + TAG_BYTES] for i in range(0, len(b), TAG_BYTES)]
)
salts = st.binary(min_size=SALT_BYTES, max_size=SALT_BYTES)


def strings(txt: bytes) -> list[bytes]:
    """The strings of a TXT record (as DNS frames them)."""
    out, pos = [], 0
    while pos < len(txt):
        out.append(txt[pos + 1 : pos + 1 + txt[pos]])
        pos += 1 + txt[pos]
    return out


def test_the_txt_record_fits_dns_and_one_packet() -> None:
    txt = MINE.advert(RECORDS[1:], NOW, SeededRng("fits"))
    assert len(txt) == TXT_BYTES == 995
    assert TXT_BYTES < 1300  # RFC 6763 6.2: one Ethernet packet with the other records
    assert all(len(s) <= MAX_TXT_STRING for s in strings(txt))
    assert [s.split(b"=")[0] for s in strings(txt)] == [b"s", b"t0", b"t1", b"t2", b"t3"]


@given(salt=salts, tags=tags_st)
def test_the_txt_record_round_trips(salt: bytes, tags: list[bytes]) -> None:
    txt = encode_advert(salt, tags)
    assert len(txt) == TXT_BYTES
    assert decode_advert(txt) == AdvertText(salt, frozenset(tags))


@given(salt=salts, tags=tags_st, order=st.randoms(use_true_random=False))
def test_strings_in_any_order_read_the_same(
    salt: bytes, tags: list[bytes], order: random.Random
) -> None:
    parts = strings(encode_advert(salt, tags))
    order.shuffle(parts)
    assert decode_advert(b"".join(bytes([len(p)]) + p for p in parts)) == AdvertText(
        salt, frozenset(tags)
    )


@given(data=st.binary(max_size=2 * TXT_BYTES))
def test_any_bytes_are_an_advert_or_refused_cleanly(data: bytes) -> None:
    try:
        advert = decode_advert(data)
    except MalformedMessage:
        assert read_advert(data) is None
        return
    assert len(data) == TXT_BYTES
    assert len(advert.salt) == SALT_BYTES
    assert all(len(t) == TAG_BYTES for t in advert.tags)


@given(
    salt=salts,
    tags=tags_st,
    where=st.integers(0, TXT_BYTES - 1),
    value=st.integers(0, 255),
    cut=st.integers(-3, 3),
)
def test_a_damaged_record_is_refused_unless_only_a_value_changed(
    salt: bytes, tags: list[bytes], where: int, value: int, cut: int
) -> None:
    txt = bytearray(encode_advert(salt, tags))
    txt[where] = value
    damaged = bytes(txt)
    if cut < 0:
        damaged = damaged[:cut]
    elif cut > 0:
        damaged += bytes(cut)
    advert = read_advert(damaged)
    framing = {0, 1, 2} | {19 + k * 244 + i for k in range(4) for i in range(4)}
    if cut != 0 or (where in framing and damaged[where] != encode_advert(salt, tags)[where]):
        assert advert is None
    else:
        assert advert is not None
        assert len(advert.salt) == SALT_BYTES


def test_encoding_refuses_what_covey_never_sends() -> None:
    good = [bytes(TAG_BYTES)] * ADVERT_TAGS
    for salt, tags in [
        (bytes(SALT_BYTES - 1), good),
        (bytes(SALT_BYTES), good[:-1]),
        (bytes(SALT_BYTES), [*good[:-1], bytes(TAG_BYTES + 1)]),
    ]:
        try:
            encode_advert(salt, tags)
        except ValueError:
            continue
        raise AssertionError("encoded a malformed advert")


# --- what an observer sees --------------------------------------------------------


@given(count=st.integers(0, len(RECORDS) - 1), seed=st.integers(0, 2**32))
def test_every_advert_has_the_same_size_whatever_the_number_of_fellows(
    count: int, seed: int
) -> None:
    txt = MINE.advert(RECORDS[1 : 1 + count], NOW, SeededRng(f"size-{seed}"))
    advert = decode_advert(txt)
    assert len(txt) == TXT_BYTES
    assert len(advert.tags) == ADVERT_TAGS


@given(
    count=st.integers(1, len(RECORDS) - 1),
    later=st.integers(0, 3 * HOUR),
    seeds=st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)).filter(lambda s: s[0] != s[1]),
)
def test_two_adverts_of_one_device_share_no_tag_value(
    count: int, later: int, seeds: tuple[int, int]
) -> None:
    """Issue 9, finding 5e: a device's adverts within an hour (a restart, a
    change of members) carried the same tag values, so an observer linked them."""
    targets = RECORDS[1 : 1 + count]
    first = decode_advert(MINE.advert(targets, NOW, SeededRng(f"a-{seeds[0]}")))
    second = decode_advert(MINE.advert(targets, NOW + later, SeededRng(f"b-{seeds[1]}")))
    assert first.salt != second.salt
    assert not first.tags & second.tags


@given(seed=st.integers(0, 2**32), size=st.integers(2, 12))
def test_members_of_one_group_share_no_tag_value(seed: int, size: int) -> None:
    """Every member's advert carries different values, even for the same fellow."""
    group = POOL[:size]
    seen: set[bytes] = set()
    for member in group:
        advert = decode_advert(
            Discovery(member).advert(
                [m.record for m in group], NOW, SeededRng(f"m-{seed}-{member.record.name}")
            )
        )
        assert not advert.tags & seen
        seen |= advert.tags


def test_the_salt_enters_every_tag() -> None:
    targets = RECORDS[1:40]
    salt = bytes(SALT_BYTES)
    other = bytes([1]) + bytes(SALT_BYTES - 1)
    one = set(MINE.advert_tags(targets, NOW, salt, SeededRng("s")))
    two = set(MINE.advert_tags(targets, NOW, other, SeededRng("s")))
    assert len(one) == len(two) == 39
    assert not one & two
    # Copied under another salt, the tags name nobody.
    fellow = Discovery(POOL[5])
    txt = decode_advert(MINE.advert(targets, NOW, SeededRng("copy")))
    assert fellow.recognize(txt, KNOWN, NOW) == ME.record
    moved = AdvertText(other, txt.tags)
    assert Discovery(POOL[5]).recognize(moved, KNOWN, NOW) is None


# --- what a fellow device recognizes ----------------------------------------------------


@given(skew=st.integers(-2 * HOUR, 2 * HOUR), seed=st.integers(0, 2**32))
def test_a_fellow_recognizes_the_advert_within_an_hour_of_skew(skew: int, seed: int) -> None:
    targets = RECORDS[1:10]
    txt = decode_advert(MINE.advert(targets, NOW, SeededRng(f"skew-{seed}")))
    found = FELLOW.recognize(txt, FIRST_20, NOW + skew)
    hours_apart = abs((NOW + skew) // HOUR - NOW // HOUR)
    assert found == (ME.record if hours_apart <= discovery.SKEW_HOURS else None)
    # A device it does not advertise for knows the advertiser, and still finds nothing.
    assert OUTSIDER.recognize(txt, FIRST_20, NOW) is None


def test_beyond_the_tags_an_advert_holds_every_fellow_is_named_within_a_few_adverts() -> None:
    fellows = RECORDS[1:]
    assert len(fellows) > ADVERT_TAGS
    named: set[bytes] = set()
    lookers = {r.device_id.raw: Discovery(POOL[i + 1]) for i, r in enumerate(fellows)}
    for hour in range(8):
        txt = decode_advert(MINE.advert(fellows, NOW + hour * HOUR, SeededRng(f"h{hour}")))
        named |= {
            d
            for d, looker in lookers.items()
            if looker.recognize(txt, {ME.device_id.raw: ME.record}, NOW + hour * HOUR) == ME.record
        }
        if hour == 0:
            assert len(named) == ADVERT_TAGS  # exactly as many as it holds
    assert named == set(lookers)


def test_an_advert_seen_again_is_not_hashed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    fellow = Discovery(POOL[2])
    txt = decode_advert(MINE.advert(RECORDS[1:5], NOW, SeededRng("again")))
    assert fellow.recognize(txt, KNOWN, NOW) == ME.record
    salts: list[bytes] = []
    for _, taggers in fellow._taggers:
        for i, tagger in enumerate(taggers):

            def counting(salt: bytes, tagger: Callable[[bytes], bytes] = tagger) -> bytes:
                salts.append(salt)
                return tagger(salt)

            taggers[i] = counting
    assert fellow.recognize(txt, KNOWN, NOW) == ME.record
    assert salts == []
    # A new advert (a new salt) is looked at afresh.
    fresh = decode_advert(MINE.advert(RECORDS[1:5], NOW, SeededRng("fresh")))
    assert fellow.recognize(fresh, KNOWN, NOW) == ME.record
    assert set(salts) == {fresh.salt}


@given(
    key=st.binary(min_size=32, max_size=32),
    advertiser=st.binary(min_size=32, max_size=32),
    hour=st.integers(0, 2**40),
    salt=salts,
)
def test_a_prepared_tag_is_the_tag(key: bytes, advertiser: bytes, hour: int, salt: bytes) -> None:
    assert discovery._tagger(key, advertiser, hour)(salt) == discovery.tag(
        key, advertiser, hour, salt
    )
