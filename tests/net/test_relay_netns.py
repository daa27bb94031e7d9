"""Issue 10's acceptance as real processes: two networks, no multicast between, a relay.

Host 0 runs `covey relay serve`; the laptop (host 1) and the phone (host 2)
are each alone on a network of their own (`Internet`: unicast is routed,
mDNS never leaves a host). The laptop names the relay for its group and
invites with a code; the phone joins with the code and `--relay` (both
online, as with magic-wormhole). Then, with the phone's node stopped, the
laptop rotates the key and seals a note, and stops too; the relay is
restarted (it keeps what it stored); the phone's node comes back, gets the
new key through the relay alone, and opens the note. Last, the relay's
database is scanned for anything identifying: device IDs, the group's ID
and name, device names, keys. None may be there.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from covey.core.identity import DeviceId
from tests.net.conftest import needs_namespaces
from tests.net.netns import Internet
from tests.net.test_pairing_lan import COVEY

pytestmark = needs_namespaces

RELAY, LAPTOP, PHONE = 0, 1, 2


@pytest.fixture
def internet():
    network = Internet(3)
    try:
        yield network
    finally:
        network.close()


def covey(net: Internet, host: int, home: Path, *args: str, timeout: float = 60) -> dict:
    process = net.run(host, [*COVEY, *args, "--json", "--home", str(home)])
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out)


@contextmanager
def relay(net: Internet, data: Path):
    process = net.run(
        RELAY,
        [*COVEY, "relay", "serve", "--listen", f"{net.addresses[RELAY]}:4433",
         "--data", str(data), "--json"],
    )  # fmt: skip
    try:
        line = process.stdout.readline()
        assert line, process.stderr.read()
        yield json.loads(line)["link"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def up(net: Internet, host: int, home: Path) -> subprocess.Popen:
    process = net.run(host, [*COVEY, "up", "--json", "--relay-every", "1", "--home", str(home)])
    first = json.loads(process.stdout.readline())
    assert first["event"] == "listening", first
    return process


def stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    return out


def wait_until(check: Any, what: str, timeout: float = 45) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def test_pair_and_sync_through_a_relay_alone(internet: Internet, tmp_path: Path) -> None:
    laptop, phone, data = tmp_path / "laptop", tmp_path / "phone", tmp_path / "relay"
    covey(internet, LAPTOP, laptop, "init", "--name", "laptop")
    created = covey(internet, LAPTOP, laptop, "group", "create", "family")
    covey(internet, PHONE, phone, "init", "--name", "phone")
    with relay(internet, data) as link:
        covey(internet, LAPTOP, laptop, "relay", "add", link, "-g", "family")
        laptop_node = up(internet, LAPTOP, laptop)
        nodes = [laptop_node]
        try:
            inviter = internet.run(
                LAPTOP,
                [*COVEY, "invite", "-g", "family", "--yes", "--json", "--home", str(laptop)],
            )
            invitation = json.loads(inviter.stdout.readline())
            assert invitation["relays"] == [link]
            joined = covey(
                internet, PHONE, phone, "join", invitation["code"], "--relay", link,
                "--timeout", "60",
            )  # fmt: skip
            assert joined["group"] == "family"
            out, err = inviter.communicate(timeout=30)
            assert inviter.returncode == 0, err
            assert json.loads(out.splitlines()[-1])["pairing_words"] == joined["pairing_words"]

            phone_node = up(internet, PHONE, phone)
            nodes.append(phone_node)
            # The phone's inbox announcement reaches the laptop through the relay.
            wait_until(
                lambda: all(
                    r["inbox"]
                    for r in covey(internet, PHONE, phone, "relay", "list")["groups"][0]["relays"]
                ),
                "the phone to announce its inbox",
            )
            wait_until(
                lambda: (
                    covey(internet, LAPTOP, laptop, "group", "show", "family")["ops"]
                    >= covey(internet, PHONE, phone, "group", "show", "family")["ops"]
                ),
                "the laptop to hold the phone's ops",
            )
            stop(phone_node)
            nodes.remove(phone_node)

            rotated = covey(internet, LAPTOP, laptop, "group", "rotate", "family")
            epoch = rotated["epoch"]["number"]
            note = tmp_path / "note.txt"
            note.write_text("the new wifi password is purple-otter")
            covey(internet, LAPTOP, laptop, "seal", "-g", "family", str(note))
            time.sleep(4)  # (the delivery to the phone's inbox goes 2 s after a change)
        finally:
            for node in nodes:  # (also when a wait timed out: no node outlives the test)
                if node.poll() is None:
                    stop(node)
    # The relay restarts (same data directory): nothing stored is lost.
    with relay(internet, data) as again:
        assert again == link
        phone_node = up(internet, PHONE, phone)
        try:
            shown = wait_until(
                lambda: (
                    (s := covey(internet, PHONE, phone, "group", "show", "family"))["epoch"][
                        "number"
                    ]
                    >= epoch
                    and s
                ),
                "the phone to get the new key through the relay",
            )
            assert shown["epoch"]["key_held"]
            opened = covey(
                internet, PHONE, phone, "open", str(note) + ".covey", "-o", str(tmp_path / "out")
            )
            assert opened["group"] == "family"
            assert (tmp_path / "out").read_text() == note.read_text()
            status = covey(internet, PHONE, phone, "status")
            (peer,) = status["peers"]
            assert (peer["name"], peer["via"]) == ("laptop", "relay")
        finally:
            stop(phone_node)

    # What the relay kept identifies nobody and nothing.
    stored = b"".join(p.read_bytes() for p in data.iterdir() if p.name.startswith("relay.db"))
    with sqlite3.connect(data / "relay.db") as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    needles = [bytes.fromhex(created["group_id"]), b"family", b"laptop", b"phone"]
    for host, home in ((LAPTOP, laptop), (PHONE, phone)):
        ident = covey(internet, host, home, "id")
        needles.append(ident["device_id"].encode())
        needles.append(DeviceId.parse(ident["device_id"]).raw)
        needles += [bytes.fromhex(key) for key in ident["keys"].values()]
    assert len(needles) == 14
    for needle in needles:
        assert needle not in stored, needle


def test_a_one_shot_invite_through_a_relay_hands_over_its_welcome(
    internet: Internet, tmp_path: Path
) -> None:
    """No `covey up` on the inviter: `covey invite` runs a node of its own, which
    must not exit before its welcome is put at the relay (a walkthrough found
    the joiner waiting out its timeout while the inviter reported it joined)."""
    laptop, phone, data = tmp_path / "laptop", tmp_path / "phone", tmp_path / "relay"
    covey(internet, LAPTOP, laptop, "init", "--name", "laptop")
    covey(internet, LAPTOP, laptop, "group", "create", "family")
    covey(internet, PHONE, phone, "init", "--name", "phone")
    with relay(internet, data) as link:
        covey(internet, LAPTOP, laptop, "relay", "add", link, "-g", "family")
        inviter = internet.run(
            LAPTOP, [*COVEY, "invite", "-g", "family", "--yes", "--json", "--home", str(laptop)]
        )
        invitation = json.loads(inviter.stdout.readline())
        joined = covey(
            internet, PHONE, phone, "join", invitation["code"], "--relay", link,
            "--timeout", "60",
        )  # fmt: skip
        out, err = inviter.communicate(timeout=30)
        assert inviter.returncode == 0, err
        assert json.loads(out.splitlines()[-1])["pairing_words"] == joined["pairing_words"]
    held = covey(internet, PHONE, phone, "group", "list")["groups"]
    assert [g["name"] for g in held] == ["family"]
    shown = covey(internet, PHONE, phone, "devices", "-g", "family")
    assert {d["name"] for d in shown["devices"]} == {"laptop", "phone"}
