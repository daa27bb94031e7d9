"""Pending claims through the pure nodes (PROTOCOL.md 19.4, 19.5): every node says a
claim is pending, witnesses it once the window has passed by its own clock,
and the most senior member able to completes it once witnessed.

A household (laptop, phone, tablet: three people, each a device of its own)
with a dealing (K = 2, one paper share); phone and tablet approve a new
device's admission, and tablet claims it; the nodes start from there.
"""

from __future__ import annotations

from covey.core import escrow
from covey.core.identity import create_identity
from covey.core.node import Node, io
from covey.core.ops import request_id
from covey.sim.dealing import seeded_dealer
from tests.conftest import NOW, SeededRng
from tests.core.test_node_devices import Mesh, household

WINDOW = 3600


def claimed_household():
    identities, groups = household()
    laptop = groups[0]
    planned = escrow.plan(laptop.state, 2, 1, WINDOW)
    dealt = seeded_dealer(SeededRng("node-claims"))(2, planned.count)
    body, _ = escrow.deal_body(laptop.id, dealt, planned, NOW + 10, SeededRng("s"))
    laptop.deal(body, NOW + 10)
    for g in groups[1:]:
        for op in laptop.log.order:
            g.receive(op.raw)
    new = create_identity("new-phone", NOW, SeededRng("new-phone"))
    request = request_id(new.record_bytes, "admit", None)
    a = groups[1].approve(request, "admit", None, NOW + 20)
    groups[2].receive(a.raw)
    b = groups[2].approve(request, "admit", None, NOW + 21)
    claim = groups[2].claim_admission(new.record_bytes, [a.id, b.id], NOW + 22)
    everything = [op.raw for op in groups[2].log.order]
    for g in groups[:2]:
        for raw in everything:
            g.receive(raw)
    return identities, groups, new, claim.id


def notices(net: Mesh, i: int, event: str) -> list[dict]:
    return [e.data for e in net.effects(i) if isinstance(e, io.Notify) and e.event == event]


def test_a_claim_is_announced_witnessed_after_its_window_and_completed() -> None:
    identities, groups, new, claim = claimed_household()
    net = Mesh([Node(me, [g]) for me, g in zip(identities, groups, strict=True)], set())
    net.now = NOW + 100
    net.start(0, 1, 2)
    for i in range(3):
        [pending] = notices(net, i, "claim_pending")
        assert pending["device"] == "new-phone"
        assert pending["kind"] == "admit"
        assert pending["witnesses_needed"] == 2
    # Before the window has passed, nobody witnesses and nobody completes.
    net.tick(WINDOW - 60)
    assert all(not notices(net, i, "claim_witness") for i in range(3))
    net.tick(120)
    for i in range(3):
        assert notices(net, i, "claim_witness"), i
    net.announce()  # (the witnesses meet)
    net.tick(1)
    net.announce()
    net.tick(60)
    completed = [i for i in range(3) if notices(net, i, "claim_completed")]
    assert completed == [0]  # the most senior at once; the next would wait 30 s more
    for i in range(3):
        state = net.nodes[i].groups[groups[0].id].state
        assert state.claims[claim].status == "completed", i
        assert new.device_id.raw in state.members


def test_a_vetoed_claim_is_neither_witnessed_nor_completed() -> None:
    identities, groups, _, claim = claimed_household()
    veto = groups[0].veto(claim, NOW + 30)  # the laptop is the admin
    for g in groups[1:]:
        g.receive(veto.raw)
    net = Mesh([Node(me, [g]) for me, g in zip(identities, groups, strict=True)], set())
    net.now = NOW + 100
    net.start(0, 1, 2)
    net.tick(2 * WINDOW)
    net.announce()
    for i in range(3):
        assert not notices(net, i, "claim_pending")
        assert not notices(net, i, "claim_witness")
        assert groups[0].id in net.nodes[i].groups
        assert net.nodes[i].groups[groups[0].id].state.claims[claim].status == "vetoed"


def test_a_restarted_node_counts_the_window_from_when_it_first_held_the_claim() -> None:
    """When this device first held a claim is kept in its store (`Group.claims_held`,
    written by a Persist the moment it is noted): a node restarted halfway through
    the window witnesses when the window ends, not a window after the restart (a
    device that sleeps every night never saw a window of days pass). A device
    that never held the claim before counts from when it first does."""
    identities, groups, _, claim = claimed_household()
    first = Node(identities[1], [groups[1]])
    effects = first.handle(io.Tick(), NOW + 100.5, SeededRng("a"))
    assert groups[1].claims_held == {claim: NOW + 101}  # (whole seconds, rounded up)
    assert any(isinstance(e, io.Persist) and groups[1].id in e.groups for e in effects)
    # The device sleeps; a new node starts from what the store kept.
    again = Node(identities[1], [groups[1]])
    effects = again.handle(io.Tick(), NOW + 100 + WINDOW // 2, SeededRng("b"))
    assert any(isinstance(e, io.Notify) and e.event == "claim_pending" for e in effects)
    assert again._claim_times() == [NOW + 101 + WINDOW]
    effects = again.handle(io.Tick(), NOW + 100 + WINDOW, SeededRng("c"))
    assert not any(isinstance(e, io.Notify) and e.event == "claim_witness" for e in effects)
    effects = again.handle(io.Tick(), NOW + 101 + WINDOW, SeededRng("d"))
    assert any(isinstance(e, io.Notify) and e.event == "claim_witness" for e in effects)
    # A device holding the claim for the first time counts from then.
    identities, groups, _, claim = claimed_household()
    late = Node(identities[1], [groups[1]])
    late.handle(io.Tick(), NOW + 100 + WINDOW, SeededRng("e"))
    assert groups[1].claims_held == {claim: NOW + 100 + WINDOW}
    effects = late.handle(io.Tick(), NOW + 100 + WINDOW + 1, SeededRng("f"))
    assert not any(isinstance(e, io.Notify) and e.event == "claim_witness" for e in effects)
    assert late._claim_times() == [NOW + 100 + 2 * WINDOW]


def test_a_claim_no_longer_pending_is_forgotten_by_the_store() -> None:
    identities, groups, _, claim = claimed_household()
    node = Node(identities[1], [groups[1]])
    node.handle(io.Tick(), NOW + 100, SeededRng("a"))
    assert claim in groups[1].claims_held
    veto = groups[0].veto(claim, NOW + 30)
    groups[1].receive(veto.raw)
    effects = node.handle(io.Tick(), NOW + 200, SeededRng("b"))
    assert groups[1].claims_held == {}
    assert any(isinstance(e, io.Persist) and groups[1].id in e.groups for e in effects)
