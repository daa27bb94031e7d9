"""Any delivery order converges; the incremental path equals a full replay."""

from __future__ import annotations

import random

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.harness import WEIGHTED_ACTIONS, World, summary

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("act"),
            st.integers(0, 4),
            st.sampled_from(WEIGHTED_ACTIONS),
            st.integers(0, 4),
        ),
        st.tuples(st.just("sync"), st.integers(0, 4), st.integers(0, 4), st.just(0)),
    ),
    min_size=1,
    max_size=40,
)


def run(world: World, script: list[tuple[str, int, str | int, int]]) -> None:
    for kind, a, b, c in script:
        if kind == "act":
            world.act_somehow(a, str(b), c)
        else:
            world.sync(a, int(b))


def full_replay(group) -> dict:
    return summary(group.log.full_replay())


@given(steps, st.integers(0, 2**32))
@settings(max_examples=150)
def test_any_delivery_order_converges(script, seed: int) -> None:
    world = World(5, seed=f"conv-{seed % 7}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    world.converge(shuffle_seed=seed)
    first, *rest = world.summaries()
    for other in rest:
        assert other == first


@given(steps, st.integers(0, 2**32))
@settings(max_examples=150)
def test_incremental_state_equals_full_replay(script, seed: int) -> None:
    world = World(5, seed=f"incr-{seed % 5}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    for group in world.replicas:
        if group.log.state is not None:
            assert summary(group.log.state) == full_replay(group)
    world.converge(shuffle_seed=seed)
    for group in world.replicas:
        assert summary(group.log.state) == full_replay(group)


@given(st.integers(0, 2**32))
def test_arrival_order_of_one_log_does_not_matter(seed: int) -> None:
    world = World(4, seed="perm")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.sync(0, 1)
    world.act(1, "remove", 0)  # concurrent with the next two
    world.act(0, "add", 3)
    world.act(0, "demote", 1)
    world.sync(1, 2)
    world.act(2, "rotate")
    ops = [op.raw for op in world.written]
    shuffled = ops[:] + ops[:3]
    random.Random(seed).shuffle(shuffled)
    fresh = World(4, seed="perm")
    fresh.deliver(shuffled, 3)
    world.converge()
    assert summary(fresh.replicas[3].state) == summary(world.replicas[0].state)


def adds_of(group, device: bytes) -> int:
    """How many valid ops of the group's log added `device`."""
    from covey.core.ops import Add

    return sum(
        1
        for op in group.log.ops.values()
        if isinstance(op.body, Add)
        and op.body.target == device
        and group.log.validity.get(op.id) is None
    )


@given(steps, st.integers(0, 2**32), st.sampled_from(["shared", "forward"]))
@settings(max_examples=150)
# Found when relay actions joined the scripts: device 2 seals while its own
# add is undone by the merge (its adder was removed concurrently).
@example(
    [("act", 0, "add", 0), ("act", 0, "remove", 0), ("act", 0, "remove", 0), ("sync", 0, 2, 0)],
    0,
    "shared",
)
def test_removed_devices_cannot_open_what_members_seal_after_seeing_it(
    script, seed, history
) -> None:
    """A device removed in the sealer's view cannot open what it sealed.

    The one exception is policy, not a leak: a device that is added *again*
    later receives the earlier keys if the group's history is `shared` at
    that point, as any newcomer does (and scripts may change the policy).
    `test_forward_history_keeps_a_readded_device_out` covers re-adding in a
    `forward` group. What a device seals whose own add the merge undid
    (a concurrent removal of its adder) opens for nobody: the reader refuses
    it as sealed by a device that was never a member (`NeverAMember`).
    """
    from covey.core.seal import open_bytes, seal_bytes
    from covey.errors import KeyUnavailable, NeedsRotation, NeverAMember, NotAMember
    from tests.conftest import SeededRng

    world = World(5, history=history, seed=f"rm-{seed % 5}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    run(world, script)
    sealed = []
    for i, group in enumerate(world.replicas):
        if group.log.state is None:
            continue
        try:
            data = seal_bytes(group, b"secret", b"", SeededRng(str(i)))
        except NeedsRotation:
            world.act(i, "heal")
            data = seal_bytes(group, b"secret", b"", SeededRng(str(i)))
        except NotAMember:
            continue
        removed = {
            device: adds_of(group, device)
            for device in set(group.state.devices) - set(group.state.members)
        }
        sealed.append((world.id(i), data, removed))
    world.converge(shuffle_seed=seed)
    for sealer, data, removed in sealed:
        for j in range(world.n):
            device = world.id(j)
            if device not in removed:
                continue
            reader = world.replicas[j]
            if adds_of(reader, device) > removed[device]:
                continue  # added again since: it may get the history, by policy
            undone = sealer not in reader.state.devices  # its own add was undone
            with pytest.raises(NeverAMember if undone else KeyUnavailable):
                open_bytes(lambda _gid, reader=reader: reader, data)


def test_forward_history_keeps_a_readded_device_out() -> None:
    from covey.core.seal import open_bytes, seal_bytes
    from covey.errors import KeyUnavailable
    from tests.conftest import SeededRng

    for history, readable in (("forward", False), ("shared", True)):
        world = World(2, history=history, seed=f"readd-{history}")
        world.act(0, "add", 1)
        world.act(0, "remove", 1)
        during = seal_bytes(world.replicas[0], b"while away", b"", SeededRng())
        world.act(0, "add", 1)
        after = seal_bytes(world.replicas[0], b"after return", b"", SeededRng())
        world.sync(0, 1)
        reader = world.replicas[1]

        def find(_group_id: bytes, reader=reader):
            return reader

        assert open_bytes(find, after)[0] == b"after return"
        if readable:
            assert open_bytes(find, during)[0] == b"while away"
        else:
            with pytest.raises(KeyUnavailable):
                open_bytes(find, during)
