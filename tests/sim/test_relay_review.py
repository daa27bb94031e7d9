"""The adversarial review of the node's relay path (2026-12-03), each finding replayed.

* A member added while another was away reached it only in items signed by
  the new member, which the away member could not check and dropped: it
  never got the key (now: the ops inside introduce the sender).
* One put a relay lost, or that expired while its member was away, was
  taken as delivered for good: later puts carried only newer ops (now:
  only a direct sync or the member's own ops confirm; the rest is put
  again every `REDELIVER_EVERY`, and items live as long as the relay
  keeps anything).
* A used invitation kept polling its rendezvous until it expired.
* A relay that restarted during an invitation ended its rendezvous for good.
"""

from __future__ import annotations

import contextlib
from functools import partial

import pytest

from covey.core import crypto, relayitems, sync, wire
from covey.core.node import io
from covey.core.node.relays import REDELIVER_EVERY, segment_of, sender_tokens
from covey.core.node.tunnel import Rendezvous
from covey.core.ops import Remove
from covey.errors import RelayRefused, RelaySegmentFull
from covey.relay import session, store
from covey.sim.invariants import Invariants
from covey.sim.network import QUIET
from covey.sim.relay import HONEST, Lies
from covey.sim.users import HOUR, Users
from covey.sim.world import DAY, EPOCH, Device, World
from tests.sim.test_relays import apart, group_id, household, pair_through_relay

MINUTE = 60.0


def three_at_home(seed: int = 1) -> tuple[World, Users, object, list[Device], bytes]:
    """Laptop, phone and tablet paired at home, with a relay named for the group."""
    world, users, relay, devices = household(seed)
    laptop = devices[0]
    world.run_until(EPOCH + 20 * MINUTE)
    assert laptop.node is not None
    (gid,) = laptop.node.groups
    return world, users, relay, devices, gid


def epoch_of(world: World, device: Device, gid: bytes) -> bytes:
    group = world.group_of(device, gid)
    assert group is not None
    return group.state.current_epoch.id


def test_a_member_added_while_another_was_away_reaches_it_through_the_relay() -> None:
    world = World(1, 2, QUIET)
    users = Users(world, Invariants(world))
    relay = world.add_relay("relay-0.sim")
    laptop, phone, tablet = (world.add_device(n, "ana", 0) for n in ("laptop", "phone", "tablet"))
    for device in (laptop, phone):
        world.at(EPOCH, partial(world.set_online, device, True))
    world.at(EPOCH + MINUTE, lambda: users.create(laptop))
    world.at(EPOCH + 2 * MINUTE, lambda: users.pair(laptop, phone))
    world.at(
        EPOCH + 8 * MINUTE,
        lambda: world.command(laptop, io.AddRelay("family", relay.link), lambda r: None),
    )
    world.run_until(EPOCH + 20 * MINUTE)
    assert laptop.node is not None
    (gid,) = laptop.node.groups
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.set_online(tablet, True)
    users.inviter_leaves = True  # the laptop pairs a tablet as admin, and is closed at once
    world.at(EPOCH + 25 * MINUTE, lambda: users.pair(laptop, tablet, role="admin"))
    world.run_until(EPOCH + 28 * MINUTE)
    assert laptop.node is None
    world.at(EPOCH + 29 * MINUTE, lambda: users.rotate(tablet))  # a change only the tablet has
    world.run_until(EPOCH + 35 * MINUTE)
    epoch = epoch_of(world, tablet, gid)
    world.set_online(phone, True)  # alone at home 1: only the relay reaches it
    world.run_until(EPOCH + 50 * MINUTE)
    assert laptop.node is None
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id in mine.state.members
    assert mine.state.current_epoch.id == epoch
    assert epoch in mine.keys


def test_a_put_the_relay_dropped_is_put_again() -> None:
    world, users, relay, (laptop, phone, tablet), gid = three_at_home()
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.set_online(tablet, False)
    relay.lies = Lies(drop=1.0)  # type: ignore[attr-defined]  # it loses one change's puts ...
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + 35 * MINUTE)
    relay.lies = HONEST  # type: ignore[attr-defined]  # ... and is honest from then on
    assert relay.lied["drop"] >= 1  # type: ignore[attr-defined]  # (inbox and mirror puts)
    world.at(EPOCH + 40 * MINUTE, lambda: users.rotate(laptop))
    world.run_until(EPOCH + 45 * MINUTE)
    world.set_online(phone, True)
    world.run_until(EPOCH + 2 * HOUR)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id in mine.state.members  # (not yet: the removal was lost)
    world.run_until(EPOCH + 35 * MINUTE + REDELIVER_EVERY + 10 * MINUTE)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id not in mine.state.members
    assert mine.state.current_epoch.id == epoch_of(world, laptop, gid)


def test_a_member_away_for_fifteen_days_still_gets_the_removal() -> None:
    world, users, _, (laptop, phone, tablet), gid = three_at_home()
    world.relay_every = 6 * HOUR  # (fewer fetches: a shorter run)
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.set_online(tablet, False)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.at(EPOCH + 15 * DAY, lambda: users.rotate(laptop))  # the laptop up all along
    world.run_until(EPOCH + 15 * DAY + 10 * MINUTE)
    world.set_online(phone, True)
    world.run_until(EPOCH + 15 * DAY + 8 * HOUR)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert tablet.id not in mine.state.members
    assert mine.state.current_epoch.id == epoch_of(world, laptop, gid)


def test_a_used_invitation_stops_waiting_at_the_relay() -> None:
    world, _, relay, (laptop, phone) = apart(7)
    replies = pair_through_relay(world, relay, laptop, phone)  # (the invitation lasts 600 s)
    world.run_until(EPOCH + 8 * MINUTE)
    assert replies["join"].error is None
    assert replies["invite"].error is None
    assert laptop.node is not None
    assert phone.node is not None
    world.run_until(EPOCH + 9 * MINUTE)
    for node in (laptop.node, phone.node):
        assert not [x for x in node.links.values() if isinstance(x, Rendezvous)]


def test_an_invitation_waits_at_the_relay_again_after_it_restarted() -> None:
    world, _, relay, (laptop, phone) = apart(7)
    replies: dict = {}

    def on_invite(reply: io.Reply) -> None:
        if reply.data.get("event") == "invitation":
            replies["invitation"] = reply.data
        elif reply.final:
            replies["invite"] = reply

    world.command(laptop, io.Invite("family", "member", 3600), on_invite)
    world.run_until(EPOCH + 7 * MINUTE)
    world.set_relay_up(relay, False)  # the relay restarts
    world.run_until(EPOCH + 7 * MINUTE + 5)
    world.set_relay_up(relay, True)
    world.run_until(EPOCH + 8 * MINUTE)
    join = io.Join(code=replies["invitation"]["code"], timeout=120, relay=relay.link)
    world.command(phone, join, lambda r: replies.__setitem__("join", r))
    world.run_until(EPOCH + 12 * MINUTE)
    assert replies["join"].error is None, replies["join"].data
    assert phone.node is not None
    assert phone.node.groups


# --- the second review (group commit and delivery confirmation) ---------------------


@pytest.mark.parametrize(("size_index", "count"), [(6, 16), (3, 256)], ids=["4MiB", "64KiB"])
def test_a_member_cannot_block_another_members_inbox(size_index: int, count: int) -> None:
    """Items whose ops wait for parents were left at the relay for good: a member
    holding a write token filled another's inbox with them (64 MiB of 4 MiB
    items, or every page of 64 KiB ones) and honest puts were refused. Now each
    is left once, within a bound, then acknowledged."""
    world, users, relay, (laptop, phone, tablet), gid = three_at_home()
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    relay.lies = Lies(drop=1.0)  # type: ignore[attr-defined]  # the laptop's puts are lost ...
    world.at(EPOCH + 30 * MINUTE, lambda: users.rotate(laptop))
    world.at(EPOCH + 32 * MINUTE, lambda: users.rotate(laptop))
    world.run_until(EPOCH + 40 * MINUTE)
    relay.lies = HONEST  # type: ignore[attr-defined]  # ... and it is honest from now on
    # The tablet (it has both rotations) puts items that hold only the second,
    # its parent withheld, padded large, into the phone's inbox with a valid token.
    group = world.group_of(tablet, gid)
    assert group is not None
    me = tablet.me
    box = group.state.inbox_of(phone.id, relay.identity.public)  # type: ignore[attr-defined]
    assert box is not None
    last = [op for op in group.log.order if op.author == laptop.id][-1]
    body = relayitems.ItemBody(gid, phone.id, "ops", sync.ops_messages(gid, [last])[0])
    envelope = wire.seal_envelope(body, me.device_id.raw, me.secrets.signing_seed)
    size = relayitems.ITEM_SIZES[size_index]
    padding = size - 4 - len(envelope) - relayitems.INBOX_OVERHEAD
    plain = len(envelope).to_bytes(4, "big") + envelope + bytes(padding)
    box_key = group.state.members[phone.id].record.box_key
    put = 0
    for _ in range(count):
        item = crypto.seal_anonymous(box_key, plain, tablet.rng)
        for token in sender_tokens(group, phone.id, box):  # (the one the phone registered)
            action = store.InboxPut(box, session.writer_hash(token), item, int(world.now + DAY))
            with contextlib.suppress(RelayRefused):
                relay.store.execute(action, int(world.now))  # type: ignore[attr-defined]
                put += 1
                break
    assert put >= 16
    world.set_online(phone, True)
    world.run_until(EPOCH + 35 * MINUTE + REDELIVER_EVERY + 2 * HOUR)
    assert epoch_of(world, phone, gid) == epoch_of(world, laptop, gid)
    assert not relay.store.inboxes[box].items  # type: ignore[attr-defined]


def test_a_device_removed_while_away_learns_it_through_the_relay() -> None:
    """The removal goes into the mirror segment of the epoch the removed device
    holds: it reads it there and stops (before the mirror, it retried refused
    puts every minute for as long as it ran: 5,760 refusals a day)."""
    world, users, _, (laptop, phone, _), gid = three_at_home()
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, phone))
    world.run_until(EPOCH + 40 * MINUTE)
    world.set_online(laptop, False)
    world.set_online(phone, True)  # alone: only the relay reaches it
    world.run_until(EPOCH + 50 * MINUTE)
    mine = world.group_of(phone, gid)
    assert mine is not None
    assert phone.id not in mine.state.members
    assert "removed" in {event for _, i, event, _ in world.notices if i == phone.index}


def test_puts_a_member_refuses_back_off() -> None:
    """A member whose inbox refuses every put (its tokens are of epochs this device
    cannot make) was retried every minute; now the wait doubles to REDELIVER_EVERY."""
    world, users, relay, (laptop, phone, _), _ = three_at_home()
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    relay.lies = Lies(refuse=1.0)  # type: ignore[attr-defined]
    world.at(EPOCH + 30 * MINUTE, lambda: users.rotate(laptop))
    world.run_until(EPOCH + 30 * MINUTE + DAY)
    refused = relay.lied.get("refuse", 0)  # type: ignore[attr-defined]
    # Two senders (the laptop and the tablet), each about 12 tries a day
    # (1, 2, 4, ... minutes, then every 6 hours), each try up to 3 tokens:
    # 72. Every minute, it was 2 x 1,440 x 3.
    assert 0 < refused <= 2 * 12 * 3


# --- the third review (the op mirror) -------------------------------------------------


def test_a_segment_that_refuses_puts_is_left_alone() -> None:
    """One refused mirror put had every op of the device put again, into every
    segment, every minute: 1,440 puts a day into the next segment."""
    world, users, relay, (laptop, phone, tablet) = household(1)
    world.run_until(EPOCH + 20 * MINUTE)
    gid = group_id(laptop)
    group = world.group_of(laptop, gid)
    assert group is not None
    _, _, full = segment_of(group.keys[group.state.current_epoch.id], relay.identity.public)
    puts: dict[bytes, int] = {}
    execute = relay.store.execute

    def filling(action: object, now: int) -> object:
        if isinstance(action, store.MirrorPut):
            puts[action.segment] = puts.get(action.segment, 0) + 1
            if action.segment == full and now > EPOCH + 25 * MINUTE:
                raise RelaySegmentFull()  # (someone holding that epoch filled it)
        return execute(action, now)

    relay.store.execute = filling  # type: ignore[method-assign]
    world.network.move(phone.index, 1)
    world.set_online(phone, False)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.run_until(EPOCH + 35 * MINUTE)
    before = dict(puts)
    world.run_until(EPOCH + 35 * MINUTE + DAY)
    assert puts.get(full, 0) - before.get(full, 0) <= 5  # (every 6 hours at most)
    assert sum(puts.values()) - sum(before.values()) <= 10


def test_no_op_after_a_removal_goes_where_the_removed_device_reads() -> None:
    """The laptop removes the tablet while the phone, not knowing, rotates (an epoch
    the tablet is in). After the merge, ops went into that concurrent epoch's
    segment, which the removed tablet can read."""
    world, users, relay, (laptop, phone, tablet) = household(6)
    world.run_until(EPOCH + 20 * MINUTE)
    gid = group_id(laptop)
    world.set_relay_up(relay, False)
    world.network.move(phone.index, 1)
    world.network.move(tablet.index, 1)
    world.at(EPOCH + 30 * MINUTE, lambda: users.remove(laptop, tablet))
    world.at(EPOCH + 30 * MINUTE, lambda: users.rotate(phone))
    world.run_until(EPOCH + 45 * MINUTE)
    world.set_online(tablet, False)
    world.set_relay_up(relay, True)  # the laptop and the phone merge through the relay
    world.run_until(EPOCH + 75 * MINUTE)
    group = world.group_of(laptop, gid)
    assert group is not None
    log = group.log
    (removal,) = [op for op in log.ops.values() if isinstance(op.body, Remove)]
    readable = [e for e in group.state.epochs if tablet.id in e.recipients and e.id in group.keys]
    assert len(readable) >= 2  # (the epoch before the removal, and the phone's)
    by_raw = {op.raw: op for op in log.ops.values()}
    seen = 0
    for epoch in readable:
        key = group.keys[epoch.id]
        _, _, segment = segment_of(key, relay.identity.public)
        held = relay.store.segments.get(segment)
        if held is None:
            continue
        mirror = relayitems.mirror_key(key, relay.identity.public)
        for item, _ in held.items.values():
            _, body = relayitems.unseal_from_mirror(mirror, segment, gid, item)
            for raw in sync.read_ops(body.payload)[1]:
                seen += 1
                assert not log.before(removal, by_raw[raw])
    assert seen
