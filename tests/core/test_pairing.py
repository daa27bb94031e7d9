"""Pairing: codes and links, SPAKE2 inside Noise_XXpsk3, stepped by hand."""

from __future__ import annotations

import pytest

from covey.core import pairing
from covey.core.identity import create_identity
from covey.core.pairing import Invitation, Inviter, Joiner, new_secret, parse_code, parse_link
from covey.errors import HandshakeFailed, InvalidArgument, NotAllowed
from tests.conftest import NOW, SeededRng

INVITER = create_identity("laptop", NOW, SeededRng("inviter"))
JOINER = create_identity("phone", NOW, SeededRng("joiner"))
MALLORY = create_identity("mallory", NOW, SeededRng("mallory"))


def invitation(seed: str = "code") -> Invitation:
    return Invitation(b"g" * 32, "member", new_secret(SeededRng(seed)), expires=NOW + 600)


def pair(invite: Invitation, secret: pairing.Secret, joiner=JOINER, seed: str = "run"):
    inviter = Inviter(INVITER, invite, SeededRng(seed + "i"))
    joining = Joiner(joiner, secret, SeededRng(seed + "j"))
    third = joining.third(inviter.second(joining.first()))
    record, raw = inviter.finish(third)
    return inviter, joining, record, raw


def test_right_code_pairs_and_both_see_the_same_words() -> None:
    invite = invitation()
    code = parse_code(invite.secret.code)
    inviter, joining, record, raw = pair(invite, code)
    assert record == JOINER.record
    assert raw == JOINER.record_bytes
    assert joining.inviter_key == INVITER.record.channel_key
    assert inviter.sas == joining.sas
    assert len(inviter.sas) == 4
    # The first transport message proves the inviter knew the code too.
    assert joining.transport.decrypt(inviter.transport.encrypt(b"welcome")) == b"welcome"


def test_link_pairs_without_spake2() -> None:
    invite = invitation("link")
    link = invite.secret.as_link()
    assert link.startswith("covey:join:")
    parsed = parse_link(link)
    assert parsed.link_key == invite.secret.link_key
    assert parsed.tag in invite.secret.advert_tags
    assert parse_code(invite.secret.code).tag in invite.secret.advert_tags
    _, _, record, _ = pair(invite, parsed)
    assert record == JOINER.record


def test_wrong_code_fails_on_the_first_try_and_three_destroy_the_invitation() -> None:
    invite = invitation()
    right = invite.secret.code
    nameplate = right.split("-")[0]
    for attempt in range(pairing.MAX_ATTEMPTS):
        invite.check_open(NOW)
        wrong = parse_code(
            f"{nameplate}-academic-acid" if attempt % 2 else f"{nameplate}-acne-acid"
        )
        assert wrong.code != right
        with pytest.raises(HandshakeFailed):
            pair(invite, wrong, seed=f"wrong{attempt}")
    assert invite.attempts_left == 0
    with pytest.raises(NotAllowed):
        invite.check_open(NOW)


def test_invitations_expire_and_are_single_use() -> None:
    invite = invitation()
    with pytest.raises(NotAllowed):
        invite.check_open(NOW + 600)
    invite.succeeded()
    with pytest.raises(NotAllowed):
        invite.check_open(NOW)


def test_man_in_the_middle_without_the_code_gets_nothing() -> None:
    """Mallory sits between the two, answering each with her own keys.

    She knows the nameplate (it is on the LAN) but not the words: her SPAKE2
    runs with a guessed code, so each side's psk differs from hers, and the
    first message that depends on it fails.
    """
    invite = invitation()
    real = parse_code(invite.secret.code)
    guess = parse_code(f"{real.nameplate}-academic-acid")
    # Mallory as inviter, towards the real joiner:
    fake_inviter = Inviter(
        MALLORY, Invitation(b"g" * 32, "member", guess, NOW + 600), SeededRng("m1")
    )
    joining = Joiner(JOINER, real, SeededRng("j"))
    third = joining.third(fake_inviter.second(joining.first()))
    with pytest.raises(HandshakeFailed):
        fake_inviter.finish(third)  # she cannot read the joiner's record
    # ... and whatever she sends next, the joiner cannot decrypt.
    with pytest.raises(HandshakeFailed):
        joining.transport.decrypt(b"\x00" * 40)
    # Mallory as joiner, towards the real inviter: a failed attempt.
    with pytest.raises(HandshakeFailed):
        pair(invite, guess, joiner=MALLORY, seed="m2")
    assert invite.attempts_left == pairing.MAX_ATTEMPTS - 1


def test_joiner_cannot_claim_another_devices_record() -> None:
    invite = invitation()
    code = parse_code(invite.secret.code)
    inviter = Inviter(INVITER, invite, SeededRng("i"))
    # Mallory knows the code but sends the phone's record with her own key.
    impostor = Joiner(MALLORY, code, SeededRng("m"))
    impostor.me = type(MALLORY)(JOINER.record_bytes, JOINER.record, MALLORY.secrets)
    third = impostor.third(inviter.second(impostor.first()))
    with pytest.raises(HandshakeFailed):
        inviter.finish(third)


@pytest.mark.parametrize("text", ["", "7", "velvet-harbor", "0-academic-acid", "7-notaword-acid"])
def test_bad_codes_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_code(text)


def test_codes_parse_forgivingly() -> None:
    assert parse_code(" 7 Academic ACID ").code == "7-academic-acid"


def test_secrets_do_not_show_in_repr() -> None:
    secret = new_secret(SeededRng("r"))
    assert secret.code not in repr(secret)
    assert secret.link_key.hex() not in repr(secret)
