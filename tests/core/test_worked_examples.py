"""PROTOCOL.md section 7's worked examples, each as a test.

Devices: A (index 0) founds the group and is the most senior; B (1) is an
admin; C (2) a member; D (3) a newcomer. "Apart" means the two sides write
ops without seeing each other's; `meet` then gives everyone everything.
"""

from __future__ import annotations

import pytest

from tests.harness import World, summary

A, B, C, D = 0, 1, 2, 3


@pytest.fixture
def world() -> World:
    world = World(4, seed="examples")
    world.act(A, "add_admin", B)
    world.act(A, "add", C)
    for device in (B, C):
        world.sync(A, device)
    return world


def meet(world: World) -> None:
    world.converge()
    first, *rest = world.summaries()
    assert all(other == first for other in rest)  # everyone agrees


def members(world: World, replica: int = A) -> dict[int, str]:
    state = world.replicas[replica].state
    return {
        i: state.members[world.id(i)].role for i in range(world.n) if world.id(i) in state.members
    }


def test_7_1_removal_wins_over_the_removed_devices_concurrent_acts(world: World) -> None:
    removal = world.act(A, "remove", B)
    add = world.act(B, "add", D)  # B, apart, adds D ...
    rotation = world.act(B, "rotate")  # ... and rotates
    meet(world)
    state = world.replicas[A].state
    assert members(world) == {A: "admin", C: "member"}
    assert add.id in state.skipped
    assert rotation.id in state.skipped
    assert state.current_epoch.id == removal.id
    assert not state.needs_healing


def test_7_2_two_admins_remove_each_other(world: World) -> None:
    a_removes_b = world.act(A, "remove", B)
    b_removes_a = world.act(B, "remove", A)
    meet(world)
    state = world.replicas[C].state
    assert members(world, C) == {A: "admin", C: "member"}  # A is senior: A's removal wins
    assert a_removes_b.id in state.applied
    assert state.skipped[b_removes_a.id].startswith("vetoed")


def test_7_3a_add_on_one_side_remove_on_the_other(world: World) -> None:
    world.act(A, "add", D)  # Grandma's tablet, at one home
    world.act(B, "remove", C)  # Dad's old phone, at the other
    meet(world)
    assert members(world) == {A: "admin", B: "admin", D: "member"}
    state = world.replicas[A].state
    # Whichever rotation is current, it was made for a different member set.
    assert state.needs_healing
    world.act(A, "heal")
    meet(world)
    state = world.replicas[A].state
    assert not state.needs_healing
    assert state.current_epoch.recipients == {world.id(i) for i in (A, B, D)}


def test_7_3b_add_by_a_concurrently_removed_admin(world: World) -> None:
    world.act(A, "remove", B)
    add = world.act(B, "add", D)  # B did not know it was removed
    world.sync(B, D)
    d_rotates = world.act(D, "rotate")  # D believes it is a member
    meet(world)
    state = world.replicas[A].state
    assert members(world) == {A: "admin", C: "member"}
    assert state.skipped[add.id].startswith("vetoed")
    assert d_rotates.id in state.skipped


def test_7_4a_admins_demoting_each_other_keep_one_admin(world: World) -> None:
    world.act(A, "demote", B)
    world.act(B, "demote", A)
    meet(world)
    assert members(world) == {A: "admin", B: "member", C: "member"}


def test_7_4b_every_admin_leaving_at_once_promotes_the_most_senior_member(world: World) -> None:
    world.act(A, "leave")
    world.act(B, "leave")
    meet(world)
    state = world.replicas[C].state
    assert members(world, C) == {C: "admin"}
    assert any("no admin" in notice for notice in state.notices)


def test_7_5_concurrent_healing_rotations_converge(world: World) -> None:
    world.act(A, "remove", C)
    world.act(B, "rotate")  # apart: still wraps for C
    world.sync(A, B)
    world.sync(B, A)
    assert summary(world.replicas[A].state) == summary(world.replicas[B].state)
    if world.replicas[A].state.needs_healing:  # depends on which rotation sorts last
        heal_a = world.act(A, "heal")
        heal_b = world.act(B, "heal")  # both heal, apart
        assert heal_a is not None
        assert heal_b is not None
    meet(world)
    state = world.replicas[A].state
    assert not state.needs_healing
    assert world.id(C) not in state.current_epoch.recipients
    for replica in (A, B):
        assert state.current_epoch.id in world.replicas[replica].keys


def test_7_5_healing_is_needed_under_some_orders() -> None:
    """The example above must exercise the healing branch for some op IDs."""
    needed = set()
    for seed in range(10):
        world = World(3, seed=f"heal-order-{seed}")
        world.act(A, "add_admin", B)
        world.act(A, "add", C)
        world.sync(A, B)
        world.act(A, "remove", C)
        world.act(B, "rotate")
        world.sync(A, B)
        needed.add(world.replicas[B].state.needs_healing)
    assert needed == {True, False}


def test_7_3a_in_a_shared_group_the_healed_newcomer_reads_the_other_side() -> None:
    """D, added on one side, reads what B sealed on the other during the partition."""
    from covey.core.seal import open_bytes, seal_bytes
    from tests.conftest import SeededRng

    world = World(4, seed="shared-heal")
    world.act(A, "add_admin", B)
    world.act(A, "add", C)
    world.sync(A, B)
    world.act(A, "add", D)  # one side
    world.act(B, "remove", C)  # the other side
    sealed_by_b = seal_bytes(world.replicas[B], b"sealed apart", b"", SeededRng("b"))
    world.sync(B, A)
    world.sync(A, B)
    assert world.replicas[A].state.needs_healing
    world.act(A, "heal")
    world.sync(A, D)
    world.sync(B, D)
    reader = world.replicas[D]
    assert open_bytes(lambda _g: reader, sealed_by_b)[0] == b"sealed apart"


def test_7_6_a_removed_admin_cannot_keep_its_power_through_a_device_it_adds(
    world: World,
) -> None:
    """Review finding (high): A removes admin B; apart, B adds D as admin and D removes A.

    A's removal of B vetoes B's concurrent add of D, so D was never a
    member, and D's removal of A rests on nothing. Before the fix every
    replica ended with B and D admins and the founder out.
    """
    a_removes_b = world.act(A, "remove", B)
    b_adds_d = world.act(B, "add_admin", D)
    world.sync(B, D)
    d_removes_a = world.act(D, "remove", A)
    assert d_removes_a is not None
    meet(world)
    state = world.replicas[C].state
    assert members(world, C) == {A: "admin", C: "member"}
    assert a_removes_b.id in state.applied
    assert b_adds_d.id in state.skipped
    assert d_removes_a.id in state.skipped
    assert a_removes_b.id in state.in_force
    assert d_removes_a.id not in state.in_force
