"""`covey person set`, `covey person rename`, `covey init --person`, and `covey devices`
by person, as a user runs them (real processes on real stores)."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_devices_cli import deliver, make_homes, ok, one_line
from tests.cli.test_identity_cli import covey


def test_devices_are_shown_by_person_once_an_admin_says_whose_they_are(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    placed = ok(covey("person", "set", "phone", "Dad", "-g", "family", "--json", home=laptop))
    assert placed["placed"]["person"] == "Dad"
    said = covey("person", "set", "laptop", "Dad", "-g", "family", home=laptop)
    assert said.returncode == 0, said.stderr
    assert "laptop" in said.stdout
    assert "Dad's device" in said.stdout
    shown = ok(covey("devices", "-g", "family", "--json", home=laptop))
    people = {d["name"]: (d["person"], d["person_id"]) for d in shown["devices"]}
    assert people["laptop"][0] == people["phone"][0] == "Dad"
    assert people["laptop"][1] == people["phone"][1]
    assert people["tablet"][0] == "tablet"  # nobody placed it: a person of its own
    human = covey("devices", "-g", "family", home=laptop).stdout.splitlines()
    dad = human.index("  Dad")
    assert "laptop" in human[dad + 1]
    assert "phone" in human[dad + 3]
    assert "  tablet" in human
    # The others learn it as they learn every op.
    deliver(laptop, homes["tablet"])
    seen = ok(covey("devices", "-g", "family", "--json", home=homes["tablet"]))
    assert {d["name"]: d["person"] for d in seen["devices"]}["phone"] == "Dad"


def test_rename_a_person(tmp_path: Path) -> None:
    laptop = make_homes(tmp_path)["laptop"]
    ok(covey("person", "set", "phone", "Dad", "-g", "family", "--json", home=laptop))
    renamed = covey("person", "rename", "Dad", "Papa", "-g", "family", home=laptop)
    assert renamed.returncode == 0, renamed.stderr
    assert "Dad is now called Papa" in renamed.stdout
    shown = ok(covey("devices", "-g", "family", "--json", home=laptop))
    assert {d["name"]: d["person"] for d in shown["devices"]}["phone"] == "Papa"


def test_person_mistakes_are_one_line_and_say_what_to_do(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop, phone = homes["laptop"], homes["phone"]
    line = one_line(covey("person", "set", "phone", "Dad", "-g", "family", home=phone))
    assert "only an admin" in line
    assert "laptop" in line
    line = one_line(covey("person", "set", "nosuch", "Dad", "-g", "family", home=laptop))
    assert "covey devices -g family" in line
    line = one_line(covey("person", "rename", "Nobody", "X", "-g", "family", home=laptop))
    assert "nobody in 'family' is named 'Nobody'" in line
    ok(covey("person", "set", "phone", "Dad", "-g", "family", "--json", home=laptop))
    line = one_line(covey("person", "set", "phone", "Dad", "-g", "family", home=laptop))
    assert "already 'Dad'" in line
    line = one_line(covey("person", "rename", "Dad", "tablet", "-g", "family", home=laptop))
    assert "named 'tablet' already" in line
    line = one_line(covey("person", "set", "phone", "  ", "-g", "family", home=laptop))
    assert "a person's name" in line


def test_init_keeps_the_person_and_a_founded_group_places_its_founder(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = ok(covey("init", "--name", "laptop", "--person", "Mum", "--json", home=home))
    assert made["person"] == "Mum"
    ok(covey("group", "create", "family", "--json", home=home))
    shown = ok(covey("devices", "-g", "family", "--json", home=home))
    assert [d["person"] for d in shown["devices"]] == ["Mum"]
    line = one_line(covey("init", "--person", "\u202e", "--force", "--yes", home=home))
    assert "a person's name" in line
