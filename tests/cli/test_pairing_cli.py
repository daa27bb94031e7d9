"""What `covey invite` and `covey join` tell people (issue 9, 6e).

Found by review: `covey invite` printed the QR code but not the link it
encodes, and did not say which group, role and expiry the code was for;
"safety words" named both the four words of a pairing and a device's
eight words; "compare if you like" did not say what to do when they
differ. Now the four words are the *pairing words* (a device's eight stay
its *safety words*), both sides say what to do if they differ, and the
inviter, in a terminal, is asked whether they match: a "no" removes the
device at once.

Pairing itself needs a LAN (mDNS): `tests/net/test_pairing_lan.py` runs it
with real processes. Here the invitation's node is replaced by one that
reports a device joining, so that what the command prints, asks and does
(the removal is real, on a real store) can be checked in this process.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from covey.cli import common, main
from covey.cli import pairing as pairing_cli
from tests.cli.test_devices_cli import device_ids, make_homes

CODE = "7-velvet-harvest"
LINK = "covey:join:aadqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibaeaqcaibae"
WORDS = ["academic", "acid", "acne", "acquire"]


@pytest.fixture
def laptop(tmp_path: Path) -> Path:
    return make_homes(tmp_path)["laptop"]


def run_invite(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    *args: str,
    answer: str | None = None,
) -> tuple[int, str, str, list[Any]]:
    """`covey invite -g family ARGS` whose node reports the phone joining; what it did."""
    ids = device_ids(home)
    family = group_id(home)
    actions: list[Any] = []
    real = common.node_command

    def fake(ctx: Any, action: Any, **kwargs: Any) -> dict[str, Any]:
        actions.append(action)
        if type(action).__name__ != "Invite":
            return real(ctx, action, **kwargs)  # (the removal: real, on the store)
        kwargs["on_reply"](
            {
                "data": {
                    "event": "invitation",
                    "code": CODE,
                    "link": LINK,
                    "expires": 1_800_000_000,
                    "group": "family",
                    "group_id": "ab" * 32,
                    "role": action.role,
                    "port": 4242,
                },
                "final": False,
                "error": None,
            }
        )
        return {
            "event": "joined",
            "device": "phone",
            "device_id": ids["phone"],
            "pairing_words": WORDS,
            "sas": WORDS,  # (its name before: so the test runs, and fails, on that code)
            "group": "family",
            "group_id": family,
        }

    monkeypatch.setattr(pairing_cli, "node_command", fake)
    for name in ("COVEY_HOME", "COVEY_PASSPHRASE"):
        monkeypatch.delenv(name, raising=False)
    if answer is not None:
        monkeypatch.setattr(pairing_cli, "interactive", lambda: True)
        monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    common._PASSPHRASES.clear()
    capsys.readouterr()
    status = main(["invite", "-g", "family", "--home", str(home), *args])
    out, err = capsys.readouterr()
    return status, out, err, actions


def group_id(home: Path) -> str:
    common._PASSPHRASES.clear()
    return str(json_of(["devices", "-g", "family", "--json", "--home", str(home)])["group_id"])


def json_of(args: list[str]) -> dict[str, Any]:
    import contextlib

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        assert main(args) == 0
    document: dict[str, Any] = json.loads(buffer.getvalue())
    return document


def test_invite_says_group_role_expiry_code_and_link(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _, _ = run_invite(monkeypatch, capsys, laptop, "--role", "admin")
    assert status == 0
    assert "Invitation to 'family' as an admin, for one device, until " in out
    assert "(10 minutes; 3 wrong codes end it)" in out
    assert f"covey join {CODE}" in out
    assert f"covey join --link {LINK}" in out  # the link the QR code encodes
    assert "the QR code below holds the same link" in out
    # The device that joined, and what to do if the words differ.
    ids = device_ids(laptop)
    assert f"'phone' ({ids['phone'][:13]}) joined 'family' as an admin." in out
    assert f"Pairing words: {' '.join(WORDS)}" in out
    assert "Safety words" not in out
    assert "If they differ, it is not the device you meant" in out
    assert f"`covey remove {ids['phone'][:13]} -g family` at once" in out


def test_invite_json_carries_the_same(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _, _ = run_invite(monkeypatch, capsys, laptop, "--json")
    assert status == 0
    invitation, joined = (json.loads(line) for line in out.strip().splitlines())
    assert invitation["event"] == "invitation"
    assert (invitation["group"], invitation["role"]) == ("family", "member")
    assert invitation["link"] == LINK
    assert joined["pairing_words"] == WORDS
    assert joined["remove"].startswith("covey remove cv1-")


def test_in_a_terminal_a_no_removes_the_device_at_once(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    before = json_of(["devices", "-g", "family", "--json", "--home", str(laptop)])
    status, out, err, actions = run_invite(monkeypatch, capsys, laptop, answer="n\n")
    assert status == 0, err
    assert "Does 'phone' show the same pairing words?" in err
    assert [type(a).__name__ for a in actions] == ["Invite", "RemoveDevice"]
    assert "Removed 'phone'" in out
    assert "Invite the right device again." in out
    after = json_of(["devices", "-g", "family", "--json", "--home", str(laptop)])
    assert [d["name"] for d in after["devices"]] == ["laptop", "tablet"]
    assert after["epoch"] == before["epoch"] + 1


def test_in_a_terminal_a_yes_changes_nothing(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err, actions = run_invite(monkeypatch, capsys, laptop, answer="y\n")
    assert status == 0, err
    assert "Does 'phone' show the same pairing words?" in err
    assert [type(a).__name__ for a in actions] == ["Invite"]
    assert "the device that joined is the one you meant" in out
    # --yes: no question at all.
    status, out, err, actions = run_invite(monkeypatch, capsys, laptop, "--yes", answer="")
    assert status == 0, err
    assert "pairing words?" not in err
    assert [type(a).__name__ for a in actions] == ["Invite"]


def run_join(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    reply: dict[str, Any],
) -> tuple[int, str, str]:
    """`covey join CODE` whose node answers `reply`."""
    monkeypatch.setattr(pairing_cli, "node_command", lambda ctx, action, **kwargs: reply)
    common._PASSPHRASES.clear()
    capsys.readouterr()
    status = main(["join", CODE, "--home", str(home)])
    out, err = capsys.readouterr()
    return status, out, err


def test_join_shows_the_pairing_words_and_what_to_do_if_they_differ(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reply = {
        "event": "joined",
        "group": "family",
        "group_id": "ab" * 32,
        "inviter": "laptop",
        "pairing_words": WORDS,
        "sas": WORDS,  # (its name before)
    }
    status, out, err = run_join(monkeypatch, capsys, laptop, reply)
    assert status == 0, err
    assert "Joined 'family' (invited by 'laptop')." in out
    assert f"Pairing words: {' '.join(WORDS)}" in out
    assert "'laptop' shows the same four words." in out
    assert "run `covey group shred family --yes` here at once" in out


def test_already_a_member_is_said_on_both_sides(
    laptop: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 9, 6c, as the commands say it."""
    reply = {"event": "already_member", "group": "family", "group_id": "ab" * 32}
    status, out, err = run_join(monkeypatch, capsys, laptop, {**reply, "inviter": "laptop"})
    assert status == 0, err
    assert "This device is already a member of 'family'" in out
    assert "nothing was changed" in out
    # A member whose earlier pairing did not finish now holds the group: said so.
    stranded = {**reply, "inviter": "laptop", "had_group": False}
    status, out, err = run_join(monkeypatch, capsys, laptop, stranded)
    assert status == 0, err
    assert "it now holds the group and its keys" in out
    ids = device_ids(laptop)

    def invited(ctx: Any, action: Any, **kwargs: Any) -> dict[str, Any]:
        event = {**reply, "device": "phone", "device_id": ids["phone"]}
        kwargs["on_reply"]({"data": event, "final": False, "error": None})
        raise KeyboardInterrupt  # (the user stops the invitation)

    monkeypatch.setattr(pairing_cli, "node_command", invited)
    status = main(["invite", "-g", "family", "--home", str(laptop)])
    out, err = capsys.readouterr()
    assert status == 130
    assert f"'phone' ({ids['phone'][:13]}) is already a member of 'family'" in out
    assert "nothing was added, and the code still works for another device" in out
