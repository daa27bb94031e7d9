"""History for newcomers at a constant size per op (issue 9, finding 5h).

Every op that starts an epoch links back to the epochs just before it (the
tops of its causal past), each key sealed under the new epoch's key, so a
holder of a key walks the chain back; in a `forward` group the chain is cut
wherever walking it would hand a device a key it was not wrapped.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import crypto, keys
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.log import GroupLog
from covey.core.ops import (
    LINK_BYTES,
    MAX_LINKS,
    Add,
    Link,
    links_from_wire,
    links_of,
    links_to_wire,
    rotation_of,
)
from covey.core.seal import open_bytes, seal_bytes
from covey.errors import BadKeyWrap, CoveyError, KeyUnavailable, MalformedMessage, NeverAMember
from tests.conftest import NOW, SeededRng
from tests.harness import ACTIONS, World


def _grown(epochs: int, members: int = 2, history: str = "shared") -> tuple[Group, list]:
    """A group of `members` members with `epochs` epochs, and identities to add next."""
    rng = SeededRng(f"grown-{epochs}-{members}")
    people = [create_identity(f"d{i}", NOW, SeededRng(f"id-{i}")) for i in range(members + 1)]
    group = Group.create(people[0], "g", history, NOW, rng)  # type: ignore[arg-type]
    for person in people[1:members]:
        group.add(person.record_bytes, "member", NOW, rng)
    while len(group.state.epochs) < epochs:
        group.rotate(NOW, rng)
    return group, people[members:]


def test_an_add_does_not_grow_with_the_number_of_past_epochs() -> None:
    """Before: an add carried every epoch key the adder held (64 bytes more per
    epoch: 179 KB per add at 1,000 members). Now: one link per epoch it follows."""
    sizes = {}
    for epochs in (10, 200):
        group, (newcomer, *_) = _grown(epochs)
        sizes[epochs] = len(group.add(newcomer.record_bytes, "member", NOW, SeededRng()).raw)
    one_link = 32 + 72 + 8  # an epoch ID, a sealed key, and their encoding
    assert abs(sizes[200] - sizes[10]) <= one_link, sizes


class _Counter:
    def __init__(self) -> None:
        self.calls = 0


def _count(monkeypatch, owner, name: str) -> _Counter:
    counter = _Counter()
    original = getattr(owner, name)

    def counted(*args, **kwargs):
        counter.calls += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return counter


def test_rotation_work_does_not_grow_with_members_times_epochs(monkeypatch) -> None:
    """Before: `rotate` looked for history gaps over every (member, epoch),
    opening every epoch's history bundle and testing causality per pair
    (7 to 17 s at 1,000 members grown by adds). Counted, not timed: the hashes,
    decryptions and causality queries one rotation makes are the same in a
    group grown by 15 adds as in one grown by 60."""
    work = {}
    for members in (15, 60):
        group, _ = _grown(members, members)
        with monkeypatch.context() as patch:
            counters = [
                _count(patch, crypto, "blake2b"),
                _count(patch, crypto, "aead_open"),
                _count(patch, GroupLog, "clock_value"),
                _count(patch, GroupLog, "before"),
            ]
            group.rotate(NOW + 1, SeededRng("r"))
        work[members] = [c.calls for c in counters]
    assert work[60] == work[15], work


def test_an_orphan_branch_of_rotations_is_not_scanned_again_on_every_call(monkeypatch) -> None:
    """Review of history links, H2 (low, denial of service): a removed admin's
    vetoed branch of rotations, wrapped for itself alone, leaves a top no
    member holds, which sends `history_tops` through every epoch on every
    call, at O(members) each (about 110 ms per call at 10,000 rotations and
    401 members). Counted, not timed: after one more op, the call looks up
    the recipients of the new epochs only."""
    A, B, C = 0, 1, 2
    world = World(3, seed="h2-orphan")
    world.act(A, "add_admin", B)
    world.act(A, "add", C)
    world.converge()
    world.act(A, "remove", B)  # apart from ...
    world.act(B, "remove", A)  # ... B's branch (the founder wins the cycle)
    world.act(B, "remove", C)
    branch = [world.act(B, "rotate") for _ in range(40)]  # wrapped for B alone
    world.converge()
    group = world.replicas[A]
    assert all(op is not None and op.id in group.state.skipped for op in branch)
    assert world.id(B) not in group.state.members
    group.history_tops()
    world.act(A, "rotate")
    with monkeypatch.context() as patch:
        looked_up = _count(patch, Group, "_recipients")
        tops = group.history_tops()
    assert looked_up.calls <= 2, looked_up.calls
    fresh = Group.replica(world.identities[C], group.id, [op.raw for op in group.log.order])
    assert tops == fresh.history_tops()  # (computed with nothing kept)


def test_entitlement_is_linear_in_re_adds(monkeypatch) -> None:
    """Review of history links, H4 (low, denial of service): whether a device
    joined with the history compared each of its applied adds with every
    other (0.32 s per call at 1,000 re-adds by an admin), on every call.
    Counted: causality queries grow with the adds, not their square."""
    A, D = 0, 1
    world = World(2, seed="h4-readds")
    adds = 0
    for _ in range(60):
        world.act(A, "add", D)
        adds += 1
        world.act(A, "remove", D)
    world.act(A, "add", D)
    group = world.replicas[A]
    with monkeypatch.context() as patch:
        queries = _count(patch, GroupLog, "before")
        assert group._entitled(world.id(D))
        assert group._entitled(world.id(D))  # (kept until the log grows)
    assert queries.calls <= 2 * (adds + 1), queries.calls


# --- a newcomer in a `shared` group reads everything before it ----------------------


#: Random scripts: devices act apart and sync pairwise, so partitions and
#: merges happen all the time. (No policy changes: those are below.)
SHARED_ACTIONS = (*(a for a in ACTIONS if a != "policy"), "add", "add", "rotate")
steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("act"), st.integers(0, 5), st.sampled_from(SHARED_ACTIONS), st.integers(0, 5)
        ),
        st.tuples(st.just("sync"), st.integers(0, 5), st.integers(0, 5), st.just(0)),
        st.tuples(st.just("seal"), st.integers(0, 5), st.just(""), st.just(0)),
    ),
    min_size=1,
    max_size=60,
)


def _play(world: World, script, notes: list[bytes]) -> None:
    for kind, a, b, c in script:
        if kind == "act":
            world.act_somehow(a, str(b), c)
        elif kind == "sync":
            world.sync(a, int(b))
        else:
            _seal(world, a, notes)


def _seal(world: World, i: int, notes: list[bytes]) -> None:
    """Device i seals a note (healing first if it must, as `covey seal` does)."""
    group = world.replicas[i % world.n]
    if group.log.state is None or world.id(i % world.n) not in group.state.members:
        return
    if group.state.needs_healing:
        world.act(i % world.n, "heal")
    with contextlib.suppress(CoveyError):  # it does not hold the current key yet
        notes.append(seal_bytes(group, f"note {len(notes)}".encode(), b"", SeededRng()))


def _members(world: World) -> list[int]:
    state = world.replicas[0].state
    return [i for i in range(world.n) if world.id(i) in state.members]


def _heal(world: World) -> int:
    """Every member's node would: heal the current epoch, close history gaps; until none is left."""
    for healed in range(4 * world.n):
        for i in _members(world):
            group = world.replicas[i]
            if group.state.needs_healing:
                world.act(i, "heal")
            elif group.needs_history_heal:
                world.act(i, "rotate")
            else:
                continue
            world.converge()
            break
        else:
            return healed
    raise AssertionError("healing did not settle")


def _epoch_ops(group: Group) -> list:
    log = group.log
    return [
        op
        for op in log.ops.values()
        if rotation_of(op.body) is not None and log.validity[op.id] is None
    ]


@given(steps, st.integers(0, 2**32))
@settings(max_examples=120)
def test_every_member_of_a_shared_group_reads_what_any_member_can(script, seed: int) -> None:
    """Partitions, merges, removals, re-adds: once synced and healed, every
    current member (a newcomer added concurrently with rotations elsewhere
    included) holds every key any current member holds, and opens every
    note any member sealed under an epoch a current member was a recipient
    of. A device added last reads every earlier epoch of the group."""
    world = World(7, seed=f"shared-{seed % 11}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    notes: list[bytes] = []
    _play(world, script, notes)
    world.converge(shuffle_seed=seed)
    _heal(world)
    _check_shared(world, notes)


def _check_shared(world: World, notes: list[bytes]) -> None:
    members = _members(world)
    if not members:
        return  # the last members left concurrently: nobody is left to read
    held = [set(world.replicas[i].keys) for i in members]
    union = set().union(*held)
    for i, mine in zip(members, held, strict=True):
        assert mine == union, f"device {i} lacks {len(union - mine)} keys other members hold"
    # A newcomer added now, by an admin, reads every epoch a member holds.
    state = world.replicas[members[0]].state
    admin = next(i for i in members if state.members[world.id(i)].role == "admin")
    outsiders = [i for i in range(world.n) if i not in members]
    if outsiders:
        newcomer = outsiders[-1]
        world.act(admin, "add", newcomer)
        world.converge()
        _heal(world)
        reader = world.replicas[newcomer]
        assert union <= set(reader.keys)
        members = _members(world)
    current = frozenset(world.id(i) for i in members)
    for data in notes:
        opened_by = []
        for i in members:
            group = world.replicas[i]
            try:
                _, opened = open_bytes(lambda _g, group=group: group, data)
            except KeyUnavailable:
                opened_by.append(None)
                continue
            except NeverAMember:
                # Sealed by a device whose add the merge undid: refused by
                # every member (finding 5g), whatever keys they hold.
                opened_by.append("refused")
                continue
            opened_by.append(opened.epoch)
        if all(o is None for o in opened_by):
            # Sealed under an epoch no current member was a recipient of.
            sealer_epoch = _sealed_epoch(world.replicas[members[0]], data)
            recipients = rotation_of(world.replicas[members[0]].log.ops[sealer_epoch].body)
            assert recipients is not None
            assert recipients.recipients.isdisjoint(current)
        else:
            assert None not in opened_by, "some members open a note, others cannot"


#: Rounds of a partition: each side (even and odd devices) acts apart, its
#: devices in sync with each other; then the sides merge and heal.
SIDE_ACTIONS = ("rotate", "add", "add", "add_admin", "remove", "seal", "seal")
rounds = st.lists(
    st.lists(
        st.tuples(st.integers(0, 1), st.sampled_from(SIDE_ACTIONS), st.integers(0, 7)),
        min_size=3,
        max_size=10,
    ),
    min_size=1,
    max_size=3,
)


def _side_act(world: World, side: int, action: str, pick: int, notes: list[bytes]) -> None:
    mine = list(range(side, world.n, 2))
    actors = [i for i in mine if world._member_in_own_view(i)]
    if not actors:
        return
    actor = actors[pick % len(actors)]
    if action == "seal":
        _seal(world, actor, notes)
    else:
        view = world.replicas[actor].state.members
        if action in ("add", "add_admin"):
            targets = [i for i in mine if world.id(i) not in view]
        else:
            targets = [i for i in range(world.n) if world.id(i) in view and i != actor]
        if action != "rotate" and not targets:
            return
        world.act(actor, action, targets[pick % len(targets)] if targets else 0)
    for other in mine:
        world.sync(actor, other)


@given(rounds, st.integers(0, 2**32))
@settings(max_examples=60)
def test_a_newcomer_added_on_one_side_of_a_partition_reads_the_other_side(rounds, seed) -> None:
    """Both sides rotate, add, remove and seal apart; after the merge and its
    healing rotations, every member holds every key any member holds, and
    opens every note a member could (7.3a, generalised)."""
    world = World(8, seed=f"sides-{seed % 7}")
    world.act(0, "add_admin", 1)
    world.act(0, "add", 2)
    world.act(0, "add", 3)
    world.converge()
    notes: list[bytes] = []
    for acts in rounds:
        for side, action, pick in acts:
            _side_act(world, side, action, pick, notes)
        world.converge(shuffle_seed=seed)
        _heal(world)
    _check_shared(world, notes)


def _sealed_epoch(group: Group, data: bytes) -> bytes:
    from covey.core import wire
    from covey.core.seal import MAGIC, SealHeader

    length = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
    header = wire.parse_envelope(data[len(MAGIC) + 4 : len(MAGIC) + 4 + length])
    return SealHeader.from_wire(header.body).epoch


# --- `forward`: the chain is cut wherever it would hand a device a key it was not wrapped --


FORWARD_ACTIONS = (*ACTIONS, "add", "add", "rotate", "policy")
forward_steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("act"), st.integers(0, 5), st.sampled_from(FORWARD_ACTIONS), st.integers(0, 5)
        ),
        st.tuples(st.just("sync"), st.integers(0, 5), st.integers(0, 5), st.just(0)),
    ),
    min_size=1,
    max_size=50,
)


def _adds_under_shared(log: GroupLog, device: bytes) -> bool:
    """Whether any valid add of `device` was made while its author saw `shared` history."""
    for op in log.introductions.get(device, ()):
        if isinstance(op.body, Add):
            past = log.state_of(op.parents)
            assert past is not None
            if past.history == "shared":
                return True
    return False


def _only_wrapped_keys(world: World) -> None:
    """Every device added only under `forward` holds keys of epochs wrapped for it, no other.

    (The founder and devices ever added under `shared` may hold more: by policy.)
    """
    for i, group in enumerate(world.replicas):
        device = world.id(i)
        truth = group.log  # (holds every op of every key it holds)
        if i == 0 or device not in truth.introductions or _adds_under_shared(truth, device):
            continue
        for epoch in group.keys:
            rotation = rotation_of(truth.ops[epoch].body)
            assert rotation is not None
            assert device in rotation.recipients, (
                f"device {i}, added under forward only, holds the key of an epoch "
                "that was not wrapped for it"
            )


@given(forward_steps, st.integers(0, 2**32))
@settings(max_examples=150)
def test_in_a_forward_group_a_newcomer_gets_no_key_it_was_not_wrapped(script, seed) -> None:
    """Adversarial scripts: partitions, removals and re-adds, and the policy
    switched back and forth concurrently with adds. A device whose adds were
    all made under `forward` never holds (so never opens anything sealed
    under) an epoch before its add, nor one made apart from it, whatever
    the chain links later; not after healing, not after switching to
    `shared` either."""
    world = World(6, history="forward", seed=f"fwd-{seed % 7}")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    for kind, a, b, c in script:
        if kind == "act":
            world.act_somehow(a, str(b), c)
        else:
            world.sync(a, int(b))
        _only_wrapped_keys(world)
    world.converge(shuffle_seed=seed)
    _heal(world)
    _only_wrapped_keys(world)


def test_a_forward_newcomer_opens_nothing_sealed_before_it_joined() -> None:
    world = World(3, history="forward", seed="fwd-notes")
    world.act(0, "add", 1)
    world.sync(0, 1)
    before = []
    for i in range(4):
        world.act(i % 2, "rotate")
        world.sync(0, 1)
        world.sync(1, 0)
        before.append(seal_bytes(world.replicas[i % 2], b"before", b"", SeededRng(str(i))))
    add = world.act(0, "add", 2)
    assert add is not None
    assert add.body.links
    assert all(link.cut for link in add.body.links)
    world.sync(0, 1)
    world.act(1, "rotate")  # links back to the add: nothing more for anyone
    world.converge()
    after = seal_bytes(world.replicas[1], b"after", b"", SeededRng("after"))
    reader = world.replicas[2]
    assert open_bytes(lambda _g: reader, after)[0] == b"after"
    for data in before:
        try:
            open_bytes(lambda _g: reader, data)
        except KeyUnavailable:
            continue
        raise AssertionError("a forward newcomer opened what was sealed before it joined")


def test_a_device_added_under_forward_gets_nothing_when_the_group_turns_shared() -> None:
    """D is added under `forward` while, apart, B rotates; later the group turns
    `shared` and heals. B's epoch (made without D) and everything before D's
    add stay closed to D: no rotation links B's epoch while D is a member. A
    device added under `shared` once D is gone reads B's epoch."""
    A, B, D, E = 0, 1, 2, 3
    world = World(4, history="forward", seed="fwd-then-shared")
    world.act(A, "add_admin", B)
    world.sync(A, B)
    world.act(A, "add", D)  # one side
    apart = world.act(B, "rotate")  # the other side
    sealed_apart = seal_bytes(world.replicas[B], b"apart", b"", SeededRng("b"))
    world.converge()
    world.act(A, "policy")  # now shared
    world.converge()
    assert world.replicas[A].state.history == "shared"
    assert world.replicas[A].history_gaps() == []  # D did not join with the history
    _heal(world)
    for _ in range(2):
        world.act(A, "rotate")
    world.converge()
    _heal(world)
    assert apart is not None
    assert apart.id not in world.replicas[D].keys
    with pytest.raises(KeyUnavailable):
        open_bytes(lambda _g: world.replicas[D], sealed_apart)
    _only_wrapped_keys(world)
    world.act(A, "remove", D)
    world.act(A, "add", E)
    world.converge()
    _heal(world)
    assert open_bytes(lambda _g: world.replicas[E], sealed_apart)[0] == b"apart"
    _only_wrapped_keys(world)


def test_an_add_under_forward_concurrent_with_a_switch_to_shared_carries_no_history() -> None:
    """The policy an op follows is the one its author saw; forward wins the merge."""
    world = World(3, history="forward", seed="fwd-concurrent")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    world.act(0, "rotate")
    world.sync(0, 1)
    world.act(0, "policy")  # to shared, apart from ...
    add = world.act(1, "add", 2)  # ... an add under forward
    world.converge()
    _heal(world)
    assert add is not None
    assert all(link.cut for link in add.body.links)
    assert world.replicas[2].state.history == "shared"  # (no conflict: one policy op)
    _only_wrapped_keys(world)


def test_healing_history_for_one_member_hands_a_forward_member_nothing() -> None:
    """PROTOCOL 7 used to list as not claimed that a healing bundle, going to
    every recipient of the rotation, could hand D (added under `forward`) an
    epoch made apart from it while healing E (added under `shared`). Now no
    rotation links that epoch while D is a member; once D is gone, one does
    and E reads it."""
    A, B, D, E = 0, 1, 2, 3
    world = World(4, history="forward", seed="heal-leak")
    world.act(A, "add_admin", B)
    world.sync(A, B)
    world.act(A, "add", D)  # one side: D under forward, ...
    world.act(A, "policy")  # ... then the group turns shared, ...
    world.act(A, "add", E)  # ... and E joins with the history
    apart = world.act(B, "rotate")  # the other side
    world.converge()
    assert world.replicas[A].state.history == "shared"
    _heal(world)
    assert apart is not None
    assert apart.id not in world.replicas[D].keys
    assert apart.id not in world.replicas[E].keys
    _only_wrapped_keys(world)
    world.act(A, "remove", D)
    world.converge()
    _heal(world)
    assert apart.id in world.replicas[E].keys
    assert apart.id not in world.replicas[D].keys


def _merged_forward_then_rotated(world: World, rotator: int) -> None:
    """Every device syncs (the group is `forward` now) and heals; then one rotation."""
    world.converge()
    assert world.replicas[rotator].state.history == "forward"
    _heal(world)
    world.act(rotator, "rotate")
    world.converge()
    _heal(world)


def test_a_switch_to_forward_does_not_cut_an_epoch_owed_to_a_member_that_joined_shared() -> None:
    """Review of history links, H3: C joins under `shared` on one side while,
    apart, B rotates and seals a note, and the group turns `forward`
    concurrently. B's epoch is owed to C (C was a member when it was made,
    and joined with the history). The next rotation under `forward` cut it,
    since C was not wrapped it, and no later rotation could link it again:
    even once the group turned `shared` and healed, C never read the note.
    Now a rotation under `forward` cuts only for a device that joined
    without the history, and gaps are healed under either policy."""
    A, B, C = 0, 1, 2
    world = World(3, history="shared", seed="h3-forward-cut")
    world.act(A, "add_admin", B)
    world.sync(A, B)
    world.act(A, "add", C)  # one side: C joins with the history
    apart = world.act(B, "rotate")  # the other side
    assert apart is not None
    note = seal_bytes(world.replicas[B], b"apart", b"", SeededRng("h3"))
    world.act(B, "policy")  # ... and turns the group forward, apart from C's add
    _merged_forward_then_rotated(world, A)
    world.act(A, "policy")  # back to shared
    world.converge()
    _heal(world)
    assert open_bytes(lambda _g: world.replicas[C], note)[0] == b"apart"
    _only_wrapped_keys(world)


def test_an_epoch_owed_to_a_shared_member_waits_while_a_forward_member_lacks_it_too() -> None:
    """The review of the H3 fix: E joins under `shared`, the group turns
    `forward` and D joins without the history, while B rotates apart and
    seals. B's epoch is owed to E, not to D. A `forward` rotation cut it
    (D lacks it), for good: once D was removed and the group turned
    `shared` again, E still never read B's note. Now only a `forward` add
    cuts: the epoch is left out while D is a member and linked after."""
    A, B, D, E = 0, 1, 2, 3
    world = World(4, history="shared", seed="c2-owed")
    world.act(A, "add_admin", B)
    world.sync(A, B)
    world.act(A, "add", E)  # with the history
    world.act(A, "policy")  # forward
    world.act(A, "add", D)  # without it
    apart = world.act(B, "rotate")
    assert apart is not None
    note = seal_bytes(world.replicas[B], b"apart", b"", SeededRng("n"))
    _merged_forward_then_rotated(world, A)
    assert apart.id not in world.replicas[D].keys
    assert not any(
        link.epoch == apart.id and link.cut for op in world.written for link in links_of(op.body)
    )
    world.act(A, "remove", D)
    world.converge()
    _heal(world)
    world.act(A, "policy")  # shared again
    world.converge()
    _heal(world)
    assert open_bytes(lambda _g: world.replicas[E], note)[0] == b"apart"
    _only_wrapped_keys(world)


# --- links: bounded, strict, and checked -----------------------------------------------


def test_a_tampered_link_is_refused_and_gives_no_key() -> None:
    rng = SeededRng("links")
    group_id, earlier, new_key, earlier_key = rng(32), rng(32), rng(32), rng(32)
    expected = keys.commitment(earlier_key)
    sealed = keys.seal_link(new_key, group_id, earlier, earlier_key, rng)
    assert len(sealed) == LINK_BYTES
    assert keys.open_link(new_key, group_id, Link(earlier, sealed), expected) == earlier_key
    flipped = bytes([sealed[0] ^ 1]) + sealed[1:]
    wrong_key = keys.seal_link(new_key, group_id, earlier, rng(32), rng)
    cases = {
        "a bit flipped": (new_key, group_id, Link(earlier, flipped)),
        "another group": (new_key, rng(32), Link(earlier, sealed)),
        "another earlier epoch": (new_key, group_id, Link(rng(32), sealed)),
        "another new epoch": (rng(32), group_id, Link(earlier, sealed)),
        "a key its epoch does not commit to": (new_key, group_id, Link(earlier, wrong_key)),
        "a cut": (new_key, group_id, Link(earlier, b"")),
    }
    for name, (key, group, link) in cases.items():
        with pytest.raises(BadKeyWrap):
            keys.open_link(key, group, link, expected)
        assert name


def test_a_member_that_links_a_wrong_key_hands_over_nothing_and_is_healed_around() -> None:
    """B adds N with a link that opens but holds another key than the epoch
    commits to: N learns nothing from it, every replica holding the add's key
    records the bad link, and the founder's healing rotation links the epoch."""
    world = World(3, seed="bad-link")
    world.act(0, "add_admin", 1)
    world.sync(0, 1)
    world.act(0, "rotate")
    world.sync(0, 1)
    previous = world.replicas[1].state.current_epoch.id
    liar = world.replicas[1]

    def lying_links(new_key, recipients, newcomer, rng):
        return (Link(previous, keys.seal_link(new_key, liar.id, previous, rng(32), rng)),)

    liar._links = lying_links  # type: ignore[method-assign]
    add = world.act(1, "add", 2)
    assert add is not None
    world.converge()
    newcomer = world.replicas[2]
    assert add.id in newcomer.keys
    assert previous not in newcomer.keys
    assert (add.id, previous) in newcomer.bad_links
    assert (add.id, previous) in world.replicas[0].bad_links
    assert (previous, world.id(2)) in world.replicas[0].history_gaps()
    _heal(world)
    assert newcomer.keys[previous] == world.replicas[0].keys[previous]


links_wire = st.lists(
    st.lists(st.binary(min_size=0, max_size=80), min_size=0, max_size=3),
    max_size=MAX_LINKS + 2,
)


@given(links_wire)
@settings(max_examples=300)
def test_the_hist_field_parses_strictly_or_not_at_all(value) -> None:
    try:
        links = links_from_wire(value)
    except MalformedMessage:
        return
    assert len(links) <= MAX_LINKS
    assert all(len(link.epoch) == 32 for link in links)
    assert all(len(link.sealed) in (0, LINK_BYTES) for link in links)
    assert [link.epoch for link in links] == sorted({link.epoch for link in links})
    assert links_to_wire(links) == value


@pytest.mark.parametrize(
    "value",
    [
        b"",  # the old bundle
        [[bytes(32), bytes(71)]],
        [[bytes(32), bytes(73)]],
        [[bytes(31), bytes(72)]],
        [[bytes(32), bytes(72), b""]],
        [[b"\x01" * 32, b""], [b"\x00" * 32, b""]],  # unsorted
        [[b"\x01" * 32, b""], [b"\x01" * 32, b""]],  # twice
        [[i.to_bytes(32, "big"), b""] for i in range(MAX_LINKS + 1)],
        [["not bytes", b""]],
    ],
)
def test_malformed_links_are_refused(value) -> None:
    with pytest.raises(MalformedMessage):
        links_from_wire(value)


def test_an_op_with_too_many_links_does_not_parse() -> None:
    from covey.core.ops import OpContent, Rotate, parse_op
    from covey.core.wire import seal_envelope

    group, _ = _grown(2)
    me = group.me
    rotation = group.state.current_epoch.rotation
    heads = tuple(sorted(group.log.heads))

    def signed(count: int) -> bytes:
        links = tuple(Link(i.to_bytes(32, "big"), b"") for i in range(count))
        content = OpContent(group.id, heads, 9, NOW, Rotate(rotation, links))
        return seal_envelope(content, me.device_id.raw, me.secrets.signing_seed)

    assert len(parse_op(signed(MAX_LINKS)).body.links) == MAX_LINKS
    with pytest.raises(MalformedMessage):
        parse_op(signed(MAX_LINKS + 1))


# --- what a walk costs, and what a removed device gains ---------------------------------


def test_a_newcomer_walks_each_link_once(monkeypatch) -> None:
    group, (newcomer, *_) = _grown(120)
    add = group.add(newcomer.record_bytes, "member", NOW, SeededRng("n"))
    raws = [op.raw for op in group.log.order]
    linked = sum(1 for op in group.log.ops.values() for link in links_of(op.body) if link.sealed)
    with monkeypatch.context() as patch:
        opened = _count(patch, crypto, "aead_open")
        reader = Group.replica(newcomer, group.id, raws)
    assert set(reader.keys) == set(group.keys)
    assert add.id in reader.keys
    assert opened.calls == linked  # every link of the chain, once


def test_a_removed_device_gains_nothing_from_the_links_after_its_removal() -> None:
    world = World(3, seed="removed")
    world.act(0, "add", 1)
    world.act(0, "add", 2)
    world.converge()
    world.act(0, "rotate")
    world.converge()
    held = dict(world.replicas[2].keys)
    world.act(0, "remove", 2)
    for i in range(3):
        world.act(i % 2, "rotate")
        world.sync(i % 2, 1 - i % 2)
    world.converge()  # device 2 receives every op: each links back through what it held
    assert world.replicas[2].keys == held
    for epoch in world.replicas[0].state.epochs[-4:]:
        assert epoch.id not in world.replicas[2].keys
