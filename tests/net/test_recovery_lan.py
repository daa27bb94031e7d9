"""Asking share holders and approving, as separate processes on separate hosts
(issue 11, PROTOCOL.md 19.2): mDNS finds the asking device by its code, and
the exchange runs over a real LAN.

Three namespaces on a bridge. The household's stores are made in this
process (laptop the admin, phone and tablet, each a person of its own) with
a dealing (K = 2, one paper share) written by `covey recovery setup`. Host
2 also runs the new device: it asks, the phone and the tablet approve.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.cli.test_devices_cli import deliver, make_homes
from tests.net.conftest import needs_namespaces
from tests.net.netns import Lan
from tests.net.test_pairing_lan import COVEY, covey

pytestmark = needs_namespaces


def ask(lan: Lan, host: int, home: Path, *args: str) -> tuple[subprocess.Popen, dict]:
    process = lan.run(host, [*COVEY, *args, "--json", "--home", str(home)])
    first = json.loads(process.stdout.readline())
    assert first["event"] == "asking", first
    return process, first


def household(
    lan: Lan, tmp_path: Path, veto: str = "72h", k: int = 2
) -> tuple[dict[str, Path], Path, list[str]]:
    homes = make_homes(tmp_path)
    setup = ["recovery", "setup", "-g", "family", "-k", str(k), "--paper", "1", "--veto", veto]
    made = covey(lan, 0, homes["laptop"], *setup)
    for name in ("phone", "tablet"):
        deliver(homes["laptop"], homes[name])
    new = tmp_path / "new"
    covey(lan, 2, new, "init", "--name", "new-phone")
    return homes, new, made["paper_shares"][0]["words"]


def test_two_holders_approve_and_the_admission_is_claimed(lan: Lan, tmp_path: Path) -> None:
    homes, new, _ = household(lan, tmp_path)
    asker, asking = ask(lan, 2, new, "request-join", "-g", "family")
    try:
        looked_and_approved = covey(
            lan, 1, homes["phone"], "recovery", "approve", asking["code"], "--yes"
        )
        assert looked_and_approved["event"] == "approved"
        assert looked_and_approved["device"] == "new-phone"
        assert looked_and_approved["safety_words"] == asking["safety_words"]
        second = covey(lan, 0, homes["tablet"], "recovery", "approve", asking["code"], "--yes")
        assert second["claimed"]
        out, err = asker.communicate(timeout=60)
    finally:
        asker.kill()
    assert asker.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [e["event"] for e in events][-1] == "claimed"
    assert events[-1]["kind"] == "admit"
    status = covey(lan, 0, homes["laptop"], "recovery", "status", "-g", "family")
    assert status["requests"] == []  # (the laptop has not synced yet: nobody ran covey up)
    tablet = covey(lan, 0, homes["tablet"], "recovery", "status", "-g", "family")
    [request] = tablet["requests"]
    assert (request["status"], request["device"]) == ("pending", "new-phone")


def test_a_recovery_with_one_holder_and_the_paper(lan: Lan, tmp_path: Path) -> None:
    homes, new, words = household(lan, tmp_path)
    paper = tmp_path / "words.txt"
    paper.write_text(" ".join(words) + "\n")
    asker, asking = ask(
        lan, 2, new, "recover", "-g", "family", "--person", "tablet", "--words-file", str(paper)
    )
    try:
        approved = covey(lan, 1, homes["phone"], "recovery", "approve", asking["code"], "--yes")
        assert approved["event"] == "approved"
        assert approved["claimed"]
        out, err = asker.communicate(timeout=60)
    finally:
        asker.kill()
    assert asker.returncode == 0, err
    claimed = json.loads(out.strip().splitlines()[-1])
    assert claimed["event"] == "claimed"
    assert (claimed["kind"], claimed["person"]) == ("recover", "tablet")
    phone = covey(lan, 1, homes["phone"], "recovery", "status", "-g", "family")
    [request] = phone["requests"]
    assert request["status"] == "pending"
    assert phone["dealing"]["void"] == "a recovery claim spent it"


def test_a_mistyped_paper_word_is_named_before_anything_is_asked(lan: Lan, tmp_path: Path) -> None:
    _, new, words = household(lan, tmp_path)
    words[6] = "zzzz"
    paper = tmp_path / "words.txt"
    paper.write_text(" ".join(words) + "\n")
    args = ["recover", "-g", "family", "--person", "tablet", "--words-file", str(paper)]
    process = lan.run(2, [*COVEY, *args, "--home", str(new)])
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert (
        err.strip().splitlines()
        == [f"covey: error: word 7 of line 1 of {paper} is not a SLIP-39 word"]
        or "word 7 of line 1" in err
    )
    assert "zzzz" not in err


def test_acceptance_a_the_admin_is_away_and_two_holders_let_a_new_device_in(
    lan: Lan, tmp_path: Path
) -> None:
    """Issue 11, acceptance (a), in small: the admin's device is stopped; a new device
    asks, two holders approve, their `covey up` nodes witness the claim after
    the (shortened) veto window and complete it, and the new device, running
    `covey up` too, becomes a member and opens a file sealed before it asked."""
    from tests.net.test_daemon_lan import stop, up

    homes, new, _ = household(lan, tmp_path, veto="60s")
    note = tmp_path / "note.txt"
    note.write_text("the wifi password is correct-horse")
    covey(lan, 0, homes["laptop"], "seal", "-g", "family", str(note))  # then the laptop is off
    asker, asking = ask(lan, 2, new, "request-join", "-g", "family")
    try:
        covey(lan, 1, homes["phone"], "recovery", "approve", asking["code"], "--yes")
        covey(lan, 0, homes["tablet"], "recovery", "approve", asking["code"], "--yes")
        asker.communicate(timeout=60)
    finally:
        asker.kill()
    assert asker.returncode == 0
    nodes = [up(lan, 1, homes["phone"]), up(lan, 0, homes["tablet"]), up(lan, 2, new)]
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            shown = covey(lan, 2, new, "group", "show", "family")
            mine = [m for m in shown["members"] if m["this_device"]]
            if mine and shown["epoch"]["key_held"]:
                break
            time.sleep(2)
        assert mine, "the new device never became a member"
        assert shown["epoch"]["key_held"]
        opened = covey(lan, 2, new, "open", str(note) + ".covey", "-o", str(tmp_path / "got"))
        assert opened["author"]["name"] == "laptop"
        assert (tmp_path / "got").read_text() == note.read_text()
        status = covey(lan, 1, homes["phone"], "recovery", "status", "-g", "family")
        assert [r["status"] for r in status["requests"]] == ["completed"]
        assert sorted(status["requests"][0]["approved_by"]) == ["phone", "tablet"]
    finally:
        outputs = [stop(node) if node.poll() is None else "" for node in nodes]
    assert "PENDING" not in outputs[0]  # (pending claims go to stderr, loudly)


def wait_until_member(lan: Lan, host: int, home: Path, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    shown: dict = {}
    while time.monotonic() < deadline:
        shown = covey(lan, host, home, "group", "show", "family")
        if any(m["this_device"] for m in shown["members"]) and shown["epoch"]["key_held"]:
            return shown
        time.sleep(2)
    raise AssertionError(f"the device never became a member: {shown}")


def test_acceptance_b_a_person_who_lost_every_device_is_recovered(lan: Lan, tmp_path: Path) -> None:
    """Issue 11, acceptance (b), in small: every device of one person (the tablet)
    is gone for good; a new device recovers that person with two holders' shares
    and the paper (K = 3), takes its place after the window, and the old device
    is out of every later epoch: it opens nothing sealed afterwards."""
    from tests.net.test_daemon_lan import stop, up

    homes, new, words = household(lan, tmp_path, veto="60s", k=3)
    paper = tmp_path / "words.txt"
    paper.write_text(" ".join(words) + "\n")
    recover = ["recover", "-g", "family", "--person", "tablet", "--words-file", str(paper)]
    asker, asking = ask(lan, 2, new, *recover)
    try:
        first = covey(lan, 0, homes["laptop"], "recovery", "approve", asking["code"], "--yes")
        assert not first["claimed"]
        second = covey(lan, 1, homes["phone"], "recovery", "approve", asking["code"], "--yes")
        assert second["claimed"]
        asker.communicate(timeout=60)
    finally:
        asker.kill()
    assert asker.returncode == 0
    nodes = [up(lan, 0, homes["laptop"]), up(lan, 1, homes["phone"]), up(lan, 2, new)]
    try:
        shown = wait_until_member(lan, 2, new)
        names = {m["name"]: m["role"] for m in shown["members"]}
        assert names == {"laptop": "admin", "phone": "member", "new-phone": "member"}
        note = tmp_path / "after.txt"
        note.write_text("sealed after the recovery")
        covey(lan, 0, homes["laptop"], "seal", "-g", "family", str(note))
        opened = covey(lan, 2, new, "open", str(note) + ".covey", "-o", str(tmp_path / "got"))
        assert opened["author"]["name"] == "laptop"
        devices = covey(lan, 0, homes["laptop"], "devices", "-g", "family")
        assert {d["name"]: d["person"] for d in devices["devices"]}["new-phone"] == "tablet"
    finally:
        for node in nodes:
            if node.poll() is None:
                stop(node)
    # The tablet, were it ever back, holds no key for what was sealed after.
    process = lan.run(0, [*COVEY, "open", str(note) + ".covey", "-o", str(tmp_path / "no"),
                          "--home", str(homes["tablet"])])  # fmt: skip
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    assert not (tmp_path / "no").exists()
    assert len(err.strip().splitlines()) == 1
