"""Discovery tags: what an advert says, so that only members recognize it.

An advert on the LAN carries no device ID and no name: only short tags. For
each group, a tag is BLAKE2b keyed by an epoch key of the group (domain
`covey/v1/disct`) over the current hour's number, cut to 8 bytes. A device
advertises the tags of the current epoch and of the `EPOCHS_BACK` before it
that it holds, so members that have not yet seen the latest rotation still
recognize it; a looker checks the hours either side too, for clock skew.
Tags change every hour and with every rotation, so a stranger cannot link
adverts from one hour to the next, and a removed device stops recognizing a
group at its first rotation after the removal.

For an open invitation the tag is `Secret.tag` (`core.pairing`).
"""

from __future__ import annotations

from typing import Final

from covey.core import crypto
from covey.core.group import Group

TAG_BYTES: Final = 8
HOUR: Final = 3600
#: Earlier epochs (besides the current) whose tags a device advertises.
EPOCHS_BACK: Final = 2
#: Hours either side of the looker's clock that still match.
SKEW_HOURS: Final = 1
#: Tags in one advert, at most (TXT records are small).
MAX_TAGS: Final = 24


def _tag(epoch_key: bytes, hour: int) -> bytes:
    return crypto.blake2b(
        hour.to_bytes(8, "big"), crypto.HashDomain.DISCOVERY_TAG, size=TAG_BYTES, key=epoch_key
    )


def _recent_keys(group: Group) -> list[bytes]:
    epochs = group.state.epochs[-(EPOCHS_BACK + 1) :]
    return [group.keys[e.id] for e in epochs if e.id in group.keys]


def advert_tags(group: Group, now: int) -> list[bytes]:
    """The tags this device puts in its advert for `group` at time `now`."""
    hour = now // HOUR
    return [_tag(key, hour) for key in _recent_keys(group)]


def recognizes(group: Group, tags: list[bytes], now: int) -> bool:
    """Whether an advert with `tags` comes from a device that holds a recent key of `group`."""
    hour = now // HOUR
    mine = {
        _tag(key, h)
        for key in _recent_keys(group)
        for h in range(hour - SKEW_HOURS, hour + SKEW_HOURS + 1)
    }
    return any(crypto.equal(tag, candidate) for tag in tags for candidate in mine)
