"""`covey group`, `covey seal` and `covey open`, run as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_identity_cli import assert_one_line_error, covey


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    assert covey("init", "--name", "laptop", home=home).returncode == 0
    return home


def test_create_list_show(home: Path) -> None:
    created = covey("group", "create", "family", "--json", home=home)
    assert created.returncode == 0, created.stderr
    document = json.loads(created.stdout)
    assert document["name"] == "family"
    assert document["history"] == "shared"
    listed = json.loads(covey("group", "list", "--json", home=home).stdout)
    assert listed["groups"] == [{"name": "family", "group_id": document["group_id"]}]
    shown = json.loads(covey("group", "show", "family", "--json", home=home).stdout)
    assert [m["role"] for m in shown["members"]] == ["admin"]
    assert shown["members"][0]["this_device"] is True
    assert shown["epoch"]["key_held"] is True
    assert shown["epoch"]["needs_healing"] is False
    human = covey("group", "show", "family", home=home)
    assert "family" in human.stdout
    assert "admin" in human.stdout


def test_forward_history_and_duplicate_names(home: Path) -> None:
    assert covey("group", "create", "work", "--history", "forward", home=home).returncode == 0
    shown = json.loads(covey("group", "show", "work", "--json", home=home).stdout)
    assert shown["history"] == "forward"
    again = covey("group", "create", "work", home=home)
    assert_one_line_error(again)
    assert "already exists" in again.stderr
    assert_one_line_error(covey("group", "create", "x", "--history", "sometimes", home=home))


def test_seal_and_open_round_trip(home: Path, tmp_path: Path) -> None:
    covey("group", "create", "family", home=home)
    original = tmp_path / "photo.jpg"
    original.write_bytes(bytes(range(256)) * 1000)
    sealed = covey("seal", "-g", "family", str(original), "--ad", "album", "--json", home=home)
    assert sealed.returncode == 0, sealed.stderr
    sealed_path = Path(json.loads(sealed.stdout)["output"])
    assert sealed_path == tmp_path / "photo.jpg.covey"
    assert original.read_bytes()[:1000] not in sealed_path.read_bytes()
    out = tmp_path / "restored.jpg"
    opened = covey("open", str(sealed_path), "-o", str(out), "--json", home=home)
    assert opened.returncode == 0, opened.stderr
    document = json.loads(opened.stdout)
    assert out.read_bytes() == original.read_bytes()
    assert document["author"]["name"] == "laptop"
    assert document["associated_data"] == "album"
    assert document["group"] == "family"


def test_tampered_file_fails_cleanly_and_writes_nothing(home: Path, tmp_path: Path) -> None:
    covey("group", "create", "family", home=home)
    original = tmp_path / "notes.txt"
    original.write_text("meet at noon\n" * 100)
    covey("seal", "-g", "family", str(original), home=home)
    sealed = tmp_path / "notes.txt.covey"
    data = bytearray(sealed.read_bytes())
    for index in (30, len(data) // 2, len(data) - 10):
        tampered = bytearray(data)
        tampered[index] ^= 0x01
        sealed.write_bytes(bytes(tampered))
        out = tmp_path / f"out-{index}"
        result = covey("open", str(sealed), "-o", str(out), home=home)
        assert_one_line_error(result)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".covey-")) == []


def test_errors_are_one_line(home: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("not sealed")
    assert_one_line_error(covey("seal", "-g", "nope", str(plain), home=home))
    assert_one_line_error(covey("open", str(plain), home=home))
    assert_one_line_error(covey("open", str(tmp_path / "missing.covey"), home=home))
    assert_one_line_error(covey("seal", "-g", "family", str(tmp_path / "missing"), home=home))
    assert_one_line_error(covey("group", "show", "nope", home=home))


def test_open_refuses_to_overwrite(home: Path, tmp_path: Path) -> None:
    covey("group", "create", "family", home=home)
    original = tmp_path / "a.txt"
    original.write_text("one")
    covey("seal", "-g", "family", str(original), home=home)
    result = covey("open", str(tmp_path / "a.txt.covey"), home=home)  # would write a.txt
    assert_one_line_error(result)
    assert original.read_text() == "one"
    forced = covey("open", str(tmp_path / "a.txt.covey"), "--force", home=home)
    assert forced.returncode == 0, forced.stderr


def test_another_device_cannot_open(home: Path, tmp_path: Path) -> None:
    covey("group", "create", "family", home=home)
    original = tmp_path / "secret.txt"
    original.write_text("for the family only")
    covey("seal", "-g", "family", str(original), home=home)
    stranger = tmp_path / "stranger"
    covey("init", home=stranger)
    covey("group", "create", "family", home=stranger)  # same name, another group
    result = covey(
        "open", str(tmp_path / "secret.txt.covey"), "-o", str(tmp_path / "x"), home=stranger
    )
    assert_one_line_error(result)
    assert "sealed for a group this device does not hold" in result.stderr


def test_shred_makes_data_unopenable(home: Path, tmp_path: Path) -> None:
    covey("group", "create", "family", home=home)
    original = tmp_path / "s.txt"
    original.write_text("gone soon")
    covey("seal", "-g", "family", str(original), home=home)
    assert_one_line_error(covey("group", "shred", "family", home=home))  # needs --yes
    assert covey("group", "shred", "family", "--yes", home=home).returncode == 0
    result = covey("open", str(tmp_path / "s.txt.covey"), "-o", str(tmp_path / "x"), home=home)
    assert_one_line_error(result)
    assert not (tmp_path / "x").exists()
    import sqlite3

    with sqlite3.connect(home / "covey.db") as db:
        assert (
            db.execute("SELECT count(*) FROM secret WHERE name LIKE 'epoch:%'").fetchone()[0] == 0
        )


def test_rotate_starts_a_new_epoch(home: Path) -> None:
    covey("group", "create", "family", home=home)
    rotated = json.loads(covey("group", "rotate", "family", "--json", home=home).stdout)
    assert rotated["epoch"]["number"] == 2
    assert rotated["epoch"]["key_held"]
