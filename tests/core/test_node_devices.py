"""Managing a group's devices through the pure nodes: remove, change a role, leave.

`Mesh` joins any number of nodes in memory: a `Dial` reaches the node whose
address it names (if that node is online), `Send`s arrive as `Received`,
and `announce()` shows every online node the adverts of the others, as mDNS
would on a LAN. Devices start in one group built directly (no pairing), so
each test begins with a household whose replicas agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.node import Node, io
from covey.core.node.node import TELL_WAIT
from tests.conftest import NOW, SeededRng


def household(
    names: tuple[str, ...] = ("laptop", "phone", "tablet"), admins: tuple[int, ...] = (0,)
) -> tuple[list[Identity], list[Group]]:
    """Devices named `names`, device 0 the founder, in one group `family`, replicas in sync."""
    identities = [
        create_identity(n, NOW, SeededRng(f"household-{k}-{n}")) for k, n in enumerate(names)
    ]
    rng = SeededRng("household")
    founder = Group.create(identities[0], "family", "shared", NOW, rng)
    for k, me in enumerate(identities[1:], start=1):
        founder.add(me.record_bytes, "admin" if k in admins else "member", NOW + k, rng)
    raws = [op.raw for op in founder.log.order]
    return identities, [founder] + [Group.replica(me, founder.id, raws) for me in identities[1:]]


@dataclass
class Mesh:
    """Nodes on one simulated LAN; `online` are the ones switched on."""

    nodes: list[Node]
    online: set[int]
    now: float = NOW + 100
    #: (node, conn) -> (other node, its conn)
    ends: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)
    #: advert name -> (node, tags), as each node last published
    adverts: dict[str, tuple[int, tuple[bytes, ...]]] = field(default_factory=dict)
    log: list[tuple[int, io.Effect]] = field(default_factory=list)
    incoming: int = 1

    @staticmethod
    def address(i: int) -> str:
        return f"10.0.0.{i + 1}"

    def feed(self, i: int, event: io.Event) -> None:
        queue = [(i, event)]
        while queue:
            j, ev = queue.pop(0)
            if j not in self.online:
                continue
            for effect in self.nodes[j].handle(ev, self.now, SeededRng(f"{j}-{len(self.log)}")):
                self.log.append((j, effect))
                queue += self._carry(j, effect)

    def _carry(self, j: int, effect: io.Effect) -> list[tuple[int, io.Event]]:
        match effect:
            case io.Dial(conn, addresses, _):
                target = next(
                    (k for k in range(len(self.nodes)) if self.address(k) == addresses[0]), None
                )
                if target is None or target not in self.online:
                    return [(j, io.Closed(conn, "no answer"))]
                theirs = self.incoming
                self.incoming += 1
                self.ends[(j, conn)] = (target, theirs)
                self.ends[(target, theirs)] = (j, conn)
                return [
                    (target, io.Incoming(theirs, self.address(j))),
                    (j, io.Connected(conn, addresses[0])),
                ]
            case io.Send(conn, data):
                peer = self.ends.get((j, conn))
                return [] if peer is None else [(peer[0], io.Received(peer[1], data))]
            case io.Close(conn):
                peer = self.ends.pop((j, conn), None)
                if peer is None:
                    return []
                self.ends.pop(peer, None)
                return [(peer[0], io.Closed(peer[1]))]
            case io.Advertise(name, tags):
                self.adverts[name] = (j, tags)
            case io.Withdraw(name):  # the others see it go at once, as mDNS says
                if self.adverts.pop(name, None) is not None:
                    return [(k, io.AdvertLost(name)) for k in sorted(self.online) if k != j]
        return []

    def start(self, *which: int) -> None:
        for i in which:
            self.online.add(i)
            self.feed(i, io.Tick())
        self.announce()

    def announce(self) -> None:
        """Every online node sees the adverts of the other online nodes."""
        for i in sorted(self.online):
            for name, (j, tags) in list(self.adverts.items()):
                if j != i and j in self.online and name in self.adverts:
                    self.feed(i, io.AdvertSeen(name, (self.address(j),), 4242, tags))

    def tick(self, seconds: float) -> None:
        self.now += seconds
        for i in sorted(self.online):
            self.feed(i, io.Tick())

    def effects(self, i: int, since: int = 0) -> list[io.Effect]:
        return [e for j, e in self.log[since:] if j == i]

    def replies(self, i: int, request: int) -> list[io.Reply]:
        return [e for e in self.effects(i) if isinstance(e, io.Reply) and e.request == request]

    def command(self, i: int, request: int, action: io.Action) -> list[io.Reply]:
        self.feed(i, io.Command(request, action))
        return self.replies(i, request)


def mesh(online: tuple[int, ...], **kwargs: object) -> tuple[Mesh, list[Identity], bytes]:
    identities, groups = household(**kwargs)  # type: ignore[arg-type]
    net = Mesh([Node(me, [g]) for me, g in zip(identities, groups, strict=True)], set())
    net.start(*online)
    return net, identities, groups[0].id


def final(replies: list[io.Reply]) -> io.Reply:
    assert replies, "no reply"
    assert replies[-1].final, replies
    return replies[-1]


def names(entries: list[dict[str, str]]) -> list[str]:
    return [entry["name"] for entry in entries]


def assert_plain_line(message: str) -> None:
    """A message for people: one line, no bytes repr, no long hex."""
    assert "\n" not in message
    assert "b'" not in message
    assert 'b"' not in message
    assert not re.search(r"[0-9a-f]{17,}", message), message


# --- remove ---------------------------------------------------------------------


def test_a_removal_reaches_the_members_online_and_says_who_is_still_to_hear() -> None:
    """The lost phone is off: the laptop removes it; the tablet, online, hears at
    once (the reply waits for it); the phone is not among those to tell."""
    net, ids, group_id = mesh((0, 2))
    laptop, tablet = net.nodes[0], net.nodes[2]
    phone_id = ids[1].device_id.raw
    reply = final(net.command(0, 7, io.RemoveDevice("family", phone_id)))
    assert reply.error is None, reply.data
    assert reply.data["removed"]["name"] == "phone"
    assert names(reply.data["told"]) == ["tablet"]
    assert reply.data["to_tell"] == []
    assert reply.data["syncing"] is True
    assert phone_id not in tablet.groups[group_id].state.members
    epoch = laptop.groups[group_id].state.current_epoch
    assert tablet.groups[group_id].state.current_epoch == epoch
    # Persist before the reply (and before anything was sent about it).
    effects = net.effects(0)
    persist = next(i for i, e in enumerate(effects) if isinstance(e, io.Persist) and e.groups)
    assert persist < effects.index(reply)


def test_a_removal_with_nobody_online_replies_at_once_naming_who_must_hear() -> None:
    net, ids, _ = mesh((0,))
    reply = final(net.command(0, 7, io.RemoveDevice("family", ids[1].device_id.raw)))
    assert reply.data["told"] == []
    assert names(reply.data["to_tell"]) == ["tablet"]


def test_a_removal_waits_at_most_tell_wait_for_a_member_that_does_not_sync() -> None:
    net, ids, _ = mesh((0, 2))
    net.online.discard(2)  # the tablet's advert is still up, but it answers nothing
    assert net.command(0, 7, io.RemoveDevice("family", ids[1].device_id.raw)) == []
    net.tick(TELL_WAIT - 1)
    assert net.replies(0, 7) == []
    net.tick(2)
    reply = final(net.replies(0, 7))
    assert names(reply.data["to_tell"]) == ["tablet"]


def test_only_an_admin_removes_and_the_refusal_names_the_admins() -> None:
    net, ids, group_id = mesh((0, 1, 2))
    before = len(net.nodes[2].groups[group_id].log)
    reply = final(net.command(2, 3, io.RemoveDevice("family", ids[1].device_id.raw)))
    assert reply.error == "NotAllowed"
    message = reply.data["message"]
    assert f"laptop ({ids[0].device_id.short})" in message
    assert "phone (" not in message  # (a member, not an admin)
    assert_plain_line(message)
    assert len(net.nodes[2].groups[group_id].log) == before


def test_removing_this_device_points_to_leave() -> None:
    net, ids, _ = mesh((0,))
    reply = final(net.command(0, 3, io.RemoveDevice("family", ids[0].device_id.raw)))
    assert reply.error == "NotAllowed"
    assert "covey group leave family" in reply.data["message"]


# --- roles and the last admin ------------------------------------------------------------


def test_the_last_admin_cannot_demote_itself_or_leave() -> None:
    net, ids, group_id = mesh((0,))
    laptop = net.nodes[0]
    me = ids[0].device_id.raw
    before = len(laptop.groups[group_id].log)
    demote = final(net.command(0, 1, io.ChangeRole("family", me, "member")))
    assert demote.error == "NotAllowed"
    assert "last admin" in demote.data["message"]
    assert "covey group role DEVICE admin -g family" in demote.data["message"]
    leave = final(net.command(0, 2, io.Leave("family")))
    assert leave.error == "NotAllowed"
    assert "last admin" in leave.data["message"]
    assert len(laptop.groups[group_id].log) == before
    assert not any(isinstance(e, io.Persist) for e in net.effects(0)[-4:])
    # With a second admin, it may.
    promoted = final(net.command(0, 3, io.ChangeRole("family", ids[1].device_id.raw, "admin")))
    assert promoted.error is None, promoted.data
    assert promoted.data["changed"] == {
        "name": "phone",
        "device_id": str(ids[1].device_id),
        "role": "admin",
    }
    demoted = final(net.command(0, 4, io.ChangeRole("family", me, "member")))
    assert demoted.error is None, demoted.data
    assert laptop.groups[group_id].state.admins == [ids[1].device_id.raw]


def test_role_changes_that_change_nothing_or_come_from_a_member_are_refused() -> None:
    net, ids, _ = mesh((0, 1))
    again = final(net.command(0, 1, io.ChangeRole("family", ids[0].device_id.raw, "admin")))
    assert again.error == "NotAllowed"
    assert "already an admin" in again.data["message"]
    member = final(net.command(1, 2, io.ChangeRole("family", ids[1].device_id.raw, "admin")))
    assert member.error == "NotAllowed"
    assert f"laptop ({ids[0].device_id.short})" in member.data["message"]


def test_an_invitation_by_a_member_names_the_admins_and_the_way_forward() -> None:
    """Finding 6f: the refusal named nobody and no way forward."""
    net, ids, _ = mesh((1,), admins=(0, 2))
    reply = final(net.command(1, 1, io.Invite("family")))
    assert reply.error == "NotAllowed"
    message = reply.data["message"]
    assert f"laptop ({ids[0].device_id.short})" in message
    assert f"tablet ({ids[2].device_id.short})" in message
    assert "covey group role phone admin -g family" in message
    assert_plain_line(message)
    assert net.nodes[1].invitations == {}


# --- leave ------------------------------------------------------------------------


def test_leaving_erases_the_keys_with_the_op_then_tells_a_member_then_forgets_the_group() -> None:
    net, ids, group_id = mesh((2,))  # the tablet alone: nobody to tell yet
    tablet = net.nodes[2]
    group = tablet.groups[group_id]
    assert group.keys
    mark = len(net.log)
    reply = final(net.command(2, 5, io.Leave("family")))
    assert reply.error is None, reply.data
    assert reply.data["delivered"] is False
    assert names(reply.data["to_tell"]) == ["laptop", "phone"]
    persists = [e for e in net.effects(2, mark) if isinstance(e, io.Persist)]
    # One transaction: the leave's op stored, the keys erased.
    assert persists[0] == io.Persist(groups=(group_id,), erased=(group_id,))
    assert group.keys == {}
    assert ids[2].device_id.raw not in group.state.members
    assert group_id in tablet.groups  # kept until a member has the leave
    assert tablet.leaving == {group_id: tablet.generation}
    # Still advertising for the members it must tell.
    advert = [e for e in net.effects(2) if isinstance(e, io.Advertise)][-1]
    assert net.adverts[advert.name][0] == 2
    # The laptop comes online: the leave reaches it, and the tablet forgets the group.
    mark = len(net.log)
    net.start(0)
    laptop_group = net.nodes[0].groups[group_id]
    assert ids[2].device_id.raw not in laptop_group.state.members
    assert ids[2].device_id.raw not in laptop_group.state.current_epoch.recipients
    assert group_id not in tablet.groups
    assert io.Persist(shredded=(group_id,)) in net.effects(2, mark)
    left = [e for e in net.effects(2, mark) if isinstance(e, io.Notify) and e.event == "left"]
    assert left[0].data == {"group": "family", "told": "laptop"}


def test_a_leave_with_a_member_online_replies_once_it_is_delivered() -> None:
    net, ids, group_id = mesh((0, 2))
    reply = final(net.command(2, 5, io.Leave("family")))
    assert reply.data["delivered"] is True
    assert names(reply.data["told"]) == ["laptop"]
    assert names(reply.data["to_tell"]) == ["phone"]  # it hears from the laptop
    assert group_id not in net.nodes[2].groups
    assert ids[2].device_id.raw not in net.nodes[0].groups[group_id].state.members


def test_a_leave_not_yet_delivered_survives_a_restart_without_its_keys() -> None:
    net, ids, group_id = mesh((2,))
    final(net.command(2, 5, io.Leave("family")))
    raws = [op.raw for op in net.nodes[2].groups[group_id].log.order]
    reloaded = Group.replica(ids[2], group_id, raws)
    assert reloaded.keys  # a replay re-opens the wraps still in the log ...
    restarted = Node(ids[2], [reloaded])
    assert reloaded.keys == {}  # ... and the node drops them at once
    assert group_id in restarted.leaving
    effects = restarted.handle(io.Tick(), NOW + 200, SeededRng("restart"))
    assert any(isinstance(e, io.Advertise) for e in effects)  # still telling the others


def test_the_last_member_cannot_leave() -> None:
    net, _, group_id = mesh((0,), names=("laptop",))
    reply = final(net.command(0, 1, io.Leave("family")))
    assert reply.error == "NotAllowed"
    assert "covey group shred family" in reply.data["message"]
    assert group_id in net.nodes[0].groups


# --- a removed device -------------------------------------------------------------------


def test_a_removed_device_learns_it_says_so_and_stops_dialing() -> None:
    net, ids, group_id = mesh((0, 2))
    laptop, phone = net.nodes[0], net.nodes[1]
    # (the laptop's advert while the phone was a member: tags the phone recognizes)
    old_tags = next(tags for _, (j, tags) in net.adverts.items() if j == 0)
    final(net.command(0, 7, io.RemoveDevice("family", ids[1].device_id.raw)))
    after = laptop.groups[group_id].rotate(int(net.now), SeededRng("after"))  # a later epoch
    laptop.generation += 1
    # The phone comes back with its old view: the laptop sees its advert and
    # dials it once, sending what led to its removal (not what came after).
    mark = len(net.log)
    net.start(1)
    group = phone.groups[group_id]
    assert ids[1].device_id.raw not in group.state.members
    assert after.id not in group.log
    assert after.id not in group.keys
    removed = [e for e in net.effects(1, mark) if isinstance(e, io.Notify) and e.event == "removed"]
    assert removed == [io.Notify("removed", {"group": "family", "by": "laptop", "time": NOW + 100})]
    # It stops advertising for that group, and never dials for it again, even
    # when an old advert of a member shows up and its logs change.
    assert any(isinstance(e, io.Withdraw) for e in net.effects(1, mark))
    assert not any(
        isinstance(e, io.Advertise) for e in net.effects(1, mark)[-3:]
    )  # (no group left to advertise for)
    mark = len(net.log)
    phone.generation += 5
    net.feed(1, io.AdvertSeen("stale", (net.address(0),), 4242, old_tags))
    assert ids[0].device_id.raw in phone.peers  # recognized: only the rule stops the dial
    for _ in range(5):
        net.tick(3600)
    assert not any(isinstance(e, io.Dial) for e in net.effects(1, mark))
    # Its own commands say why they cannot be done.
    rotate = final(net.command(1, 9, io.Rotate("family")))
    assert rotate.error == "NotAMember"
    assert rotate.data["message"] == "this device was removed from 'family' by 'laptop'"
