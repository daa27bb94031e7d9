"""Asking holders and approving, through the pure nodes (PROTOCOL.md 19.2, 19.3).

A household (laptop, phone, tablet: three people, each a device of its own)
with a dealing (K = 2, one paper share), and a new device (node 3) that
asks: to be admitted, or to recover a person. Holders look, then approve;
the K-th approval of an admission claims it; a recovery is claimed by the
asking device once it holds K shares, and handed to the holder.
"""

from __future__ import annotations

from covey.core import escrow
from covey.core.identity import create_identity
from covey.core.node import Node, io
from covey.sim.dealing import seeded_dealer
from tests.conftest import NOW, SeededRng
from tests.core.test_node_devices import Mesh, household

WINDOW = 3600


def world():
    identities, groups = household()
    laptop = groups[0]
    planned = escrow.plan(laptop.state, 2, 1, WINDOW)
    dealt = seeded_dealer(SeededRng("asking"))(2, planned.count)
    body, paper = escrow.deal_body(laptop.id, dealt, planned, NOW + 5, SeededRng("s"))
    laptop.deal(body, NOW + 5)
    for g in groups[1:]:
        for op in laptop.log.order:
            g.receive(op.raw)
    new = create_identity("new-phone", NOW, SeededRng("asking-new"))
    nodes = [Node(me, [g]) for me, g in zip(identities, groups, strict=True)] + [Node(new, [])]
    net = Mesh(nodes, set())
    net.now = NOW + 100
    net.start(0, 1, 2, 3)
    return net, groups[0].id, new, paper


def ask(net: Mesh, action: io.AskHolders) -> str:
    [reply] = net.command(3, 1, action)
    assert reply.error is None, reply
    assert reply.data["event"] == "asking"
    assert not reply.final
    net.announce()
    return reply.data["code"]


def approve(net: Mesh, holder: int, request: int, code: str, device: str) -> io.Reply:
    net.command(holder, request, io.ApproveRequest(code, device))
    net.announce()
    replies = net.replies(holder, request)
    assert replies, "no reply"
    return replies[-1]


def test_holders_look_then_approve_and_the_kth_approval_claims_the_admission() -> None:
    net, group_id, new, _ = world()
    code = ask(net, io.AskHolders("family"))
    looked = approve(net, 1, 10, code, "")
    assert looked.data["event"] == "looked"
    assert looked.data["device"] == "new-phone"
    assert looked.data["safety_words"] == new.record.safety_words
    assert not net.nodes[1].groups[group_id].state.approvals  # a look approves nothing
    first = approve(net, 1, 11, code, looked.data["device_id"])
    assert first.data["event"] == "approved"
    assert not first.data["claimed"]
    second = approve(net, 2, 12, code, "*")
    assert second.data["claimed"]
    asked = net.replies(3, 1)
    assert asked[-1].final
    assert asked[-1].data["event"] == "claimed"
    assert asked[-1].data["kind"] == "admit"
    state = net.nodes[3].groups[group_id].state  # the asker keeps the group's log
    assert new.device_id.raw not in state.members
    assert [c.status for c in state.claims.values()] == ["pending"]


def test_a_holder_approves_only_the_device_it_looked_at() -> None:
    net, group_id, _, _ = world()
    code = ask(net, io.AskHolders("family"))
    other = create_identity("someone-else", NOW, SeededRng("else"))
    reply = approve(net, 1, 10, code, str(other.device_id))
    assert reply.data["event"] == "other_device"
    assert not net.nodes[1].groups[group_id].state.approvals


def test_a_recovery_is_claimed_with_one_release_and_the_paper() -> None:
    net, group_id, new, paper = world()
    words = (paper[0].mnemonic(),)
    code = ask(net, io.AskHolders("family", person="tablet", words=words))
    reply = approve(net, 1, 10, code, "*")  # the phone releases its share
    assert reply.data["event"] == "approved"
    assert reply.data["claimed"]
    asked = net.replies(3, 1)
    assert asked[-1].data["event"] == "claimed"
    assert asked[-1].data["kind"] == "recover"
    assert asked[-1].data["paper"] == [paper[0].member_index + 1]
    phone = net.nodes[1].groups[group_id].state
    [claim] = phone.claims.values()
    assert claim.claim.kind == "recover"
    assert claim.claim.device.device_id == new.device_id
    assert phone.dealing is not None
    assert phone.dealing.void == "a recovery claim spent it"


def test_the_tablet_cannot_approve_its_own_recovery() -> None:
    net, group_id, _, paper = world()
    code = ask(net, io.AskHolders("family", person="tablet", words=(paper[0].mnemonic(),)))
    reply = approve(net, 2, 10, code, "*")
    assert reply.error == "NotAllowed"
    assert "own person's recovery" in reply.data["message"]
    assert not net.nodes[2].groups[group_id].state.approvals


def test_a_mistyped_paper_share_is_named_before_anything_is_asked() -> None:
    net, _, _, paper = world()
    words = paper[0].words()
    words[5] = "zzzz"
    [reply] = net.command(3, 1, io.AskHolders("family", person="tablet", words=(" ".join(words),)))
    assert reply.error is not None
    assert "word 6" in reply.data["message"]
    assert "first words given" in reply.data["message"]


def settle(net: Mesh) -> None:
    """Past the veto window: witnesses, the completion, and the syncs that spread them."""
    net.tick(WINDOW + 10)
    for seconds in (5, 60, 600):
        net.announce()
        net.tick(seconds)
    net.announce()


def test_an_admitted_device_becomes_a_member_with_the_key_and_the_history() -> None:
    net, group_id, new, _ = world()
    code = ask(net, io.AskHolders("family"))
    approve(net, 1, 11, code, "*")
    approve(net, 2, 12, code, "*")
    settle(net)
    for i in range(4):
        group = net.nodes[i].groups[group_id]
        assert [c.status for c in group.state.claims.values()] == ["completed"], i
        assert new.device_id.raw in group.state.members, i
    asker = net.nodes[3].groups[group_id]
    assert asker.state.current_epoch.id in asker.keys
    assert asker.state.epochs[0].id in asker.keys  # the history, under `shared`


def test_a_recovered_device_replaces_the_persons_devices_which_lose_the_next_key() -> None:
    net, group_id, new, paper = world()
    tablet = net.nodes[2].me.device_id.raw
    code = ask(net, io.AskHolders("family", person="tablet", words=(paper[0].mnemonic(),)))
    approve(net, 1, 10, code, "*")
    net.online.discard(2)  # every device of the tablet's person is gone for good
    settle(net)
    for i in (0, 1, 3):
        state = net.nodes[i].groups[group_id].state
        assert new.device_id.raw in state.members, i
        assert tablet not in state.members, i
        assert state.person_name(state.person(new.device_id.raw)) == "tablet", i
        assert tablet not in state.current_epoch.recipients, i
    asker = net.nodes[3].groups[group_id]
    assert asker.state.current_epoch.id in asker.keys


def test_a_recovery_vetoed_by_the_persons_own_device_does_not_complete() -> None:
    net, group_id, new, paper = world()
    code = ask(net, io.AskHolders("family", person="tablet", words=(paper[0].mnemonic(),)))
    approve(net, 1, 10, code, "*")
    net.announce()
    net.tick(5)
    net.announce()
    [reply] = net.command(2, 20, io.VetoClaim("family"))  # the tablet was only off
    assert reply.error is None, reply
    settle(net)
    for i in range(3):  # (the asking device is not told: no member syncs with a non-member)
        state = net.nodes[i].groups[group_id].state
        assert [c.status for c in state.claims.values()] == ["vetoed"], i
        assert new.device_id.raw not in state.members
    assert new.device_id.raw not in net.nodes[3].groups[group_id].state.members


def test_a_holder_approves_after_a_look_without_seeing_the_advert_again() -> None:
    """A node that looked at a request (a join that matched the asker's advert)
    approves it in a second session with the advert it already holds: mDNS says an
    advert once, not once per command (found by the simulator's `admin-away`: every
    approval after a look timed out with "no inviting device with that code")."""
    net, group_id, _, _ = world()
    code = ask(net, io.AskHolders("family"))  # (announced once: the holders saw it)
    net.command(1, 10, io.ApproveRequest(code, ""))
    [looked] = net.replies(1, 10)
    assert looked.data["event"] == "looked"
    net.command(1, 11, io.ApproveRequest(code, looked.data["device_id"]))
    net.tick(31)
    [approved] = net.replies(1, 11)
    assert approved.error is None, approved
    assert approved.data["event"] == "approved"
    assert net.nodes[1].groups[group_id].state.approvals
