"""Relays in the simulator: a change made while a device is off reaches it through a relay alone.

The world: Ana's laptop, phone and tablet pair at home (home 0), the
laptop names a relay for the group, and the devices announce their inboxes
there. Then the phone goes to another home (home 1), never linked to home
0, and is switched off. The laptop removes the lost tablet (a new epoch
without it) and is switched off too. When the phone comes back, nothing
but the relay connects it to anyone: it must learn of the removal and hold
the new key from its inbox there. A lying relay (drops, replays, reorders,
tampers) may delay that, never mislead the phone: the invariants (keys
agree, secrecy, integrity, convergence) hold after every step.
"""

from __future__ import annotations

from functools import partial

import pytest

from covey.core.group import Group
from covey.core.node import io
from covey.sim.invariants import Invariants
from covey.sim.network import QUIET
from covey.sim.relay import HONEST, Lies, SimRelay
from covey.sim.users import HOUR, Users
from covey.sim.world import EPOCH, Device, World

MINUTE = 60.0


def household(seed: int, lies: Lies = HONEST) -> tuple[World, Users, SimRelay, list[Device]]:
    world = World(seed, 2, QUIET)
    invariants = Invariants(world)
    users = Users(world, invariants)
    relay = world.add_relay("relay-0.sim", lies)
    devices = [world.add_device(name, "ana", 0) for name in ("laptop", "phone", "tablet")]
    laptop, phone, tablet = devices
    for device in devices:
        world.at(EPOCH, partial(world.set_online, device, True))
    world.at(EPOCH + MINUTE, lambda: users.create(laptop))
    world.at(EPOCH + 2 * MINUTE, lambda: users.pair(laptop, phone))
    world.at(EPOCH + 4 * MINUTE, lambda: users.pair(laptop, tablet))
    world.at(
        EPOCH + 8 * MINUTE,
        lambda: world.command(laptop, io.AddRelay("family", relay.link), lambda r: None),
    )
    return world, users, relay, devices


def removed_while_away(
    world: World, users: Users, devices: list[Device], *, settle: float, until: float
) -> tuple[bytes, Group | None]:
    """The phone goes to home 1 and off; at 30 minutes the laptop removes the
    tablet; at `settle` the laptop goes off and the phone comes back, alone with
    the relay, until `until`. (The removal's epoch, the phone's replica.)"""
    laptop, phone, tablet = devices
    gid = group_id(laptop)
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + settle)
    epoch = world.group_of(laptop, gid).state.current_epoch.id  # type: ignore[union-attr]
    world.set_online(laptop, False)
    world.set_online(phone, True)
    world.run_until(EPOCH + until)
    return epoch, world.group_of(phone, gid)


def group_id(device: Device) -> bytes:
    assert device.node is not None
    (only,) = device.node.groups
    return only


def test_a_removal_reaches_a_device_that_was_off_through_the_relay_alone() -> None:
    world, users, relay, (laptop, phone, tablet) = household(1)
    world.run_until(EPOCH + 20 * MINUTE)
    gid = group_id(laptop)
    state = world.group_of(laptop, gid).state  # type: ignore[union-attr]
    assert list(state.relays) == [relay.identity.public]
    # Every member announced its inbox at the relay (and the others know it).
    for device in (laptop, phone, tablet):
        assert state.inbox_of(device.id, relay.identity.public) is not None, device.name

    world.network.move(phone.index, 1)  # never linked to home 0 from now on
    world.set_online(phone, False)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + 40 * MINUTE)
    after = world.group_of(laptop, gid)
    assert after is not None
    assert tablet.id not in after.state.members
    epoch = after.state.current_epoch.id
    world.set_online(laptop, False)
    assert world.group_of(phone, gid).state.current_epoch.id != epoch  # type: ignore[union-attr]

    world.run_until(EPOCH + 2 * HOUR)
    world.set_online(phone, True)  # alone at home 1: only the relay reaches it
    world.run_until(EPOCH + 2 * HOUR + 5 * MINUTE)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id not in mine.state.members
    assert mine.state.current_epoch.id == epoch
    assert epoch in mine.keys  # it holds the new key
    # `covey status` on the phone: it last synced with the laptop through the relay.
    name, address, _ = phone.store.peers[laptop.id]
    assert (name, address) == ("laptop", "relay relay-0.sim:4433")


@pytest.mark.parametrize(
    "lies",
    [
        Lies(replay=0.7, reorder=0.7),
        Lies(tamper=0.5),
        Lies(drop=0.5),
        Lies(drop=0.3, replay=0.3, reorder=0.3, tamper=0.3),
    ],
    ids=["replays-and-reorders", "tampers", "drops", "all-of-it"],
)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_lying_relay_delays_but_never_misleads(lies: Lies, seed: int) -> None:
    """Safety under every lie (the invariants run after each step); and where the
    relay only replays and reorders, the phone still gets there."""
    world, users, relay, devices = household(seed, lies)
    world.run_until(EPOCH + 20 * MINUTE)
    tablet = devices[2]
    epoch, mine = removed_while_away(world, users, devices, settle=40 * MINUTE, until=3 * HOUR)
    assert mine is not None
    # Never misled: whatever it holds is what the laptop signed, and keys agree
    # (the invariants); a removed device is never taken back as a member.
    if mine.state.current_epoch.id == epoch:
        assert tablet.id not in mine.state.members
        assert epoch in mine.keys
    if not (lies.drop or lies.tamper):
        assert mine.state.current_epoch.id == epoch
    told = {kind for kind in ("drop", "replay", "reorder", "tamper") if getattr(lies, kind)}
    assert set(relay.lied) & told  # (the run saw some of its lies, or it proves nothing)


def pair_through_relay(world: World, relay: SimRelay, inviter: Device, joiner: Device) -> dict:
    """The inviter shows a code; the joiner types it with `--relay LINK`. The replies."""
    replies: dict = {}

    def on_join(reply: io.Reply) -> None:
        replies["join"] = reply

    def on_invite(reply: io.Reply) -> None:
        if reply.data.get("event") == "invitation":
            replies["invitation"] = reply.data
            join = io.Join(code=reply.data["code"], timeout=60, relay=relay.link)
            world.at(world.now + 10, lambda: world.command(joiner, join, on_join))
        elif reply.final:
            replies["invite"] = reply

    world.command(inviter, io.Invite("family", "member", 600), on_invite)
    return replies


def apart(seed: int, *, tablet: bool = False) -> tuple[World, Users, SimRelay, list[Device]]:
    """Ana's laptop at home (with her tablet paired there, if asked), her phone on
    another network from the start; the laptop's group has a relay. At 6 minutes."""
    world = World(seed, 2, QUIET)
    users = Users(world, Invariants(world))
    relay = world.add_relay("relay-0.sim")
    laptop = world.add_device("laptop", "ana", 0)
    devices = [laptop, *([world.add_device("tablet", "ana", 0)] if tablet else [])]
    phone = world.add_device("phone", "ana", 1)  # never on home 0's network
    for device in (*devices, phone):
        world.at(EPOCH, partial(world.set_online, device, True))
    world.at(EPOCH + MINUTE, lambda: users.create(laptop))
    if tablet:
        world.at(EPOCH + 2 * MINUTE, lambda: users.pair(laptop, devices[1]))
    world.at(
        EPOCH + 4 * MINUTE,
        lambda: world.command(laptop, io.AddRelay("family", relay.link), lambda r: None),
    )
    world.run_until(EPOCH + 6 * MINUTE)
    return world, users, relay, [*devices, phone]


def test_a_device_on_another_network_pairs_through_the_relay_then_gets_a_removal() -> None:
    """The acceptance story: invite with a code, join from another home through the
    relay (both online), then a removal made while the joiner is off reaches it
    through the relay alone."""
    world, users, relay, (laptop, tablet, phone) = apart(7, tablet=True)
    assert not world.network.reachable(laptop.index, phone.index)
    replies = pair_through_relay(world, relay, laptop, phone)
    world.run_until(EPOCH + 8 * MINUTE)
    assert replies["invitation"]["relays"] == [relay.link]
    joined = replies["join"]
    assert joined.error is None, joined.data
    assert joined.data["event"] == "joined"
    assert replies["invite"].error is None
    gid = group_id(laptop)
    assert phone.id in world.group_of(laptop, gid).state.members  # type: ignore[union-attr]
    # The words both screens show are the same (the same session, end to end).
    assert joined.data["pairing_words"] == replies["invite"].data["pairing_words"]

    # The phone announces its inbox and tells the laptop through the relay.
    world.run_until(EPOCH + 12 * MINUTE)
    state = world.group_of(laptop, gid).state  # type: ignore[union-attr]
    assert state.inbox_of(phone.id, relay.identity.public) is not None

    world.set_online(phone, False)
    world.at(EPOCH + 13 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + 15 * MINUTE)
    epoch = world.group_of(laptop, gid).state.current_epoch.id  # type: ignore[union-attr]
    world.set_online(laptop, False)
    world.set_online(phone, True)
    world.run_until(EPOCH + 20 * MINUTE)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id not in mine.state.members
    assert mine.state.current_epoch.id == epoch
    assert epoch in mine.keys


def test_what_a_relay_sees_identifies_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, item 2: after a whole scenario (add a relay, pair through it, a
    removal delivered through it), nothing the relay received in the clear (every
    request, decrypted from its channel) or stored holds a device ID, a key, a
    device's record, a name, the group's ID or name, or an epoch key."""
    from covey.relay import requests

    seen: list[bytes] = []
    read = requests.read_request

    def recording(data: bytes, limits):  # type: ignore[no-untyped-def]
        seen.append(bytes(data))
        return read(data, limits)

    monkeypatch.setattr(requests, "read_request", recording)
    world, users, relay, (laptop, tablet, phone) = apart(7, tablet=True)
    replies = pair_through_relay(world, relay, laptop, phone)
    world.run_until(EPOCH + 12 * MINUTE)
    assert replies["join"].error is None
    world.at(EPOCH + 13 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + 20 * MINUTE)
    gid = group_id(laptop)

    stored = [
        data
        for holder in (*relay.store.inboxes.values(), *relay.store.segments.values())
        for data, _ in holder.items.values()
    ]
    assert seen
    assert stored
    haystack = b"\0".join(seen + stored)
    assert relay.access in haystack  # (the scan sees the clear: devices present this)
    needles = [gid, b"family"]
    for device in (laptop, tablet, phone):
        me = device.me
        needles += [
            me.device_id.raw,
            me.record.signing_key,
            me.record.box_key,
            me.record.channel_key,
            me.record_bytes,
            device.name.encode(),
        ]
        group = world.group_of(device, gid)
        if group is not None:
            needles += list(group.keys.values())
    assert len(needles) > 20
    for needle in needles:
        assert needle not in haystack, needle


def test_a_change_reaches_a_member_through_the_mirror_alone() -> None:
    """The group's mirror: every member writes its own ops into the segment of
    the epoch they belong to (and a rotation into the old epoch's too), and
    reads the newest segments it can. Here every inbox put is refused, so the
    phone, away, can get the laptop's removal of the tablet only from there."""
    world, users, relay, devices = household(1, Lies(refuse=1.0))
    world.run_until(EPOCH + 20 * MINUTE)
    tablet = devices[2]
    epoch, mine = removed_while_away(world, users, devices, settle=35 * MINUTE, until=40 * MINUTE)
    assert mine is not None
    assert mine.state.current_epoch.id == epoch
    assert epoch in mine.keys
    assert tablet.id not in mine.state.members
    assert relay.lied["refuse"] > 0  # (nothing reached its inbox)


def test_a_device_joins_with_a_link_that_names_the_relay() -> None:
    """The QR code's link carries the relay (`covey:join:...?relay=...`): the joiner
    needs nothing else. (A walkthrough found the welcome lost: the inviter's
    rendezvous closed itself before the welcome was routed through it.)"""
    world, _, relay, (laptop, phone) = apart(7)
    replies: dict = {}

    def on_invite(reply: io.Reply) -> None:
        if reply.data.get("event") == "invitation":
            link = reply.data["link"]
            assert link.endswith("?relay=" + relay.link)
            join = io.Join(link=link, timeout=60)
            world.at(
                world.now + 10,
                lambda: world.command(phone, join, lambda r: replies.__setitem__("join", r)),
            )
        elif reply.final:
            replies["invite"] = reply

    world.command(laptop, io.Invite("family", "member", 600), on_invite)
    world.run_until(EPOCH + 10 * MINUTE)
    assert replies["invite"].error is None
    assert replies["join"].error is None, replies["join"].data
    assert replies["join"].data["pairing_words"] == replies["invite"].data["pairing_words"]
    assert group_id(phone) == group_id(laptop)
