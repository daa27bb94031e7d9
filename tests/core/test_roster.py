"""Naming devices as people do, and where a device stands (`covey.core.roster`)."""

from __future__ import annotations

import pytest

from covey.core import roster
from covey.core.identity import DeviceId
from covey.errors import AmbiguousDevice, InvalidArgument, NoSuchDevice, NotAllowed, NotAMember
from tests.conftest import NOW, SeededRng
from tests.core.test_node_devices import household


def test_a_device_is_found_by_name_id_prefix_hex_prefix_or_safety_words() -> None:
    ids, groups = household()
    state = groups[0].state
    phone = ids[1].device_id.raw
    rendered = str(DeviceId(phone))  # cv1-xxxx-xxxx-...
    assert roster.resolve(state, "phone") == phone
    assert roster.resolve(state, "  phone ") == phone
    assert roster.resolve(state, rendered) == phone
    assert roster.resolve(state, rendered[:8]) == phone  # cv1- and 4 characters
    assert roster.resolve(state, rendered[4:8].upper()) == phone  # without cv1-, any case
    assert roster.resolve(state, rendered[4:13]) == phone  # with a dash inside
    assert roster.resolve(state, phone.hex()[:10]) == phone
    words = ids[1].record.safety_words
    assert roster.resolve(state, " ".join(words)) == phone
    assert roster.resolve(state, "-".join(words).upper()) == phone


def test_a_name_wins_over_an_id_prefix() -> None:
    ids, groups = household(("laptop", "abcd"))
    assert roster.resolve(groups[0].state, "abcd") == ids[1].device_id.raw


def test_ambiguity_lists_the_candidates_by_name_and_short_id() -> None:
    ids, groups = household(("laptop", "phone", "phone"))
    with pytest.raises(AmbiguousDevice) as caught:
        roster.resolve(groups[0].state, "phone")
    message = str(caught.value)
    assert f"phone ({ids[1].device_id.short})" in message
    assert f"phone ({ids[2].device_id.short})" in message
    assert "more of its device ID" in message


@pytest.mark.parametrize("text", ["fridge", "cv1-ab", "abc", "one two three"])
def test_no_match_says_how_to_list_the_devices(text: str) -> None:
    _, groups = household()
    with pytest.raises(NoSuchDevice) as caught:
        roster.resolve(groups[0].state, text)
    assert "`covey devices -g family` lists them" in str(caught.value)


def test_an_empty_name_and_a_former_member_are_explained() -> None:
    ids, groups = household()
    with pytest.raises(InvalidArgument):
        roster.resolve(groups[0].state, "  ")
    groups[0].remove(ids[1].device_id.raw, NOW + 10, SeededRng("rm"))
    with pytest.raises(NotAllowed) as caught:
        roster.resolve(groups[0].state, "phone")
    assert "is no longer a member of 'family'" in str(caught.value)


def test_suggested_commands_quote_names_that_need_it() -> None:
    assert roster.command_arg("family") == "family"
    assert roster.command_arg("Ana's phone") == "'Ana'\\''s phone'"


def test_where_a_device_stands_after_it_left_or_was_removed() -> None:
    ids, groups = household()
    laptop, phone, tablet = groups
    me_phone, me_tablet = ids[1].device_id.raw, ids[2].device_id.raw
    assert roster.removal(laptop.log, ids[0].device_id.raw) is None
    assert roster.standing(laptop.log, ids[0].device_id.raw) == "member"
    left = tablet.remove(me_tablet, NOW + 20, SeededRng("leave"))
    assert roster.standing(tablet.log, me_tablet) == "leaving"
    gone = laptop.remove(me_phone, NOW + 30, SeededRng("remove"))
    phone.receive(gone.raw)
    removal = roster.removal(phone.log, me_phone)
    assert removal == roster.Removal(
        left=False, op=gone.id, by=ids[0].device_id.raw, by_name="laptop", time=NOW + 30
    )
    assert roster.standing(phone.log, me_phone) == "removed"
    assert roster.removed_message(phone.log, me_phone) == (
        "this device was removed from 'family' by 'laptop'"
    )
    assert roster.removal_op(tablet.log, me_tablet) == left
    assert roster.removals(laptop.log) == {me_phone: gone}
    assert roster.removals(tablet.log) == {me_tablet: left}
    with pytest.raises(NotAMember):
        roster.check_remove(phone.log, me_phone, ids[2].device_id.raw)


def test_refusals_name_the_admins_and_the_way_forward() -> None:
    ids, groups = household(admins=(0, 2))
    log = groups[0].log
    laptop, phone, tablet = (i.device_id.raw for i in ids)
    with pytest.raises(NotAllowed) as caught:
        roster.check_remove(log, phone, tablet)
    assert f"laptop ({ids[0].device_id.short}), tablet ({ids[2].device_id.short})" in str(
        caught.value
    )
    with pytest.raises(NotAllowed, match="covey group leave family"):
        roster.check_remove(log, laptop, laptop)
    with pytest.raises(NotAllowed, match="already a member"):
        roster.check_role(log, laptop, phone, "member")
    roster.check_role(log, laptop, laptop, "member")  # tablet stays admin: allowed
    roster.check_leave(log, laptop)
    _, alone = household(("solo", "other"))
    with pytest.raises(NotAllowed, match="last admin"):
        roster.check_role(
            alone[0].log, alone[0].me.device_id.raw, alone[0].me.device_id.raw, "member"
        )
    with pytest.raises(NotAllowed, match="last admin"):
        roster.check_leave(alone[0].log, alone[0].me.device_id.raw)


def test_devices_as_covey_devices_shows_them() -> None:
    ids, groups = household()
    laptop, phone = ids[0].device_id.raw, ids[1].device_id.raw
    shown = roster.describe_devices(groups[0].log, laptop, {phone: NOW + 5})
    rows = {d["name"]: d for d in shown["devices"]}
    assert rows["phone"]["last_seen"] == NOW + 5
    assert rows["tablet"]["last_seen"] is None
    assert rows["laptop"]["last_seen"] is None  # (this device)
    assert all(d["holds_current_key"] for d in shown["devices"])
    assert shown["standing"] == "member"
    assert shown["needs_healing"] is False
