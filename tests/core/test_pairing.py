"""Pairing: codes and links, SPAKE2 inside Noise_XXpsk3, confirmations, proofs, stepped by hand."""

from __future__ import annotations

import pytest

from covey.core import crypto, pairing
from covey.core.group import Group
from covey.core.identity import Identity, create_identity
from covey.core.pairing import Invitation, Inviter, Joiner, new_secret, parse_code, parse_link
from covey.errors import HandshakeFailed, InvalidArgument, InvalidInput, NotAllowed, PeerRefused
from tests.conftest import NOW, SeededRng

INVITER = create_identity("laptop", NOW, SeededRng("inviter"))
JOINER = create_identity("phone", NOW, SeededRng("joiner"))
MALLORY = create_identity("mallory", NOW, SeededRng("mallory"))


def invitation(seed: str = "code") -> Invitation:
    return Invitation(b"g" * 32, "member", new_secret(SeededRng(seed)), expires=NOW + 600)


def pair(invite: Invitation, secret: pairing.Secret, joiner=JOINER, seed: str = "run"):
    """The whole exchange: three handshake messages, two confirmations, the joiner's proof."""
    inviter = Inviter(INVITER, invite, SeededRng(seed + "i"))
    joining = Joiner(joiner, secret, SeededRng(seed + "j"))
    third = joining.third(inviter.second(joining.first()))
    confirmed = inviter.confirm(third)
    confirmation = inviter.transport.encrypt(confirmed)
    proof = joining.transport.encrypt(joining.identify(joining.transport.decrypt(confirmation)))
    record, raw, _ = inviter.joiner(inviter.transport.decrypt(proof))
    return inviter, joining, record, raw


def test_right_code_pairs_and_both_see_the_same_words() -> None:
    invite = invitation()
    code = parse_code(invite.secret.code)
    inviter, joining, record, raw = pair(invite, code)
    assert record == JOINER.record
    assert raw == JOINER.record_bytes
    assert inviter.pairing_words == joining.pairing_words
    assert len(inviter.pairing_words) == 4
    assert invite.attempts_left == pairing.MAX_ATTEMPTS


def group_with(member: Identity) -> Group:
    group = Group.create(INVITER, "family", "shared", NOW, SeededRng("g"))
    group.add(member.record_bytes, "member", NOW, SeededRng("add"))
    return group


def test_the_welcome_proves_the_inviter_is_a_member_of_the_group() -> None:
    invite = invitation()
    inviter, joining, _, _ = pair(invite, parse_code(invite.secret.code))
    welcome = inviter.welcome(group_with(JOINER))
    welcomed = pairing.read_welcome(JOINER, welcome, joining.handshake_hash)
    assert welcomed.inviter == "laptop"
    assert not welcomed.already
    assert welcomed.group.state.current_epoch.id in welcomed.group.keys
    # The inviter's proof signs this session's hash: in another session it is refused.
    other = invitation("other")
    _, other_joining, _, _ = pair(other, parse_code(other.secret.code), seed="o")
    with pytest.raises(PeerRefused):
        pairing.read_welcome(JOINER, welcome, other_joining.handshake_hash)


def test_the_joiner_shows_nothing_of_itself_before_the_inviter_confirms() -> None:
    """Messages 1 and 3 carry no key, ID or record of the joiner, and its
    Noise static key is fresh for each session; its proof comes only after
    the inviter's confirmation checks (compared in constant time)."""
    invite = invitation()
    code = parse_code(invite.secret.code)
    sent = []
    for run in ("a", "b"):
        inviter = Inviter(INVITER, invitation(), SeededRng(run + "i"))
        joining = Joiner(JOINER, code, SeededRng(run + "j"))
        first = joining.first()
        third = joining.third(inviter.second(first))
        sent.append((first, third, joining.noise.s_public))
        with pytest.raises(HandshakeFailed):
            joining.identify(bytes(32))  # not the inviter's confirmation
    identity = [JOINER.device_id.raw, JOINER.record.signing_key, JOINER.record.box_key]
    identity += [JOINER.record.channel_key, JOINER.record_bytes]
    for first, third, static in sent:
        assert not any(value in first or value in third for value in identity)
        assert static not in identity
    assert sent[0][2] != sent[1][2]


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
        fake_inviter.confirm(third)  # she cannot confirm the code
    # ... and whatever she sends next, the joiner cannot decrypt, nor take
    # for the inviter's confirmation.
    with pytest.raises(HandshakeFailed):
        joining.transport.decrypt(b"\x00" * 40)
    with pytest.raises(HandshakeFailed):
        joining.identify(crypto.blake2b(b"guess", crypto.HashDomain.PAIRING_CONFIRM_INVITER))
    # Mallory as joiner, towards the real inviter: a failed attempt.
    with pytest.raises(HandshakeFailed):
        pair(invite, guess, joiner=MALLORY, seed="m2")
    assert invite.attempts_left == pairing.MAX_ATTEMPTS - 1


def test_joiner_cannot_claim_another_devices_record() -> None:
    invite = invitation()
    code = parse_code(invite.secret.code)
    inviter = Inviter(INVITER, invite, SeededRng("i"))
    # Mallory knows the code but sends the phone's record, signed with her own key.
    impostor = Joiner(MALLORY, code, SeededRng("m"))
    impostor.me = Identity(JOINER.record_bytes, JOINER.record, MALLORY.secrets)
    third = impostor.third(inviter.second(impostor.first()))
    proof = impostor.identify(inviter.confirm(third))
    with pytest.raises(PeerRefused):
        inviter.joiner(proof)
    # Nor can she replay the phone's proof from another session.
    phone = Joiner(JOINER, parse_code(invitation("p").secret.code), SeededRng("p"))
    other = Inviter(INVITER, invitation("p"), SeededRng("pi"))
    replayed = phone.identify(other.confirm(phone.third(other.second(phone.first()))))
    with pytest.raises(InvalidInput):
        inviter.joiner(replayed)


def test_the_joiner_proposes_a_person_and_junk_in_its_place_is_refused() -> None:
    from covey.core import encoding
    from covey.errors import MalformedMessage

    invite = invitation()
    code = parse_code(invite.secret.code)
    inviter = Inviter(INVITER, invite, SeededRng("i"))
    joining = Joiner(JOINER, code, SeededRng("j"), person="Dad")
    message = joining.identify(inviter.confirm(joining.third(inviter.second(joining.first()))))
    record, _, person = inviter.joiner(message)
    assert (record.name, person) == ("phone", "Dad")
    proof, _ = encoding.decode(message)
    for junk in ([proof], [proof, "Dad", "x"], proof, [b"x", "Dad"]):
        with pytest.raises(MalformedMessage):
            inviter.joiner(encoding.encode(junk))
    # A proposal it cannot use is dropped, not fatal: the pairing goes on.
    for bad in (7, "x" * 65, "a\u202eb", "A\u030a"):
        record, _, person = inviter.joiner(encoding.encode([proof, bad]))
        assert (record.name, person) == ("phone", None)


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
