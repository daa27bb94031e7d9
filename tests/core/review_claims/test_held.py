"""What held against the review of recovery claims.

From the adversarial review of recovery claims (2026-12-03): each attack test
plays one attack and asserts that it WORKS. Those marked xfail(strict) are
fixed: the attack's assertions fail now, and the test fails the suite if the
attack ever works again. (None of these files' findings is still open.)
"""

from __future__ import annotations

import pytest

from covey.core import escrow, membership, shares
from covey.core.ops import Claim, OpContent, Rotate, request_id, sign_op
from covey.errors import UnknownDevice
from tests.core.test_claims import (  # noqa: F401
    DAD,
    NEW,
    everyone_has_everything,
    recovery_claim,
    write,
)
from tests.core.test_log import forge
from tests.harness import World


def _secret_record(world: World, dealing, paper):
    mums = escrow.open_share(world.replicas[2].state, dealing, world.identities[2])
    secret = shares.combine(
        [mums, paper],
        nonce=dealing.deal.nonce,
        digests={s.index: s.digest for s in dealing.deal.slots},
        threshold=dealing.deal.threshold,
    )
    return escrow.recovery_identity(secret, dealing.deal.nonce, dealing.deal.record.created)


def test_the_record_signs_nothing_but_one_recovery_claim(world: World) -> None:
    dealing = world.replicas[2].state.dealing
    record = _secret_record(world, dealing, world.paper[0])  # type: ignore[attr-defined]
    heads = tuple(sorted(world.replicas[2].log.heads))
    mum = world.replicas[2]
    # An admission claim as the record: not a member.
    raw = world.identities[NEW].record_bytes
    admit = Claim("admit", world.identities[NEW].record, raw, None, dealing.id, (), ())
    op = sign_op(
        OpContent(mum.id, heads, 1, 0, admit), record.device_id.raw, record.secrets.signing_seed
    )
    assert membership.check(mum.state, op) == membership.NOT_A_MEMBER
    # A rotation as the record: not a member.
    rot = Rotate(mum.state.current_epoch.rotation, ())
    op = sign_op(
        OpContent(mum.id, heads, 1, 0, rot), record.device_id.raw, record.secrets.signing_seed
    )
    assert membership.check(mum.state, op) == membership.NOT_A_MEMBER
    # A recovery claim numbered 2 (nothing before it).
    rec = Claim("recover", world.identities[NEW].record, raw, DAD, dealing.id, (), (0, 1))
    op = sign_op(
        OpContent(mum.id, heads, 2, 0, rec), record.device_id.raw, record.secrets.signing_seed
    )
    assert mum.receive(op.raw).outcome == "rejected"


def test_a_member_or_a_removed_member_cannot_use_the_record_path(world: World) -> None:
    dealing = world.replicas[3].state.dealing
    raw = world.identities[NEW].record_bytes
    body = Claim("recover", world.identities[NEW].record, raw, DAD, dealing.id, (), (0,))
    member = forge(world, 3, body)  # Kid, a member, with the dealing usable
    assert membership.check(world.replicas[0].state, member) == (
        "a recovery claim is signed as the dealing's recovery record"
    )
    world.act(2, "remove", 3)
    world.sync(2, 0)
    forged = forge(world, 3, body)  # Kid, removed, knows it
    assert world.replicas[0].receive(forged.raw).outcome == "rejected"
    assert forged.id not in world.replicas[0].state.claims
    stranger = world.identities[5]
    op = sign_op(
        OpContent(world.replicas[0].id, tuple(sorted(world.replicas[0].log.heads)), 1, 0, body),
        stranger.device_id.raw,
        stranger.secrets.signing_seed,
    )
    with pytest.raises(UnknownDevice):
        world.replicas[0].receive(op.raw)


def test_an_old_dealings_record_cannot_claim_under_the_new_one(world: World) -> None:
    old = world.replicas[2].state.dealing
    record = _secret_record(world, old, world.paper[0])  # type: ignore[attr-defined]
    world.paper = {}
    assert world.act(0, "deal", 0) is not None
    world.sync(0, 2)
    new = world.replicas[2].state.dealing
    assert new.id != old.id
    raw = world.identities[NEW].record_bytes
    body = Claim("recover", world.identities[NEW].record, raw, DAD, new.id, (), (0,))
    mum = world.replicas[2]
    op = sign_op(
        OpContent(mum.id, tuple(sorted(mum.log.heads)), 1, 0, body),
        record.device_id.raw,
        record.secrets.signing_seed,
    )
    assert mum.receive(op.raw).outcome == "rejected"


def test_an_approval_of_one_request_never_serves_another(world: World) -> None:
    """The request hashes the device record, the kind and the person: an approval for
    device 4's admission serves neither device 5's nor a recovery of device 4."""
    dealing = world.replicas[2].state.dealing
    a4 = request_id(world.identities[NEW].record_bytes, "admit", None)
    a = write(world, world.replicas[2].approve(a4, "admit", None, world.tick()))
    world.sync(2, 3)
    b = write(world, world.replicas[3].approve(a4, "admit", None, world.tick()))
    kid = world.replicas[3]
    from covey.errors import NotAllowed

    with pytest.raises(NotAllowed, match="another request"):
        kid.claim_admission(world.identities[5].record_bytes, [a.id, b.id], world.tick())
    rec = Claim(
        "recover",
        world.identities[NEW].record,
        world.identities[NEW].record_bytes,
        DAD,
        dealing.id,
        (a.id,),
        (0,),
    )
    op = sign_op(
        OpContent(kid.id, tuple(sorted(kid.log.heads)), 1, 0, rec),
        dealing.deal.record.device_id.raw,
        b"\0" * 32,
    )
    assert membership.check(kid.state, op) == (
        "the claim lists an approval of another request, or none applied"
    )
