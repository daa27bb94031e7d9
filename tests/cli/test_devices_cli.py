"""`covey devices`, `covey remove`, `covey group role`, `covey group leave`, as a user runs them.

Each device of a household gets a home of its own with one group `family`
already in it (built in this process through the store, with no network);
the commands then run as real processes on those homes. What one device
learns from another is carried by `deliver`, as a sync would carry it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
from pathlib import Path

import anyio
import pytest

from covey.core.identity import DeviceId
from covey.core.node.io import PeerMet, Persist
from covey.store.sqlite import Store
from tests.cli.test_identity_cli import assert_one_line_error, covey
from tests.conftest import NOW, SeededRng
from tests.core.test_node_devices import household
from tests.net.loopback import FAST

NAMES = ("laptop", "phone", "tablet")


def make_homes(
    tmp_path: Path, names: tuple[str, ...] = NAMES, admins: tuple[int, ...] = (0,)
) -> dict[str, Path]:
    """A home per device, each holding its replica of `family` (device 0 founded it)."""
    identities, groups = household(names, admins)
    homes = {}

    async def go() -> None:
        for k, (me, group) in enumerate(zip(identities, groups, strict=True)):
            home = tmp_path / f"{k}-{me.record.name}"
            async with Store.open(home, create=True) as store:
                await store.create_identity(me, None, SeededRng(f"ring-{k}"), **FAST)
                _, data_key = await store.open_identity(None)
                await store.create_group(group, data_key, SeededRng(f"store-{k}"))
            homes[
                f"{k}-{me.record.name}" if names.count(me.record.name) > 1 else me.record.name
            ] = home

    anyio.run(go)
    return homes


def deliver(source: Path, target: Path) -> None:
    """`target` gets every op of `family` that `source` holds (what a sync does)."""

    async def go() -> None:
        async with Store.open(source) as store:
            me, data_key = await store.open_identity(None)
            group_id, _ = await store.find_group("family")
            ops = [op.raw for op in (await store.load_group(group_id, me, data_key)).log.order]
        async with Store.open(target) as store:
            me, data_key = await store.open_identity(None)
            group = await store.load_group(group_id, me, data_key)
            for raw in ops:
                group.receive(raw)
            await store.save_group(group, data_key, SeededRng("deliver"))

    anyio.run(go)


def ok(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The error line, checked: one line, no traceback, no bytes repr, no long hex."""
    assert_one_line_error(result)
    line = result.stderr.strip()
    assert "b'" not in line
    assert 'b"' not in line
    assert not re.search(r"[0-9a-f]{17,}", line), line
    return line


def device_ids(home: Path) -> dict[str, str]:
    shown = ok(covey("devices", "-g", "family", "--json", home=home))
    return {d["name"]: d["device_id"] for d in shown["devices"]}


def epoch(home: Path) -> int:
    return int(ok(covey("devices", "-g", "family", "--json", home=home))["epoch"])


# --- covey devices ------------------------------------------------------------------


def test_devices_shows_roles_words_keys_and_last_seen(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    ids = device_ids(laptop)

    async def met() -> None:  # the node recorded a sync with the phone
        async with Store.open(laptop) as store:
            phone = DeviceId.parse(ids["phone"]).raw
            peer = PeerMet(phone, "phone", "192.0.2.2", NOW + 60)
            await store.commit(Persist(peers=(peer,)), {}, b"", SeededRng("p"))

    anyio.run(met)
    shown = ok(covey("devices", "-g", "family", "--json", home=laptop))
    assert shown["group"] == "family"
    assert shown["standing"] == "member"
    rows = {d["name"]: d for d in shown["devices"]}
    assert [d["name"] for d in shown["devices"]] == list(NAMES)  # by seniority
    assert [rows[n]["role"] for n in NAMES] == ["admin", "member", "member"]
    assert all(len(rows[n]["safety_words"]) == 8 for n in NAMES)
    assert all(rows[n]["holds_current_key"] for n in NAMES)
    assert rows["laptop"]["this_device"]
    assert rows["phone"]["last_seen"] == NOW + 60
    assert rows["tablet"]["last_seen"] is None
    assert rows["phone"]["short_id"] == ids["phone"][:13]
    human = covey("devices", home=laptop)  # every group, for people
    assert human.returncode == 0, human.stderr
    assert " ".join(rows["tablet"]["safety_words"]) in human.stdout
    assert "never" in human.stdout
    assert "this device" in human.stdout
    every = ok(covey("devices", "--json", home=laptop))
    assert [g["group"] for g in every["groups"]] == ["family"]
    one_line(covey("devices", "-g", "nope", home=laptop))


# --- covey remove ----------------------------------------------------------------------


def test_remove_by_name_rotates_and_says_who_must_still_hear(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    before = epoch(laptop)
    removed = ok(covey("remove", "phone", "-g", "family", "--yes", "--json", home=laptop))
    assert removed["removed"]["name"] == "phone"
    assert [d["name"] for d in removed["to_tell"]] == ["tablet"]
    assert removed["told"] == []
    assert removed["syncing"] is False  # no `covey up`: nothing goes out yet
    assert removed["epoch"]["number"] == before + 1
    assert sorted(device_ids(laptop)) == ["laptop", "tablet"]
    human = covey("remove", "tablet", "-g", "family", "--yes", home=laptop)
    assert human.returncode == 0, human.stderr
    assert "Removed tablet (cv1-" in human.stdout
    assert "No other member to tell." in human.stdout


def test_remove_finds_a_device_by_id_prefix_or_by_safety_words(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    ids = device_ids(laptop)
    words = {
        d["name"]: d["safety_words"]
        for d in ok(covey("devices", "-g", "family", "--json", home=laptop))["devices"]
    }
    prefix = ids["phone"][:8]  # cv1- and four characters
    by_id = ok(covey("remove", prefix, "-g", "family", "--yes", "--json", home=laptop))
    assert by_id["removed"]["name"] == "phone"
    dashed = "-".join(words["tablet"]).upper()
    by_words = ok(covey("remove", dashed, "-g", "family", "--yes", "--json", home=laptop))
    assert by_words["removed"]["name"] == "tablet"


def test_remove_refusals_are_one_line_and_say_what_to_do(tmp_path: Path) -> None:
    homes = make_homes(tmp_path, ("laptop", "phone", "phone"))
    laptop, member = homes["laptop"], homes["1-phone"]
    before = epoch(laptop)
    ambiguous = one_line(covey("remove", "phone", "-g", "family", "--yes", home=laptop))
    assert ambiguous.count("phone (cv1-") == 2
    assert "more of its device ID" in ambiguous
    nothing = one_line(covey("remove", "fridge", "-g", "family", "--yes", home=laptop))
    assert "`covey devices -g family` lists them" in nothing
    short = one_line(covey("remove", "cv1-", "-g", "family", "--yes", home=laptop))
    assert "covey devices -g family" in short  # too short to be a prefix
    itself = one_line(covey("remove", "laptop", "-g", "family", "--yes", home=laptop))
    assert "covey group leave family" in itself
    ids = json.loads(covey("devices", "-g", "family", "--json", home=laptop).stdout)["devices"]
    unconfirmed = one_line(covey("remove", ids[1]["device_id"], "-g", "family", home=laptop))
    assert "add --yes" in unconfirmed
    assert ids[1]["short_id"] in unconfirmed
    not_admin = one_line(covey("remove", "laptop", "-g", "family", "--yes", home=member))
    assert "only an admin" in not_admin
    assert f"laptop ({ids[0]['short_id']})" in not_admin
    one_line(covey("remove", "phone", "-g", "nope", "--yes", home=laptop))
    assert epoch(laptop) == before  # nothing was changed by any of them
    as_json = covey("remove", "fridge", "-g", "family", "--yes", "--json", home=laptop)
    assert json.loads(as_json.stdout)["error"]["code"] == "no_such_device"


# --- covey group role -------------------------------------------------------------------


def test_role_promotes_and_the_last_admin_cannot_step_down(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    last = one_line(
        covey("group", "role", "laptop", "member", "-g", "family", "--yes", home=laptop)
    )
    assert "this device is the last admin of 'family'" in last
    assert "covey group role DEVICE admin -g family" in last
    promoted = ok(covey("group", "role", "phone", "admin", "-g", "family", "--json", home=laptop))
    assert promoted["changed"]["role"] == "admin"
    assert [d["name"] for d in promoted["to_tell"]] == ["phone", "tablet"]
    again = one_line(covey("group", "role", "phone", "admin", "-g", "family", home=laptop))
    assert "already an admin" in again
    # Stepping down, now that another admin exists, asks first (--yes here).
    asked = one_line(covey("group", "role", "laptop", "member", "-g", "family", home=laptop))
    assert "add --yes" in asked
    stepped = covey("group", "role", "laptop", "member", "-g", "family", "--yes", home=laptop)
    assert stepped.returncode == 0, stepped.stderr
    assert "laptop (cv1-" in stepped.stdout
    assert "is now a member of 'family'" in stepped.stdout
    roles = {
        d["name"]: d["role"]
        for d in ok(covey("devices", "-g", "family", "--json", home=laptop))["devices"]
    }
    assert roles == {"laptop": "member", "phone": "admin", "tablet": "member"}


# --- covey group leave -----------------------------------------------------------------


def test_leave_erases_the_keys_and_keeps_the_ops_until_a_member_hears(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    tablet = homes["tablet"]
    note = tmp_path / "note.txt"
    note.write_text("for the family")
    assert covey("seal", "-g", "family", str(note), home=homes["laptop"]).returncode == 0
    opened = covey("open", f"{note}.covey", "-o", str(tmp_path / "a"), home=tablet)
    assert opened.returncode == 0, opened.stderr
    unconfirmed = one_line(covey("group", "leave", "family", home=tablet))
    assert "add --yes" in unconfirmed
    left = ok(covey("group", "leave", "family", "--yes", "--json", home=tablet))
    assert left["delivered"] is False
    assert [d["name"] for d in left["to_tell"]] == ["laptop", "phone"]
    with sqlite3.connect(tablet / "covey.db") as db:
        keys = db.execute("SELECT count(*) FROM secret WHERE name LIKE 'epoch:%'").fetchone()[0]
        ops = db.execute("SELECT count(*) FROM op").fetchone()[0]
    assert keys == 0
    assert ops == 4  # genesis, two adds, the leave: kept to tell the others
    status = ok(covey("status", "--json", home=tablet))
    assert status["groups"][0]["standing"] == "leaving"
    assert "waiting until a member hears of it" in covey("status", home=tablet).stdout
    again = one_line(covey("group", "leave", "family", "--yes", home=tablet))
    assert "this device left 'family'" in again
    refused = one_line(covey("open", f"{note}.covey", "-o", str(tmp_path / "b"), home=tablet))
    assert "this device left 'family': its keys are deleted" in refused
    assert not (tmp_path / "b").exists()


def test_the_last_admin_and_the_last_member_cannot_leave(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    admin = one_line(covey("group", "leave", "family", "--yes", home=homes["laptop"]))
    assert "last admin" in admin
    assert "covey group role DEVICE admin -g family" in admin
    alone = make_homes(tmp_path / "alone", ("solo",))["solo"]
    last = one_line(covey("group", "leave", "family", "--yes", home=alone))
    assert "covey group shred family" in last


# --- a removed device, and invitations ------------------------------------------------------


def test_a_removed_device_says_so_in_status_and_refuses_changes(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop, phone = homes["laptop"], homes["phone"]
    ok(covey("remove", "phone", "-g", "family", "--yes", "--json", home=laptop))
    assert ok(covey("status", "--json", home=phone))["groups"][0]["standing"] == "member"
    deliver(laptop, phone)  # the phone syncs, and learns of it
    status = ok(covey("status", "--json", home=phone))
    group = status["groups"][0]
    assert group["standing"] == "removed"
    assert group["removed_by"]["name"] == "laptop"
    assert isinstance(group["removed_at"], int)
    human = covey("status", home=phone).stdout
    assert "removed from group 'family' by 'laptop' at " in human
    shown = covey("devices", "-g", "family", home=phone).stdout
    assert "this device was removed by 'laptop'" in shown
    refused = one_line(covey("group", "rotate", "family", home=phone))
    assert "this device was removed from 'family' by 'laptop'" in refused


def test_an_invitation_by_a_member_names_the_admins(tmp_path: Path) -> None:
    """Finding 6f. Refused before any network is used."""
    homes = make_homes(tmp_path, admins=(0, 2))
    ids = ok(covey("devices", "-g", "family", "--json", home=homes["phone"]))["devices"]
    refused = one_line(covey("invite", "-g", "family", home=homes["phone"]))
    assert f"laptop ({ids[0]['short_id']})" in refused
    assert f"tablet ({ids[2]['short_id']})" in refused
    assert "covey group role phone admin -g family" in refused


@pytest.mark.parametrize("command", ["remove", "group role", "group leave", "devices"])
def test_every_new_command_has_help(command: str, tmp_path: Path) -> None:
    result = covey(*command.split(), "--help", home=tmp_path / "none")
    assert result.returncode == 0
    assert "--json" in result.stdout


def test_in_a_terminal_remove_asks_and_a_no_changes_nothing(tmp_path: Path) -> None:
    import os
    import pty

    from tests.cli.test_identity_cli import COVEY

    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    before = epoch(laptop)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    for answer, status in ((b"n\n", 1), (b"y\n", 0)):
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            [*COVEY, "remove", "phone", "-g", "family", "--home", str(laptop)],
            stdin=secondary,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        os.close(secondary)
        os.write(primary, answer)
        out, err = process.communicate(timeout=60)
        os.close(primary)
        assert process.returncode == status, err
        assert b"Remove phone (cv1-" in err  # the question names the device
        if status:
            assert b"not confirmed: nothing was changed" in err
            assert epoch(laptop) == before
        else:
            assert b"Removed phone" in out
            assert epoch(laptop) == before + 1
