"""The pure node, one device at a time: events in, effects out, no I/O.

Two nodes are joined by `Wire`, which carries each one's `Send` effects to
the other as `Received` events, so the handshake, the sync and pairing run
for real, in memory. Other tests feed a node what an attacker would: junk
after every preamble, floods of connections, strangers.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import channel, discovery
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, io
from covey.core.node.links import HANDSHAKE_TIMEOUT, ChannelLink
from covey.core.node.node import (
    HEAL_DELAY,
    MAX_CONNECTIONS,
    MAX_PER_ADDRESS,
    MAX_REMOVED_DIALS,
    RETRY_MAX,
)
from tests.conftest import NOW, SeededRng
from tests.harness import World

ME = create_identity("laptop", NOW, SeededRng("node-me"))


def run(node: Node, event: io.Event, now: float = NOW, seed: str = "r") -> list[io.Effect]:
    return node.handle(event, now, SeededRng(seed))


def kinds(effects: list[io.Effect]) -> list[str]:
    return [type(e).__name__ for e in effects]


def test_a_command_replies_only_after_its_change_is_persisted() -> None:
    node = Node(ME)
    created = run(node, io.Command(1, io.CreateGroup("family")))
    assert kinds(created).index("Persist") < kinds(created).index("Reply")
    rotated = run(node, io.Command(2, io.Rotate("family")), NOW + 1)
    persist = next(e for e in rotated if isinstance(e, io.Persist))
    reply = next(e for e in rotated if isinstance(e, io.Reply))
    assert rotated.index(persist) < rotated.index(reply)
    assert persist.groups == (bytes.fromhex(reply.data["group_id"]),)
    assert reply.data["epoch"]["number"] == 2


def test_a_failed_command_is_a_typed_reply_and_changes_nothing() -> None:
    node = Node(ME)
    effects = run(node, io.Command(1, io.Rotate("nope")))
    assert effects == [
        io.Reply(
            1,
            {"message": "there is no group 'nope' on this device", "code": "no_such_group"},
            error="NoSuchGroup",
        )
    ]
    assert node.generation == 0


@dataclass
class Wire:
    """Two nodes whose connections are joined in memory."""

    a: Node
    b: Node
    now: float = NOW
    #: (node, conn) -> (other node, its conn)
    ends: dict[tuple[int, int], tuple[Node, int]] = field(default_factory=dict)
    log: list[tuple[str, io.Effect]] = field(default_factory=list)
    next_incoming: int = 1
    #: The address an accepting node sees a dial come from.
    incoming_address: str = "10.0.0.1"

    def feed(self, node: Node, event: io.Event) -> None:
        queue = [(node, event)]
        while queue:
            target, ev = queue.pop(0)
            for effect in target.handle(ev, self.now, SeededRng(f"{id(target)}-{len(self.log)}")):
                self.log.append((target.me.record.name, effect))
                queue += self._carry(target, effect)

    def _carry(self, node: Node, effect: io.Effect) -> list[tuple[Node, io.Event]]:
        other = self.b if node is self.a else self.a
        match effect:
            case io.Dial(conn, _, _):
                theirs = self.next_incoming
                self.next_incoming += 1
                self.ends[(id(node), conn)] = (other, theirs)
                self.ends[(id(other), theirs)] = (node, conn)
                return [
                    (other, io.Incoming(theirs, self.incoming_address)),
                    (node, io.Connected(conn, "x")),
                ]
            case io.Send(conn, data):
                peer = self.ends.get((id(node), conn))
                return [] if peer is None else [(peer[0], io.Received(peer[1], data))]
            case io.Close(conn):
                peer = self.ends.pop((id(node), conn), None)
                if peer is None:
                    return []
                self.ends.pop((id(peer[0]), peer[1]), None)
                return [(peer[0], io.Closed(peer[1]))]
        return []


def advert_of(effects: list[io.Effect]) -> io.AdvertSeen:
    advert = next(e for e in effects if isinstance(e, io.Advertise))
    return io.AdvertSeen(advert.name, ("10.0.0.1",), 4242, advert.txt)


def paired() -> tuple[Wire, bytes]:
    """A laptop and a phone in one group, paired through the nodes."""
    phone = create_identity("phone", NOW, SeededRng("node-phone"))
    wire = Wire(Node(ME), Node(phone))
    wire.feed(wire.a, io.Command(1, io.CreateGroup("family")))
    effects = wire.a.handle(io.Command(2, io.Invite("family")), NOW, SeededRng("i"))
    reply = next(e for e in effects if isinstance(e, io.Reply))
    wire.feed(wire.b, io.Command(1, io.Join(code=reply.data["code"])))
    wire.feed(wire.b, advert_of(effects))
    group_id = next(iter(wire.a.groups))
    assert group_id in wire.b.groups, [e for _, e in wire.log if isinstance(e, io.Reply)]
    return wire, group_id


def test_pairing_then_sync_over_the_wire() -> None:
    wire, group_id = paired()
    joined = [e for name, e in wire.log if name == "phone" and isinstance(e, io.Reply)]
    assert joined[-1].data["event"] == "joined"
    served = [e for name, e in wire.log if name == "laptop" and isinstance(e, io.Reply)]
    assert served[-1].data["pairing_words"] == joined[-1].data["pairing_words"]
    # The inviter persisted the add before anything of the welcome was sent.
    laptop = [e for name, e in wire.log if name == "laptop"]
    first_persist = next(i for i, e in enumerate(laptop) if isinstance(e, io.Persist) and e.groups)
    sends = [i for i, e in enumerate(laptop) if isinstance(e, io.Send)]
    welcome = max(sends)
    assert first_persist < welcome
    # A rotation on the laptop reaches the phone through the phone's dial.
    wire.now += 10
    wire.feed(wire.a, io.Command(3, io.Rotate("family")))
    wire.feed(wire.a, io.Tick())
    laptop_advert = next(
        e for name, e in reversed(wire.log) if name == "laptop" and isinstance(e, io.Advertise)
    )
    wire.feed(wire.b, io.AdvertSeen(laptop_advert.name, ("10.0.0.1",), 4242, laptop_advert.txt))
    assert (
        wire.b.groups[group_id].state.current_epoch == wire.a.groups[group_id].state.current_epoch
    )


def unhealthy_world() -> World:
    """A merge after which the current key is still held by a removed device."""
    for seed in range(20):
        world = World(3, seed=f"node-heal-{seed}")
        world.act(0, "add_admin", 1)
        world.act(0, "add", 2)
        world.sync(0, 1)
        world.act(0, "remove", 2)
        world.act(1, "rotate")  # apart: still wraps for device 2
        world.sync(1, 0)
        world.sync(0, 1)
        if world.replicas[0].state.needs_healing:
            return world
    raise AssertionError("no seed gave an unhealthy merge")


def test_the_most_senior_member_heals_at_once_a_junior_after_its_delay() -> None:
    world = unhealthy_world()
    founder = Node(world.identities[0], [world.replicas[0]])
    effects = run(founder, io.Tick())
    assert "Persist" in kinds(effects)
    assert not world.replicas[0].state.needs_healing
    junior = Node(world.identities[1], [world.replicas[1]])
    assert world.replicas[1].healer_rank() == 1
    assert "Persist" not in kinds(run(junior, io.Tick()))
    assert world.replicas[1].state.needs_healing
    assert "Persist" not in kinds(run(junior, io.Tick(), NOW + HEAL_DELAY - 1))
    assert "Persist" in kinds(run(junior, io.Tick(), NOW + HEAL_DELAY))
    assert not world.replicas[1].state.needs_healing


def test_connection_limits_per_address_and_in_all() -> None:
    node = Node(ME)
    for conn in range(1, MAX_PER_ADDRESS + 1):
        assert not any(isinstance(e, io.Close) for e in run(node, io.Incoming(conn, "10.0.0.9")))
    refused = run(node, io.Incoming(99, "10.0.0.9"))
    assert io.Close(99) in refused
    for conn in range(100, 100 + MAX_CONNECTIONS - MAX_PER_ADDRESS):
        run(node, io.Incoming(conn, f"10.0.1.{conn}"))
    # Full: a new connection drops the oldest unproven one (conn 1).
    effects = run(node, io.Incoming(500, "10.0.2.1"))
    assert io.Close(1) in effects
    assert 500 in node.links


PREAMBLES = [b"", channel.CHANNEL_PREAMBLE, channel.PAIR_PREAMBLE + b"\x00" * 8]


@given(preamble=st.sampled_from(PREAMBLES), chunks=st.lists(st.binary(max_size=300), max_size=6))
def test_junk_closes_that_connection_only_and_never_breaks_the_node(
    preamble: bytes, chunks: list[bytes]
) -> None:
    node = Node(ME)
    run(node, io.Command(1, io.CreateGroup("family")))
    run(node, io.Incoming(7, "10.0.0.66"))
    run(node, io.Incoming(8, "10.0.0.67"))
    effects: list[io.Effect] = []
    for chunk in [preamble, *chunks]:
        effects += run(node, io.Received(7, chunk))
    effects += run(node, io.Tick(), NOW + HANDSHAKE_TIMEOUT + 1)
    assert not [e for e in effects if isinstance(e, io.Notify) and e.event == "internal_error"]
    assert 7 not in node.links  # closed by now, one way or another
    assert io.Close(7) in effects
    assert all(not isinstance(e, (io.Persist, io.Reply)) for e in effects)
    # The other connection was untouched until its own deadline.
    assert not any(isinstance(e, io.Close) and e.conn == 8 for e in effects[:-3])


def test_a_stranger_is_refused_before_the_node_shows_its_record() -> None:
    """A device in none of our groups completes Noise and sends its proof anyway
    (sealed to our channel key, which it may have seen in a group's log): the
    node refuses it, having sent only handshake message 2 (no proof, no record)."""
    stranger_id = create_identity("stranger", NOW, SeededRng("node-stranger"))
    stranger = Node(stranger_id)
    wire = Wire(Node(ME), stranger)
    wire.feed(wire.a, io.Command(1, io.CreateGroup("family")))
    link = ChannelLink(stranger, -1, "", NOW, SeededRng("s"), initiator=True, expect=ME.record)
    stranger.links[-1] = link
    wire.ends[(id(stranger), -1)] = (wire.a, 1)
    wire.ends[(id(wire.a), 1)] = (stranger, -1)
    wire.feed(wire.a, io.Incoming(1, "10.0.0.66"))
    wire.feed(stranger, io.Connected(-1, "10.0.0.1"))
    laptop = [e for name, e in wire.log if name == "laptop"]
    assert len([e for e in laptop if isinstance(e, io.Send)]) == 1  # message 2 only
    assert io.Close(1) in laptop
    refused = [e for e in laptop if isinstance(e, io.Notify) and e.event == "connection_failed"]
    assert refused
    assert "know" in refused[0].data["reason"]
    assert 1 not in wire.a.links


def dials(effects: list[io.Effect]) -> list[io.Dial]:
    return [e for e in effects if isinstance(e, io.Dial)]


def test_copied_adverts_cannot_multiply_dials() -> None:
    """Found by review: adverts with a member's copied tags, under new names or
    one name re-announced with changed tags, made a node dial the copier
    hundreds of times at once. Dials are per device now: one at a time."""
    wire, _ = paired()
    phone = wire.b
    laptop_advert = next(
        e for name, e in reversed(wire.log) if name == "laptop" and isinstance(e, io.Advertise)
    )
    phone.generation += 1  # something changed: the laptop is due
    made: list[io.Dial] = []
    for i in range(300):
        copy = io.AdvertSeen(f"copy{i}", ("192.0.2.66",), 9, laptop_advert.txt)
        made += dials(run(phone, copy, NOW + 20))
        same_name = io.AdvertSeen("same", ("192.0.2.67",), 9, laptop_advert.txt[:-8] + bytes(8))
        made += dials(run(phone, same_name, NOW + 20))
    assert len(made) <= 1
    assert sum(1 for link in phone.links.values() if link.dials_for is not None) <= 1


def test_a_failed_dial_backs_off_and_tries_the_devices_other_adverts() -> None:
    wire, _ = paired()
    phone = wire.b
    laptop_advert = next(
        e for name, e in reversed(wire.log) if name == "laptop" and isinstance(e, io.Advertise)
    )
    phone.generation += 1
    run(phone, io.AdvertSeen("real", ("10.0.0.1",), 4242, laptop_advert.txt), NOW + 20)
    first = dials(
        run(phone, io.AdvertSeen("copy", ("192.0.2.66",), 9, laptop_advert.txt), NOW + 20)
    )
    # (the real advert was dialed when seen; the copy, newest, waits its turn)
    dialing = [link for link in phone.links.values() if link.dials_for is not None]
    assert len(dialing) == 1
    assert first == []
    run(phone, io.Closed(dialing[0].conn, "refused"), NOW + 21)
    assert dials(run(phone, io.Tick(), NOW + 22)) == []  # backing off
    retried = dials(run(phone, io.Tick(), NOW + 21 + 5))
    assert len(retried) == 1


def test_a_removed_device_is_dialed_a_bounded_number_of_times() -> None:
    """Found by review: a removed device advertising for a member was dialed,
    and shown the member's version vectors, forever. Now it is dialed only to
    be told of its removal (so that it stops), at most MAX_REMOVED_DIALS times
    in a node's life, however its syncs end."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    phone_advert = next(
        e for name, e in reversed(wire.log) if name == "phone" and isinstance(e, io.Advertise)
    )
    run(laptop, io.Command(9, io.RemoveDevice("family", phone.me.device_id.raw)), NOW + 30)
    assert phone.me.device_id.raw not in laptop.groups[group_id].state.members
    seen = io.AdvertSeen(phone_advert.name, ("10.0.0.2",), 4242, phone_advert.txt)
    made = dials(run(laptop, seen, NOW + 31))
    assert len(made) == 1
    now, total = NOW + 31, len(made)
    for _ in range(12):  # the removed device fails every sync on purpose
        for dial in made:
            run(laptop, io.Connected(dial.conn, "10.0.0.2"), now)
            run(laptop, io.Closed(dial.conn, "reset"), now)
        now += RETRY_MAX + 1
        made = dials(run(laptop, io.Tick(), now))
        total += len(made)
    assert total == MAX_REMOVED_DIALS
    assert dials(run(laptop, io.Tick(), now + 4000)) == []


def test_a_device_off_when_it_was_removed_is_told_when_it_comes_back() -> None:
    """Found in a manual run on a real LAN: the phone's node was stopped, the
    laptop removed it, and the phone's advert, still cached, was dialed (and
    refused) MAX_REMOVED_DIALS times: when the phone came back, on a new port,
    it was never told. Dials that reach nothing now only back off."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    phone_advert = next(
        e for name, e in reversed(wire.log) if name == "phone" and isinstance(e, io.Advertise)
    )
    run(laptop, io.Command(9, io.RemoveDevice("family", phone.me.device_id.raw)), NOW + 30)
    stale = io.AdvertSeen(phone_advert.name, ("10.0.0.2",), 4242, phone_advert.txt)
    made = dials(run(laptop, stale, NOW + 31))
    now, refused = NOW + 31, 0
    for _ in range(2 * MAX_REMOVED_DIALS):  # the phone is off: every dial is refused
        assert len(made) == 1
        run(laptop, io.Closed(made[0].conn, "refused"), now)
        refused += 1
        now += RETRY_MAX + 1
        made = dials(run(laptop, io.Tick(), now))
    assert refused > MAX_REMOVED_DIALS
    # The phone comes back, on a new port, with a new advert: it is dialed and told.
    if made:
        run(laptop, io.Closed(made[0].conn, "refused"), now)
    back = io.AdvertSeen("back", ("10.0.0.2",), 4343, phone_advert.txt)
    wire.now = now + RETRY_MAX + 1
    wire.feed(laptop, back)
    wire.feed(laptop, io.Tick())
    assert phone.me.device_id.raw not in phone.groups[group_id].state.members
    told = [e for who, e in wire.log if who == "phone" and isinstance(e, io.Notify)]
    assert [e.data["group"] for e in told if e.event == "removed"] == ["family"]
    # Its sync notice says the new key is not for it.
    (synced,) = [e for e in told if e.event == "synced"]
    (change,) = synced.data["changes"]
    assert change["epoch"]["held"] is False


@pytest.mark.parametrize(
    "action",
    [
        io.Join(code="7-academic-acid", timeout=float("nan")),
        io.Join(code="7-academic-acid", timeout=1e300),
        io.Join(code="7-academic-acid", address=("10.0.0.1", 70000)),
        io.Invite("family", "member", 10**9),
        io.Invite("family", "root", 600),  # type: ignore[arg-type]
    ],
)
def test_out_of_range_commands_are_refused(action: io.Action) -> None:
    node = Node(ME)
    run(node, io.Command(1, io.CreateGroup("family")))
    effects = run(node, io.Command(2, action))
    assert [e.error for e in effects if isinstance(e, io.Reply)] == ["InvalidArgument"]
    assert node.joins == {}
    assert node.invitations == {}


def test_with_many_fellow_devices_the_advert_does_not_show_how_many() -> None:
    """Found by review: with more fellows than an advert holds, the advert held
    the smallest tags, whose spread told a stranger how many there were."""
    count = discovery.ADVERT_TAGS + 30
    others = [create_identity(f"d{i}", NOW, SeededRng(f"d{i}")).record for i in range(count)]
    mine = discovery.Discovery(ME)
    salt = bytes(discovery.SALT_BYTES)
    first = mine.advert_tags(others, NOW, salt, SeededRng("one"))
    second = mine.advert_tags(others, NOW, salt, SeededRng("two"))
    assert len(first) == len(second) == discovery.ADVERT_TAGS
    every = []
    for r in others:
        key = mine.pair_key(r)
        assert key is not None
        every.append(discovery.tag(key, ME.device_id.raw, NOW // 3600, salt))
    assert set(first) != set(sorted(every)[: discovery.ADVERT_TAGS])
    assert set(first) != set(second)  # a different subset each time
    assert set(first) <= set(every)


def test_a_key_missed_across_a_partition_is_handed_over_by_a_healing_rotation() -> None:
    """Found by the simulator (family, seed 0, inviters leaving): a device added
    on one side of a partition never got the key of an epoch made on the other
    side, so it could not open what was sealed there, in a `shared` group.
    A member holding that key now rotates, and its rotation links back to it."""
    world = World(3, seed="history-gap")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    rotation = world.act(0, "rotate")  # apart: device 0 starts epoch E ...
    world.act(1, "add", 2)  # ... while device 1 adds device 2
    world.converge()
    newcomer = world.replicas[2]
    assert rotation is not None
    assert rotation.id not in newcomer.keys
    assert newcomer.history_gaps() == [(rotation.id, world.id(2))]
    founder = Node(world.identities[0], [world.replicas[0]])
    assert world.replicas[0].needs_history_heal
    effects = run(founder, io.Tick(), NOW + 100)
    assert "Persist" in kinds(effects)
    healing = world.replicas[0].log.order[-1]
    assert rotation.id in {link.epoch for link in healing.body.links if not link.cut}
    world.deliver([healing], 2)
    assert newcomer.keys[rotation.id] == world.replicas[0].keys[rotation.id]
    assert newcomer.history_gaps() == []
    assert world.replicas[0].history_gaps() == []
    # Nothing more to do: no second healing rotation.
    assert "Persist" not in kinds(run(founder, io.Tick(), NOW + 200))


@pytest.mark.parametrize("answer", ["junk", "close"])
def test_copies_that_cannot_prove_the_device_are_forgotten(answer: str) -> None:
    """Review finding: four fresh copies of a member's tags pushed its real
    advert out of the node's table. A copy is found out by its first dial
    (whoever answers cannot open our sealed proof, so it cannot prove it is
    the device) and forgotten, and the address of the last good sync is kept
    apart, where copies cannot reach."""
    wire, _ = paired()
    phone, laptop_id = wire.b, wire.a.me.device_id.raw
    laptop_advert = next(
        e for name, e in reversed(wire.log) if name == "laptop" and isinstance(e, io.Advertise)
    )
    made = []
    for i in range(4):
        copy = io.AdvertSeen(f"copy{i}", ("192.0.2.66",), 9, laptop_advert.txt)
        made += dials(run(phone, copy, NOW + 20))
    assert len(phone.peers[laptop_id].adverts) == 4
    (dial,) = made  # one dial for the device, whatever the number of adverts
    # The copier answers the handshake (anyone can: Noise_NN), then gets our
    # proof sealed to the laptop's key, and can only send junk or go away.
    from covey.core import noise

    responder = noise.Handshake(
        channel.PATTERN, initiator=False, rng=SeededRng("m"), prologue=channel.PROLOGUE
    )
    first = next(
        e
        for e in phone.handle(io.Connected(dial.conn, "192.0.2.66"), NOW + 21, SeededRng("c"))
        if isinstance(e, io.Send)
    )
    responder.read_message(first.data[len(channel.CHANNEL_PREAMBLE) + 2 :])
    effects = run(phone, io.Received(dial.conn, channel.frame(responder.write_message())), NOW + 21)
    sealed = [e.data for e in effects if isinstance(e, io.Send)]
    assert len(sealed) == 1
    assert phone.me.device_id.raw not in responder.transport.decrypt(sealed[0][2:])
    if answer == "junk":
        junk = channel.fragments(responder.transport, b"\x92\xc4\x20" + bytes(32) + bytes(66))
        effects = run(phone, io.Received(dial.conn, junk[0]), NOW + 21)
        assert io.Close(dial.conn) in effects
    else:
        run(phone, io.Closed(dial.conn, "the peer closed the connection"), NOW + 21)
    assert dial.conn not in phone.links
    assert phone.peers[laptop_id].adverts == []  # every copy pointed there
    assert not any(name.startswith("copy") for name in phone.adverts)


def test_a_history_gap_is_closed_only_by_a_link_that_opens() -> None:
    """Review findings (on the bundles before links): a rotation with an empty
    bundle, or a skipped (backdated) add with no bundle, once made every
    replica believe the newcomer had been handed the key it lacked. Now: a
    rotation that links nothing, a backdated add, and a rotation whose link
    to the missed epoch does not open leave the gap open."""
    import copy

    from covey.core.ops import Link

    world = World(5, seed="gap-hiding")
    world.act(0, "add_admin", 1)
    world.act(0, "add_admin", 3)
    for j in (1, 3):
        world.sync(0, j)
    stale = copy.deepcopy(world.replicas[3])  # device 3's view before 2 joins
    missed = world.act(0, "rotate")
    world.act(1, "add", 2)
    world.converge()
    assert missed is not None
    world.replicas[3]._links = lambda *args: ()  # type: ignore[method-assign]
    world.act(3, "rotate")  # a rotation for 2 that links nothing
    world.converge()
    stale._links = lambda *args: ()  # type: ignore[method-assign]
    backdated = stale.add(world.identities[2].record_bytes, "member", world.tick(), world.rng)
    world.written.append(backdated)
    world.converge()
    founder = world.replicas[0]
    assert backdated.id in founder.state.skipped
    assert missed.id not in world.replicas[2].keys
    assert (missed.id, world.id(2)) in founder.history_gaps()
    assert founder.needs_history_heal
    # A link to the missed epoch that does not open (72 bytes of junk) closes nothing.
    junk = Link(missed.id, bytes(72))
    world.replicas[1]._links = lambda *args: (junk,)  # type: ignore[method-assign]
    bad = world.act(1, "rotate")  # (device 3 equivocated above: it is out)
    world.converge()
    assert bad is not None
    assert (bad.id, missed.id) in founder.bad_links
    assert missed.id not in world.replicas[2].keys
    assert (missed.id, world.id(2)) in founder.history_gaps()
    assert founder.needs_history_heal


def test_a_heal_that_cannot_close_a_gap_is_not_repeated_at_once() -> None:
    """Review finding: a bundle nobody could open (over the size a bundle may
    hold) left its gaps open, and the healer rotated again on every tick.
    Here, a healing rotation that links nothing."""
    world = World(3, seed="no-storm")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    world.act(0, "rotate")
    world.act(1, "add", 2)
    world.converge()
    founder = world.replicas[0]
    assert founder.needs_history_heal
    founder._links = lambda *args: ()  # type: ignore[method-assign]  (a heal that fails)
    node = Node(world.identities[0], [founder])
    before = len(founder.log)
    for t in range(20):
        run(node, io.Tick(), NOW + 100 + t)
    assert len(founder.log) == before + 1  # one try, then a wait
    assert founder.needs_history_heal
    run(node, io.Tick(), NOW + 100 + 601)
    assert len(founder.log) == before + 2  # and another after RETRY_MAX


# --- discovery: what adverts show, and who finds whom (issue 9: 5e, 5i, 4c) --------


def advertised(effects: list[io.Effect]) -> io.Advertise:
    (advert,) = [e for e in effects if isinstance(e, io.Advertise)]
    return advert


def tags_of(advert: io.Advertise) -> frozenset[bytes]:
    text = discovery.read_advert(advert.txt)
    assert text is not None
    return text.tags


def groups_with(me: Identity, fellows: list[list[Identity]]) -> list[Group]:
    """One group founded by `me` per list of fellows, each of them added."""
    rng = SeededRng(f"groups-{me.record.name}")
    made = []
    for i, members in enumerate(fellows):
        group = Group.create(me, f"g{i}", "shared", NOW, rng)
        for member in members:
            group.add(member.record_bytes, "member", NOW, rng)
        made.append(group)
    return made


FELLOWS = [create_identity(f"fellow{i}", NOW, SeededRng(f"fellow{i}")) for i in range(150)]


def test_two_adverts_of_one_device_share_no_tag_value() -> None:
    """Issue 9, finding 5e: within an hour a device's adverts (after a restart,
    or a change of members) carried the same tag values, so a LAN observer
    could link the new advert to the old one, and see which tag came or went.
    Every advert now has a fresh salt that enters every tag."""
    (group,) = groups_with(ME, [FELLOWS[:3]])
    first = advertised(run(Node(ME, [group]), io.Tick(), NOW, seed="first"))
    restarted = Node(ME, [group])  # `covey up` again, in the same hour
    second = advertised(run(restarted, io.Tick(), NOW + 60, seed="second"))
    group.add(FELLOWS[3].record_bytes, "member", NOW + 100, SeededRng("add"))
    restarted.generation += 1  # (as after the Persist of an add)
    third = advertised(run(restarted, io.Tick(), NOW + 120, seed="third"))
    next_hour = advertised(run(restarted, io.Tick(), NOW + 3600, seed="next"))
    adverts = [first, second, third, next_hour]
    assert len({a.name for a in adverts}) == 4
    for a, b in itertools.combinations(adverts, 2):
        assert not tags_of(a) & tags_of(b)
    assert {len(a.txt) for a in adverts} == {discovery.TXT_BYTES}


def test_a_device_in_50_groups_is_found_by_every_fellow() -> None:
    """Issue 9, finding 5i: `covey up` stopped at start once a device had 15
    tags to advertise (one TXT string overflowed). A device in 50 groups
    with 100 fellow devices makes an advert of the one constant size, and
    every fellow's node recognizes it and dials."""
    fellows = [FELLOWS[2 * i : 2 * i + 2] for i in range(50)]
    groups = groups_with(ME, fellows)
    advert = advertised(run(Node(ME, groups), io.Tick(), NOW))
    assert len(advert.txt) == discovery.TXT_BYTES
    assert len(tags_of(advert)) == discovery.ADVERT_TAGS
    seen = io.AdvertSeen(advert.name, ("10.0.0.1",), 4242, advert.txt)
    for group, members in zip(groups, fellows, strict=True):
        for member in members:
            replica = Group.replica(member, group.id, [op.raw for op in group.log.order])
            node = Node(member, [replica])
            assert [d.addresses for d in dials(run(node, seen, NOW + 5))] == [("10.0.0.1",)]
            assert ME.device_id.raw in node.peers


def test_with_more_fellows_than_an_advert_holds_the_advert_keeps_its_size() -> None:
    many = [FELLOWS[(3 * i) % 150 : (3 * i) % 150 + 4] for i in range(50)]
    assert len({m.device_id.raw for group in many for m in group}) == 150
    advert = advertised(run(Node(ME, groups_with(ME, many)), io.Tick(), NOW))
    assert len(advert.txt) == discovery.TXT_BYTES
    assert len(tags_of(advert)) == discovery.ADVERT_TAGS


def test_a_member_that_missed_rotations_still_finds_its_peers() -> None:
    """Issue 9, finding 4c: with tags keyed by a group's recent epoch keys, a
    member that missed three rotations never recognized its group's adverts
    again. Pairwise tags come from device keys: the phone, away while the
    laptop rotated four times, finds the laptop days later (and the laptop
    finds the phone), and catches up in one sync."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    for k in range(4):  # the phone is away: nothing reaches it
        run(laptop, io.Command(10 + k, io.Rotate("family")), NOW + 60 + k)
    behind = phone.groups[group_id]
    current = laptop.groups[group_id].state.current_epoch
    missed = [e for e in laptop.groups[group_id].state.epochs if e.id not in behind.keys]
    assert len(missed) == 4
    assert behind.state.current_epoch != current
    # Three days later both are up on the same LAN.
    wire.now = NOW + 3 * 86400
    laptop_advert = advertised(laptop.handle(io.Tick(), wire.now, SeededRng("back-l")))
    phone_advert = advertised(phone.handle(io.Tick(), wire.now, SeededRng("back-p")))
    seen_by_laptop = io.AdvertSeen(phone_advert.name, ("10.0.0.2",), 4242, phone_advert.txt)
    assert dials(laptop.handle(seen_by_laptop, wire.now, SeededRng("l")))  # it knows the phone
    for link in [c for c in laptop.links if c < 0]:  # (that dial is left unanswered)
        laptop.handle(io.Closed(link), wire.now, SeededRng("l"))
    wire.feed(phone, io.AdvertSeen(laptop_advert.name, ("10.0.0.1",), 4242, laptop_advert.txt))
    assert phone.peers[laptop.me.device_id.raw].adverts == [laptop_advert.name]
    assert phone.groups[group_id].state.current_epoch == current
    assert all(e.id in phone.groups[group_id].keys for e in missed)


@given(txt=st.one_of(st.binary(max_size=2 * discovery.TXT_BYTES), st.integers(0, 2**32)))
def test_a_malformed_advert_is_ignored(txt: bytes | int) -> None:
    """A stranger's TXT record of any shape: ignored, never an internal error."""
    node = Node(ME)
    run(node, io.Command(1, io.CreateGroup("family")))
    if isinstance(txt, int):  # a real advert's record, one byte changed
        real = bytearray(discovery.padded_advert([], SeededRng(str(txt))))
        real[txt % len(real)] ^= 1 + (txt >> 16) % 255
        txt = bytes(real)
    effects = run(node, io.AdvertSeen("junk", ("192.0.2.1",), 9, txt))
    assert not [e for e in effects if isinstance(e, io.Notify) and e.event == "internal_error"]
    assert not dials(effects)
    assert "junk" not in node.adverts
    assert ("junk" in node.others) == (discovery.read_advert(txt) is not None)


# --- pairing a device that is already a member (issue 9, 6c) ----------------------------


def test_joining_a_group_already_held_spends_nothing_and_both_sides_say_so() -> None:
    """Issue 9, finding 6c: a device that already held the group joined it
    again; the inviter reported "joined" and the code was used up (the device
    the code was meant for could not use it). Now the inviter sees from the
    joiner's proof that it is a member: no add, no new epoch, the invitation
    stays open, and both sides report "already_member"."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    ops_before = len(laptop.groups[group_id].log)
    wire.now = NOW + 5
    invited = laptop.handle(io.Command(5, io.Invite("family")), wire.now, SeededRng("again"))
    code = next(e for e in invited if isinstance(e, io.Reply)).data["code"]
    start = len(wire.log)
    wire.feed(phone, io.Command(7, io.Join(code=code)))
    wire.feed(phone, advert_of(invited))
    effects = wire.log[start:]
    (served,) = [e for n, e in effects if n == "laptop" and isinstance(e, io.Reply)]
    (answered,) = [e for n, e in effects if n == "phone" and isinstance(e, io.Reply)]
    assert served.data["event"] == answered.data["event"] == "already_member"
    assert served.data["device"] == "phone"
    assert answered.data["group"] == served.data["group"] == "family"
    assert answered.data["had_group"] is True
    assert answered.final
    assert answered.error is None
    assert not served.final  # the invitation is still open ...
    assert 5 in laptop.invitations
    assert len(laptop.groups[group_id].log) == ops_before  # ... and nothing was written
    assert not [e for n, e in effects if n == "laptop" and isinstance(e, io.Persist) and e.groups]
    assert not [e for n, e in effects if isinstance(e, io.Withdraw)]
    # The code still brings in the device it was meant for.
    tablet = Node(create_identity("tablet", NOW, SeededRng("node-tablet")))
    second = Wire(laptop, tablet, now=NOW + 6, next_incoming=100)
    second.feed(tablet, io.Command(1, io.Join(code=code)))
    second.feed(tablet, advert_of(invited))
    (joined,) = [e for n, e in second.log if n == "tablet" and isinstance(e, io.Reply)]
    assert joined.data["event"] == "joined"
    (welcomed,) = [e for n, e in second.log if n == "laptop" and isinstance(e, io.Reply)]
    assert welcomed.data["event"] == "joined"
    assert welcomed.final
    assert tablet.me.device_id.raw in laptop.groups[group_id].state.members
    assert 5 not in laptop.invitations  # now it is used


# --- what `covey up` logs: what a sync changed, by whom (issue 9, 6g) --------------------


def synced_notices(effects: list[tuple[str, io.Effect]], name: str) -> list[dict[str, Any]]:
    return [
        e.data for n, e in effects if n == name and isinstance(e, io.Notify) and e.event == "synced"
    ]


def latest_advert(wire: Wire, name: str) -> io.AdvertSeen:
    advert = next(e for n, e in reversed(wire.log) if n == name and isinstance(e, io.Advertise))
    return io.AdvertSeen(advert.name, ("10.0.0.2",), 4242, advert.txt)


def test_a_sync_is_notified_only_when_it_changed_something_and_says_what() -> None:
    """Issue 9, finding 6g: `covey up` logged "synced with" every few seconds
    when nothing changed, and never what changed. The node now notifies a
    sync only when it changed something, and says what: members added and
    removed, roles, a new key, and by whom, and from which device."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    # A tablet joins through the laptop while the phone is away.
    tablet = Node(create_identity("tablet", NOW, SeededRng("node-tablet")))
    invited = laptop.handle(io.Command(12, io.Invite("family")), wire.now, SeededRng("t"))
    code = next(e for e in invited if isinstance(e, io.Reply)).data["code"]
    other = Wire(laptop, tablet, now=wire.now, next_incoming=100)
    other.feed(tablet, io.Command(1, io.Join(code=code)))
    other.feed(tablet, advert_of(invited))
    assert tablet.me.device_id.raw in laptop.groups[group_id].state.members
    assert not laptop._sync_changes  # (a pairing's add is its reply, not a sync's notice)
    wire.now += 10
    wire.feed(laptop, io.Tick())
    wire.feed(phone, io.Tick())
    start = len(wire.log)
    wire.feed(phone, latest_advert(wire, "laptop"))  # the phone comes back and dials
    effects = wire.log[start:]
    # Two syncs: the first brings the tablet's add; the phone, changed, syncs
    # again at once, and that one changes nothing: one notice, on the phone.
    assert (
        len([e for n, e in effects if n == "phone" and isinstance(e, io.Persist) and e.peers]) >= 2
    )
    (notice,) = synced_notices(effects, "phone")
    assert synced_notices(effects, "laptop") == []
    assert (notice["peer"], notice["address"]) == ("laptop", "x")
    (change,) = notice["changes"]
    assert change["group"] == "family"
    assert [(e["name"], e["by"]) for e in change["added"]] == [("tablet", "laptop")]
    assert change["epoch"] == {
        "number": len(laptop.groups[group_id].state.epochs),
        "by": "laptop",
        "held": True,
    }
    assert change["removed"] == change["roles"] == []

    # The laptop makes the phone an admin and rotates; it dials the phone.
    phone_id = phone.me.device_id.raw
    wire.feed(laptop, io.Command(10, io.ChangeRole("family", phone_id, "admin")))
    wire.feed(laptop, io.Command(11, io.Rotate("family")))
    start = len(wire.log)
    wire.feed(laptop, latest_advert(wire, "phone"))
    (notice,) = synced_notices(wire.log[start:], "phone")
    (change,) = notice["changes"]
    assert change["ops"] == 2
    assert change["roles"] == [
        {"name": "phone", "device_id": str(phone.me.device_id), "by": "laptop", "role": "admin"}
    ]
    assert change["epoch"]["by"] == "laptop"
    assert change["added"] == change["removed"] == []
    assert synced_notices(wire.log[start:], "laptop") == []  # nothing new for the laptop

    # The laptop removes the tablet (it knows the phone's advert: it dials at once).
    wire.now += 10
    start = len(wire.log)
    wire.feed(laptop, io.Command(13, io.RemoveDevice("family", tablet.me.device_id.raw)))
    (notice,) = synced_notices(wire.log[start:], "phone")
    (change,) = notice["changes"]
    assert [(e["name"], e["by"], e["left"]) for e in change["removed"]] == [
        ("tablet", "laptop", False)
    ]


def test_an_ipv4_peer_seen_as_ipv4_mapped_ipv6_is_one_address() -> None:
    """Issue 9, finding 6g: a dual-stack listener reports an IPv4 peer as
    `::ffff:a.b.c.d`, so one peer showed as two addresses (and its
    connections counted against two per-address limits)."""
    node = Node(ME)
    run(node, io.Incoming(1, "10.0.0.9"))
    run(node, io.Incoming(2, "::ffff:10.0.0.9"))
    assert node.links[2].address == "10.0.0.9"
    assert io.Close(3) in run(node, io.Incoming(3, "::ffff:10.0.0.9"))  # MAX_PER_ADDRESS
    assert 3 not in node.links
    # What the node records and tells of a peer names the plain address too.
    wire, _ = paired()
    wire.incoming_address = "::ffff:10.0.0.7"
    wire.now += 10
    wire.feed(wire.a, io.Tick())
    wire.feed(wire.b, io.Command(10, io.Rotate("family")))
    start = len(wire.log)
    wire.feed(wire.b, latest_advert(wire, "laptop"))  # the phone dials; the laptop accepts
    met = [e for n, e in wire.log[start:] if n == "laptop" and isinstance(e, io.Persist)]
    assert {peer.address for e in met for peer in e.peers} == {"10.0.0.7"}
    (notice,) = synced_notices(wire.log[start:], "laptop")  # (the phone's rotation)
    assert notice["address"] == "10.0.0.7"


def test_a_member_whose_welcome_never_came_gets_the_group_with_a_new_code() -> None:
    """A walkthrough found a pairing through a relay whose inviter added the
    device and exited before its welcome was put: the device was a member and
    held nothing. Another code brings it the group (nothing is added again),
    and its reply says it now holds it."""
    wire, group_id = paired()
    laptop, phone = wire.a, wire.b
    stranded = Node(phone.me)  # (the same device, holding no group)
    ops_before = len(laptop.groups[group_id].log)
    wire.now = NOW + 5
    invited = laptop.handle(io.Command(5, io.Invite("family")), wire.now, SeededRng("again"))
    code = next(e for e in invited if isinstance(e, io.Reply)).data["code"]
    again = Wire(laptop, stranded, now=NOW + 6, next_incoming=100)
    again.feed(stranded, io.Command(1, io.Join(code=code)))
    again.feed(stranded, advert_of(invited))
    (answered,) = [
        e for n, e in again.log if n == stranded.me.record.name and isinstance(e, io.Reply)
    ]
    assert answered.data["event"] == "already_member"
    assert answered.data["had_group"] is False
    assert group_id in stranded.groups
    assert stranded.groups[group_id].keys  # (its keys too)
    assert len(laptop.groups[group_id].log) == ops_before
