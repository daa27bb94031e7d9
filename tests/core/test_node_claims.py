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


def test_a_restarted_node_counts_the_window_again() -> None:
    """When a node first held a claim is kept in memory: after a restart the window
    counts from then (longer, never shorter)."""
    identities, groups, _, _ = claimed_household()
    first = Node(identities[1], [groups[1]])
    first.handle(io.Tick(), NOW + 100, SeededRng("a"))
    effects = first.handle(io.Tick(), NOW + 100 + WINDOW + 1, SeededRng("b"))
    assert any(isinstance(e, io.Notify) and e.event == "claim_witness" for e in effects)
    identities, groups, _, _ = claimed_household()
    again = Node(identities[1], [groups[1]])
    again.handle(io.Tick(), NOW + 100 + WINDOW, SeededRng("c"))  # a restart, late
    effects = again.handle(io.Tick(), NOW + 100 + WINDOW + 1, SeededRng("d"))
    assert not any(isinstance(e, io.Notify) and e.event == "claim_witness" for e in effects)
    wake = again._next_wake()
    assert wake is not None
    assert wake <= NOW + 100 + 2 * WINDOW
