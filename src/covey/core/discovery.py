"""Discovery tags: what an advert says, so that only the devices it is for recognize it.

An advert on the LAN carries no device ID and no name: only `ADVERT_TAGS`
short tags, always that many. A device advertises one tag for each device
it shares a group with (the current members of its groups, as it sees
them), and random tags for the rest:

    pair key  = BLAKE2b(key = X25519(my channel secret, its channel key),
                        person `covey/v1/discpk`, data = the two device IDs, sorted)
    tag(A->B) = BLAKE2b(key = pair key of A and B, person `covey/v1/disct`,
                        data = hour number (8 bytes) || A's device ID), cut to 8 bytes

The tags are sorted, so real and random ones mix. A looker computes, for
every device ever added to one of its groups, the tag that device would
advertise for it (this hour and the hours either side, for clock skew), and
so learns *which* device an advert belongs to. Tags change every hour, so a
stranger cannot link adverts from one hour to the next, nor tell how many
devices an advert is for. They name the advertiser (the ID is in the tag's
data), so two devices of one group advertise different tags for each other.

Keyed by device keys rather than by epoch keys, recognition survives any
number of rotations: devices that were apart for a week, or one that was
off while the others rotated, still find each other. A removed device stops
being recognized by a member as soon as that member learns of the removal
(its tag is no longer advertised).

With more than `ADVERT_TAGS` fellow devices, an advert carries the tags of
a random subset of them, drawn afresh every hour, so every pair meets
within a few hours. (Not the smallest tags: a stranger could tell from
their spread how many there were.)

For an open invitation the tags are `Secret.advert_tags` (`core.pairing`),
padded the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from covey.core import Rng, crypto
from covey.core.identity import DeviceRecord, Identity
from covey.errors import CoveyError

TAG_BYTES: Final = 8
HOUR: Final = 3600
#: Hours either side of the looker's clock that still match.
SKEW_HOURS: Final = 1
#: Tags in every advert (real ones, then random ones): 192 bytes, one TXT string.
ADVERT_TAGS: Final = 24


def tag(pair_key: bytes, advertiser: bytes, hour: int) -> bytes:
    """The tag `advertiser` puts in its advert for the other device of `pair_key`."""
    data = hour.to_bytes(8, "big") + advertiser
    return crypto.blake2b(data, crypto.HashDomain.DISCOVERY_TAG, size=TAG_BYTES, key=pair_key)


def padded(real: Iterable[bytes], rng: Rng) -> tuple[bytes, ...]:
    """`real` tags and random ones, `ADVERT_TAGS` in all, sorted (so they mix)."""
    tags = list(real)[:ADVERT_TAGS]
    tags += [rng(TAG_BYTES) for _ in range(ADVERT_TAGS - len(tags))]
    return tuple(sorted(tags))


class Discovery:
    """One device's side of discovery: the tags it advertises, whose adverts it knows.

    Pair keys cost one X25519 each, so they are kept (by device ID and key);
    the tags a looker matches are kept for the current hour.
    """

    def __init__(self, me: Identity) -> None:
        self.me = me
        self._pair_keys: dict[tuple[bytes, bytes], bytes] = {}
        self._lookup: (
            tuple[int, frozenset[tuple[bytes, bytes]], dict[bytes, DeviceRecord]] | None
        ) = None

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

    def advert_tags(self, targets: Iterable[DeviceRecord], now: int, rng: Rng) -> tuple[bytes, ...]:
        """The tags of this device's advert for the hour of `now`, for `targets`."""
        hour = now // HOUR
        me = self.me.device_id.raw
        records = {t.device_id.raw: t for t in targets if t.device_id.raw != me}
        keys = [self.pair_key(r) for _, r in sorted(records.items())]
        real = [tag(key, me, hour) for key in keys if key is not None]
        if len(real) > ADVERT_TAGS:
            # A random subset each time (adverts are made afresh every hour),
            # not the smallest tags: those would betray how many there were.
            real = [t for _, t in sorted((rng(8), t) for t in real)][:ADVERT_TAGS]
        return padded(real, rng)

    def recognize(
        self, tags: Iterable[bytes], known: Iterable[DeviceRecord], now: int
    ) -> DeviceRecord | None:
        """The device among `known` whose advert carries `tags`, if any."""
        hour = now // HOUR
        known_ids = {r.device_id.raw: r for r in known if r.device_id.raw != self.me.device_id.raw}
        stamp = frozenset((d, r.channel_key) for d, r in known_ids.items())
        if self._lookup is None or self._lookup[0] != hour or self._lookup[1] != stamp:
            table: dict[bytes, DeviceRecord] = {}
            for device, record in sorted(known_ids.items()):
                key = self.pair_key(record)
                if key is None:
                    continue
                for h in range(hour - SKEW_HOURS, hour + SKEW_HOURS + 1):
                    table[tag(key, device, h)] = record
            self._lookup = (hour, stamp, table)
        table = self._lookup[2]
        for candidate in tags:
            found = table.get(bytes(candidate))
            if found is not None:
                return found
        return None
