"""Discovery tags: what an advert says, so that only the devices it is for recognize it.

An advert on the LAN carries no device ID and no name: a fresh random salt
and exactly `ADVERT_TAGS` short tags, always that many. A device advertises
one tag for each device it shares a group with (the current members of its
groups, as it sees them), and random tags for the rest:

    pair key  = BLAKE2b(key = X25519(my channel secret, its channel key),
                        person `covey/v1/discpk`, data = the two device IDs, sorted)
    tag(A->B) = BLAKE2b(key = pair key of A and B, person `covey/v1/disct`,
                        data = hour number (8 bytes) || A's device ID || salt),
                cut to 8 bytes

The salt is 16 random bytes drawn afresh for every advert, so no two
adverts share a tag value: not two adverts of one device in the same hour
(a restart, a change of members), not two members of one group, not one
hour and the next. The tags are sorted, so real and random ones mix; random
and real tags look alike to anyone without the pair key.

A looker computes, for every device ever added to one of its groups, the
tag that device would advertise for it with this advert's salt (this hour
and the hours either side, for clock skew), and so learns *which* device an
advert belongs to. That costs one keyed hash per known device and hour for
every new advert (an advert seen again costs nothing: the answers are kept).

Keyed by device keys rather than by epoch keys, recognition survives any
number of rotations: devices that were apart for a week, or one that was
off while the others rotated, still find each other. A removed device stops
being recognized by a member as soon as that member learns of the removal
(its tag is no longer advertised).

With more than `ADVERT_TAGS` fellow devices, an advert carries the tags of
a random subset of them, drawn afresh for every advert, so every pair meets
within a few hours (and sooner when the other side's advert names us).

On the wire (`encode_advert`) an advert is one DNS TXT record of
`TXT_BYTES` bytes: the string `s=<salt>`, then `TAG_STRINGS` strings
`t0=`... of `TAGS_PER_STRING` tags each, every string within DNS's 255
bytes and the whole record well within one mDNS packet. `read_advert`
takes a stranger's bytes: anything but exactly that shape is no advert.

For an open invitation the tags are `Secret.advert_tags` (`core.pairing`),
padded the same way, under a salt of their own (`padded_advert`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from covey.core import Rng, crypto
from covey.core.identity import DeviceRecord, Identity
from covey.errors import CoveyError, MalformedMessage

TAG_BYTES: Final = 8
#: Random bytes of every advert that enter each of its tags.
SALT_BYTES: Final = 16
HOUR: Final = 3600
#: Hours either side of the looker's clock that still match.
SKEW_HOURS: Final = 1
#: Tags in every advert (real ones, then random ones): the most fellow devices
#: one advert can name. 120 x 8 bytes in 4 TXT strings of 30 tags.
ADVERT_TAGS: Final = 120
TAGS_PER_STRING: Final = 30
TAG_STRINGS: Final = ADVERT_TAGS // TAGS_PER_STRING
#: DNS's limit on one string of a TXT record (a one-byte length).
MAX_TXT_STRING: Final = 255
SALT_KEY: Final = b"s"
TAG_KEYS: Final = tuple(b"t%d" % i for i in range(TAG_STRINGS))
#: The whole TXT record: 1 + 2 + 16 for the salt, 4 x (1 + 3 + 240) for the
#: tags = 995 bytes (RFC 6763 6.2: keep a TXT record under 1300 bytes, so
#: that one packet on an Ethernet LAN holds it with the advert's other records).
TXT_BYTES: Final = (1 + len(SALT_KEY) + 1 + SALT_BYTES) + sum(
    1 + len(key) + 1 + TAGS_PER_STRING * TAG_BYTES for key in TAG_KEYS
)
#: Answers kept for adverts already looked at (an advert is seen again
#: whenever mDNS refreshes it).
MAX_REMEMBERED: Final = 512


@dataclass(frozen=True, slots=True)
class AdvertText:
    """What an advert says: its salt and its tags."""

    salt: bytes
    tags: frozenset[bytes]


def tag(pair_key: bytes, advertiser: bytes, hour: int, salt: bytes) -> bytes:
    """The tag `advertiser` puts in an advert salted `salt` for the other device of `pair_key`."""
    data = hour.to_bytes(8, "big") + advertiser + salt
    return crypto.blake2b(data, crypto.HashDomain.DISCOVERY_TAG, size=TAG_BYTES, key=pair_key)


def encode_advert(salt: bytes, tags: Iterable[bytes]) -> bytes:
    """The TXT record of an advert: exactly `ADVERT_TAGS` tags, in the order given."""
    listed = list(tags)
    if len(salt) != SALT_BYTES or len(listed) != ADVERT_TAGS:
        raise ValueError(f"an advert has a {SALT_BYTES}-byte salt and {ADVERT_TAGS} tags")
    if any(len(t) != TAG_BYTES for t in listed):
        raise ValueError(f"a tag is {TAG_BYTES} bytes")
    strings = [SALT_KEY + b"=" + salt]
    for i, key in enumerate(TAG_KEYS):
        chunk = listed[i * TAGS_PER_STRING : (i + 1) * TAGS_PER_STRING]
        strings.append(key + b"=" + b"".join(chunk))
    return b"".join(bytes([len(s)]) + s for s in strings)


def read_advert(txt: bytes) -> AdvertText | None:
    """What a TXT record says, if it is a covey advert; None for anything else."""
    try:
        return decode_advert(txt)
    except MalformedMessage:
        return None


def decode_advert(txt: bytes) -> AdvertText:
    """Parse a TXT record from anyone: exactly `encode_advert`'s shape, or `MalformedMessage`.

    The strings may come in any order; each key exactly once, each value
    exactly its size. Nothing is allocated before the length is checked.
    """
    if len(txt) != TXT_BYTES:
        raise MalformedMessage(f"an advert's TXT record is {TXT_BYTES} bytes")
    sizes = {SALT_KEY: SALT_BYTES} | dict.fromkeys(TAG_KEYS, TAGS_PER_STRING * TAG_BYTES)
    values: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(txt):
        if len(values) == len(sizes):
            raise MalformedMessage("an advert has more TXT strings than it should")
        length = txt[pos]
        string = txt[pos + 1 : pos + 1 + length]
        pos += 1 + length
        key, sep, value = string.partition(b"=")
        if len(string) != length or not sep or key not in sizes or key in values:
            raise MalformedMessage("an advert's TXT strings are not what covey writes")
        if len(value) != sizes[key]:
            raise MalformedMessage("an advert's TXT value has the wrong size")
        values[key] = value
    if len(values) != len(sizes):
        raise MalformedMessage("an advert lacks a TXT string")
    tags = b"".join(values[key] for key in TAG_KEYS)
    return AdvertText(
        values[SALT_KEY],
        frozenset(tags[i : i + TAG_BYTES] for i in range(0, len(tags), TAG_BYTES)),
    )


def _padded(real: list[bytes], salt: bytes, rng: Rng) -> bytes:
    """An advert of `real` tags (at most `ADVERT_TAGS`) and random ones, sorted."""
    tags = real[:ADVERT_TAGS]
    tags += [rng(TAG_BYTES) for _ in range(ADVERT_TAGS - len(tags))]
    return encode_advert(salt, sorted(tags))


def padded_advert(tags: Iterable[bytes], rng: Rng) -> bytes:
    """An advert of `tags` that do not depend on the salt, padded, under a fresh
    random salt: an open invitation's (a joiner knows its tags from the code alone)."""
    return _padded(list(tags), rng(SALT_BYTES), rng)


class Discovery:
    """One device's side of discovery: the adverts it makes, whose adverts it knows.

    Pair keys cost one X25519 each, so they are kept (by device ID and key).
    For the hour and the devices known, each device's tags are prepared up
    to the salt (`crypto.blake2b_after`); the answer for each advert
    already looked at is kept until either changes.
    """

    def __init__(self, me: Identity) -> None:
        self.me = me
        self._pair_keys: dict[tuple[bytes, bytes], bytes] = {}
        self._hour: int | None = None
        self._known: dict[bytes, DeviceRecord] = {}
        self._known_ref: Mapping[bytes, DeviceRecord] | None = None
        self._taggers: list[tuple[DeviceRecord, list[Callable[[bytes], bytes]]]] = []
        self._remembered: dict[AdvertText, DeviceRecord | None] = {}

    def pair_key(self, other: DeviceRecord) -> bytes | None:
        """The pair key with `other`; None if its channel key is unusable.

        (Records with such keys are refused when decoded; this is the
        second line, so that no record can stop discovery.)
        """
        cache_key = (other.device_id.raw, other.channel_key)
        key = self._pair_keys.get(cache_key)
        if key is None:
            try:
                shared = crypto.noise_dh(self.me.secrets.channel_secret, other.channel_key)
            except CoveyError:
                return None
            ids = b"".join(sorted([self.me.device_id.raw, other.device_id.raw]))
            key = crypto.derive_key(shared, crypto.HashDomain.DISCOVERY_PAIR, ids)
            self._pair_keys[cache_key] = key
        return key

    def advert_tags(
        self, targets: Iterable[DeviceRecord], now: int, salt: bytes, rng: Rng
    ) -> list[bytes]:
        """The real tags of an advert salted `salt` for the hour of `now`: one per
        target (a random `ADVERT_TAGS` of them when there are more)."""
        hour = now // HOUR
        me = self.me.device_id.raw
        records = {t.device_id.raw: t for t in targets if t.device_id.raw != me}
        keys = [self.pair_key(r) for _, r in sorted(records.items())]
        real = [tag(key, me, hour, salt) for key in keys if key is not None]
        if len(real) > ADVERT_TAGS:
            # A random subset each time (every advert draws again), not the
            # smallest tags: those would betray how many there were.
            real = [t for _, t in sorted((rng(8), t) for t in real)][:ADVERT_TAGS]
        return real

    def advert(self, targets: Iterable[DeviceRecord], now: int, rng: Rng) -> bytes:
        """This device's advert (its TXT record) for the hour of `now`, for `targets`."""
        salt = rng(SALT_BYTES)
        return _padded(self.advert_tags(targets, now, salt, rng), salt, rng)

    def recognize(
        self, advert: AdvertText, known: Mapping[bytes, DeviceRecord], now: int
    ) -> DeviceRecord | None:
        """The device among `known` (device ID -> record) whose advert `advert` is, if any.

        Costs one keyed hash per known device and hour (`SKEW_HOURS` either
        side) for an advert not looked at before; nothing for one seen again.
        """
        self._prepare(known, now // HOUR)
        if advert in self._remembered:
            return self._remembered[advert]
        found = None
        for record, taggers in self._taggers:
            if any(tagger(advert.salt) in advert.tags for tagger in taggers):
                found = record
                break
        while len(self._remembered) >= MAX_REMEMBERED:  # forget the oldest
            del self._remembered[next(iter(self._remembered))]
        self._remembered[advert] = found
        return found

    def _prepare(self, known: Mapping[bytes, DeviceRecord], hour: int) -> None:
        """Each known device's tags for us, up to the salt, for `hour` and its neighbours."""
        if known is self._known_ref and hour == self._hour:
            return
        self._known_ref = known
        me = self.me.device_id.raw
        mine = {d: r for d, r in known.items() if d != me}
        if hour == self._hour and mine == self._known:
            return
        self._hour, self._known = hour, mine
        self._remembered.clear()
        hours = sorted(range(hour - SKEW_HOURS, hour + SKEW_HOURS + 1), key=lambda h: abs(h - hour))
        self._taggers = []
        for device, record in sorted(mine.items()):
            key = self.pair_key(record)
            if key is not None:
                self._taggers.append((record, [_tagger(key, device, h) for h in hours]))


def _tagger(pair_key: bytes, advertiser: bytes, hour: int) -> Callable[[bytes], bytes]:
    """`salt -> tag(pair_key, advertiser, hour, salt)`, prepared up to the salt."""
    data = hour.to_bytes(8, "big") + advertiser
    return crypto.blake2b_after(data, crypto.HashDomain.DISCOVERY_TAG, size=TAG_BYTES, key=pair_key)
