"""A dealing of recovery shares in the log (PROTOCOL.md 19.1): building the `deal`
op's body, and a holder device opening its own share.

The edge deals (`covey.recoverydeal`: shamir-mnemonic draws its randomness
inside) and hands over a `shares.Dealt`; this module turns it into the op:
one slot per holder person, each share sealed to every member device of
that person (`crypto.seal_anonymous`, of `[group ID, nonce, member
index, mnemonic]`, so a copy moved to another group, dealing
or slot does not open as one), the paper slots with their digests only,
and the recovery record, whose keys only the secret gives. Nothing of the
secret or of a paper share is kept: the caller prints the paper words once
and drops the `Dealt`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from covey.core import Rng, crypto, encoding, shares, wire
from covey.core.identity import DeviceRecord, DeviceSecrets, Identity
from covey.core.membership import Dealing, GroupState
from covey.core.ops import RECOVERY_NAME, Deal, Slot
from covey.errors import InvalidArgument, MalformedMessage, NotAllowed

#: Limits for an opened copy: [group, nonce, index, mnemonic].
_COPY_LIMITS: Final = encoding.Limits(
    total=1024, bin_len=32, str_len=shares.MAX_TEXT, array_len=4, map_len=0, depth=1, objects=5
)


def recovery_identity(secret: bytes, nonce: bytes, now: int) -> Identity:
    """The recovery record of a dealing, with its keys: what K shares together give.

    Its three keys derive from the secret over the nonce (`shares`), so the
    record a claimant rebuilds is the one the deal op holds, down to its
    signature (Ed25519 signs deterministically).
    """
    keys = DeviceSecrets(
        signing_seed=shares.signing_seed(secret, nonce),
        box_secret=shares.box_secret(secret, nonce),
        channel_secret=shares.channel_secret(secret, nonce),
    )
    record = DeviceRecord(
        name=RECOVERY_NAME,
        signing_key=crypto.signing_public_key(keys.signing_seed),
        box_key=crypto.x25519_public_key(keys.box_secret),
        channel_key=crypto.x25519_public_key(keys.channel_secret),
        created=now,
    )
    return Identity(
        wire.seal_envelope(record, record.device_id.raw, keys.signing_seed), record, keys
    )


@dataclass(frozen=True)
class Plan:
    """Who holds what in a new dealing: the holder persons, in slot order, and paper."""

    holders: tuple[bytes, ...]
    paper: int
    threshold: int
    veto: int
    #: Every holder person's member devices (their box keys), at the plan's state.
    devices: dict[bytes, list[DeviceRecord]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.holders) + self.paper


def plan(
    state: GroupState,
    threshold: int,
    paper: int,
    veto: int,
    holders: Sequence[bytes] | None = None,
) -> Plan:
    """The dealing `covey recovery setup` asks for, checked; one-line errors otherwise.

    `holders` are person IDs (default: every person with a member device,
    most senior first): one share each, however many devices they have
    (PROTOCOL.md 19.1, H3).
    """
    people = state.people
    chosen = list(people) if holders is None else list(dict.fromkeys(holders))
    for person in chosen:
        if person not in people:
            raise InvalidArgument("a holder must be a person with a device in the group")
    if paper < 0:
        raise InvalidArgument("the number of paper shares cannot be negative")
    if paper >= threshold:
        raise InvalidArgument(
            f"with a threshold of {threshold}, at most {threshold - 1} paper shares:"
            " paper alone must never recover"
        )
    shares.check_counts(threshold, len(chosen) + paper)
    devices = {p: [state.members[d].record for d in people[p]] for p in chosen}
    return Plan(tuple(chosen), paper, threshold, veto, devices)


def deal_body(
    group: bytes,
    dealt: shares.Dealt,
    planned: Plan,
    now: int,
    rng: Rng,
) -> tuple[Deal, list[shares.Share]]:
    """The `deal` op's body for `dealt`, and the paper shares (to print once).

    Slot i holds the share of member index i: holder persons first, in the
    plan's order, then paper.
    """
    if dealt.threshold != planned.threshold or len(dealt.mnemonics) != planned.count:
        raise NotAllowed("the shares dealt do not match the dealing asked for")
    parsed = [
        shares.parse_words(words, label=f"share {i}")
        for i, words in enumerate(dealt.mnemonics, start=1)
    ]
    parsed.sort(key=lambda share: share.member_index)
    slots: list[Slot] = []
    paper: list[shares.Share] = []
    for position, share in enumerate(parsed):
        digest = shares.share_digest(dealt.nonce, share)
        if position < len(planned.holders):
            person = planned.holders[position]
            copies = sorted(
                (
                    record.device_id.raw,
                    seal_copy(group, dealt.nonce, share, record, rng),
                )
                for record in planned.devices[person]
            )
            slots.append(Slot(share.member_index, person, digest, tuple(copies)))
        else:
            slots.append(Slot(share.member_index, None, digest, ()))
            paper.append(share)
    recovery = recovery_identity(dealt.secret, dealt.nonce, now)
    body = Deal(
        dealt.nonce,
        dealt.threshold,
        recovery.record,
        recovery.record_bytes,
        tuple(slots),
        planned.veto,
    )
    return body, paper


def seal_copy(group: bytes, nonce: bytes, share: shares.Share, to: DeviceRecord, rng: Rng) -> bytes:
    """A holder device's copy of a share: sealed to it alone, bound to its place.

    A sealed box from a fresh key pair, not a box from the dealer's key: a
    box opens with either end's secret, so the dealer's device (its store,
    a backup of it) would reopen every holder's share from any copy of the
    log, and "the dealer keeps nothing" would be false (review of the
    dealing, finding 2). The deal op's signature says who made the copy.
    """
    inner = encoding.encode([group, nonce, share.member_index, share.mnemonic()])
    return crypto.seal_anonymous(to.box_key, inner, rng)


def open_share(state: GroupState, dealing: Dealing, me: Identity) -> shares.Share:
    """This device's share of `dealing`, opened and checked against the slot's digest.

    NotAllowed if this device holds no copy; MalformedMessage if the copy
    does not open, is not bound to this group, dealing and slot, or is not
    the share the slot's digest names.
    """
    device = me.device_id.raw
    index = dealing.holders.get(device)
    if index is None:
        raise NotAllowed("this device holds no share of the group's dealing")
    slot = next(s for s in dealing.deal.slots if s.index == index)
    sealed = dict(slot.copies)[device]
    inner = crypto.open_anonymous(me.secrets.box_secret, sealed)
    value = encoding.decode(inner, _COPY_LIMITS)
    if (
        not isinstance(value, list)
        or len(value) != 4
        or value[:3] != [state.group_id, dealing.deal.nonce, index]
        or not isinstance(value[3], str)
    ):
        raise MalformedMessage("the sealed share is not this device's share of this dealing")
    share = shares.parse_words(value[3], label="the share sealed to this device")
    digest = shares.share_digest(dealing.deal.nonce, share)
    if share.member_index != index or not crypto.equal(digest, slot.digest):
        raise MalformedMessage("the sealed share is not the one the dealing lists")
    return share
