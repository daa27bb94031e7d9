"""The pure node, one device at a time: events in, effects out, no I/O.

Two nodes are joined by `Wire`, which carries each one's `Send` effects to
the other as `Received` events, so the handshake, the sync and pairing run
for real, in memory. Other tests feed a node what an attacker would: junk
after every preamble, floods of connections, strangers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core import channel
from covey.core.identity import create_identity
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
                return [(other, io.Incoming(theirs, "10.0.0.1")), (node, io.Connected(conn, "x"))]
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
    return io.AdvertSeen(advert.name, ("10.0.0.1",), 4242, advert.tags)


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
    assert served[-1].data["sas"] == joined[-1].data["sas"]
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
    wire.feed(wire.b, io.AdvertSeen(laptop_advert.name, ("10.0.0.1",), 4242, laptop_advert.tags))
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
    """A device in none of our groups completes Noise and sends its record anyway:
    the node refuses it, having sent only handshake message 2 (no record)."""
    stranger_id = create_identity("stranger", NOW, SeededRng("node-stranger"))
    stranger = Node(stranger_id)
    stranger.knows_key = lambda key: True  # type: ignore[method-assign]
    stranger.knows = lambda record: True  # type: ignore[method-assign]
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
        copy = io.AdvertSeen(f"copy{i}", ("192.0.2.66",), 9, laptop_advert.tags)
        made += dials(run(phone, copy, NOW + 20))
        same_name = io.AdvertSeen("same", ("192.0.2.67",), 9, (*laptop_advert.tags[:-1], bytes(8)))
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
    run(phone, io.AdvertSeen("real", ("10.0.0.1",), 4242, laptop_advert.tags), NOW + 20)
    first = dials(
        run(phone, io.AdvertSeen("copy", ("192.0.2.66",), 9, laptop_advert.tags), NOW + 20)
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
    seen = io.AdvertSeen(phone_advert.name, ("10.0.0.2",), 4242, phone_advert.tags)
    made = dials(run(laptop, seen, NOW + 31))
    assert len(made) == 1
    now, total = NOW + 31, len(made)
    for _ in range(12):  # the removed device fails every sync on purpose
        for dial in made:
            run(laptop, io.Closed(dial.conn, "refused"), now)
        now += RETRY_MAX + 1
        made = dials(run(laptop, io.Tick(), now))
        total += len(made)
    assert total == MAX_REMOVED_DIALS
    assert dials(run(laptop, io.Tick(), now + 4000)) == []


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
    """Found by review: with more than 24 fellows the advert held the 24
    smallest tags, whose spread told a stranger how many there were."""
    from covey.core import discovery

    others = [create_identity(f"d{i}", NOW, SeededRng(f"d{i}")).record for i in range(60)]
    mine = discovery.Discovery(ME)
    first = mine.advert_tags(others, NOW, SeededRng("one"))
    second = mine.advert_tags(others, NOW, SeededRng("two"))
    assert len(first) == len(second) == discovery.ADVERT_TAGS
    every = sorted(discovery.tag(mine.pair_key(r), ME.device_id.raw, NOW // 3600) for r in others)
    assert set(first) != set(every[: discovery.ADVERT_TAGS])
    assert set(first) != set(second)  # a different subset each time
    assert set(first) <= set(every)


def test_a_key_missed_across_a_partition_is_handed_over_by_a_healing_rotation() -> None:
    """Found by the simulator (family, seed 0, inviters leaving): a device added
    on one side of a partition never got the key of an epoch made on the other
    side, so it could not open what was sealed there, in a `shared` group.
    A member holding that key now rotates, and its bundle carries it."""
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
    world.deliver([healing], 2)
    assert newcomer.keys[rotation.id] == world.replicas[0].keys[rotation.id]
    assert newcomer.history_gaps() == []
    assert world.replicas[0].history_gaps() == []
    # Nothing more to do: no second healing rotation.
    assert "Persist" not in kinds(run(founder, io.Tick(), NOW + 200))


def test_copies_that_answer_with_another_key_are_forgotten() -> None:
    """Review finding: four fresh copies of a member's tags pushed its real
    advert out of the node's table. A copy is proven fake by its first dial
    (the key that answers is not the device's) and forgotten, and the
    address of the last good sync is kept apart, where copies cannot reach."""
    wire, _ = paired()
    phone, laptop_id = wire.b, wire.a.me.device_id.raw
    laptop_advert = next(
        e for name, e in reversed(wire.log) if name == "laptop" and isinstance(e, io.Advertise)
    )
    made = []
    for i in range(4):
        copy = io.AdvertSeen(f"copy{i}", ("192.0.2.66",), 9, laptop_advert.tags)
        made += dials(run(phone, copy, NOW + 20))
    assert len(phone.peers[laptop_id].adverts) == 4
    (dial,) = made  # one dial for the device, whatever the number of adverts
    # The copier answers with its own key: message 2 proves it is not the laptop.
    stranger = create_identity("mallory", NOW, SeededRng("mallory"))
    from covey.core import noise

    responder = noise.Handshake(
        "XX",
        initiator=False,
        rng=SeededRng("m"),
        prologue=channel.PROLOGUE,
        static_secret=stranger.secrets.channel_secret,
    )
    first = next(
        e
        for e in phone.handle(io.Connected(dial.conn, "192.0.2.66"), NOW + 21, SeededRng("c"))
        if isinstance(e, io.Send)
    )
    responder.read_message(first.data[len(channel.CHANNEL_PREAMBLE) + 2 :])
    answer = channel.frame(responder.write_message())
    effects = run(phone, io.Received(dial.conn, answer), NOW + 21)
    assert io.Close(dial.conn) in effects
    assert phone.peers[laptop_id].adverts == []  # every copy pointed there
    assert not any(name.startswith("copy") for name in phone.adverts)


def test_a_history_gap_is_closed_only_by_a_bundle_that_holds_the_key() -> None:
    """Review findings: a rotation with an empty bundle, or a skipped
    (backdated) add with no bundle, once made every replica believe the
    newcomer had been handed the key it lacked."""
    import copy

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
    world.replicas[3]._history = lambda *args: b""  # type: ignore[method-assign]
    world.act(3, "rotate")  # a rotation for 2 that carries nothing
    world.converge()
    stale._history = lambda *args: b""  # type: ignore[method-assign]
    backdated = stale.add(world.identities[2].record_bytes, "member", world.tick(), world.rng)
    world.written.append(backdated)
    world.converge()
    founder = world.replicas[0]
    assert backdated.id in founder.state.skipped
    assert missed.id not in world.replicas[2].keys
    assert (missed.id, world.id(2)) in founder.history_gaps()
    assert founder.needs_history_heal


def test_a_heal_that_cannot_close_a_gap_is_not_repeated_at_once() -> None:
    """Review finding: a bundle nobody could open (over the size a bundle may
    hold) left its gaps open, and the healer rotated again on every tick."""
    world = World(3, seed="no-storm")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    world.act(0, "rotate")
    world.act(1, "add", 2)
    world.converge()
    founder = world.replicas[0]
    assert founder.needs_history_heal
    founder._history = lambda *args: b""  # type: ignore[method-assign]  (a heal that fails)
    node = Node(world.identities[0], [founder])
    before = len(founder.log)
    for t in range(20):
        run(node, io.Tick(), NOW + 100 + t)
    assert len(founder.log) == before + 1  # one try, then a wait
    assert founder.needs_history_heal
    run(node, io.Tick(), NOW + 100 + 601)
    assert len(founder.log) == before + 2  # and another after RETRY_MAX
