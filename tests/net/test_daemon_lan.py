"""`covey up` on separate hosts: members find each other and stay in sync.

Two namespaces on a bridge: the laptop and the phone pair, both run
`covey up`, the laptop rotates the group's key and the phone follows;
the phone's node is killed, the laptop changes again, and the restarted
phone catches up. A third host, not in the group, runs `covey up` too and
learns nothing of the group.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

from tests.net.conftest import needs_namespaces
from tests.net.netns import Lan
from tests.net.test_pairing_lan import COVEY, covey, start_invite

pytestmark = needs_namespaces


def up(lan: Lan, host: int, home: Path):
    process = lan.run(host, [*COVEY, "up", "--json", "--home", str(home)])
    first = json.loads(process.stdout.readline())
    assert first["event"] == "listening", first
    return process


def wait_for_epoch(lan: Lan, host: int, home: Path, epoch: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        shown = covey(lan, host, home, "group", "show", "family")
        if shown["epoch"]["number"] >= epoch or time.monotonic() > deadline:
            return shown
        time.sleep(0.5)


def stop(process) -> str:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    return out


def test_members_sync_and_a_restarted_node_catches_up(lan: Lan, tmp_path: Path) -> None:
    laptop, phone, stranger = tmp_path / "laptop", tmp_path / "phone", tmp_path / "stranger"
    covey(lan, 0, laptop, "init", "--name", "laptop")
    covey(lan, 0, laptop, "group", "create", "family")
    covey(lan, 1, phone, "init", "--name", "phone")
    covey(lan, 2, stranger, "init", "--name", "stranger")
    inviter, invitation = start_invite(lan, 0, laptop)
    try:
        covey(lan, 1, phone, "join", invitation["code"])
        inviter.communicate(timeout=30)
    finally:
        inviter.kill()

    nodes = [up(lan, 0, laptop), up(lan, 1, phone), up(lan, 2, stranger)]
    try:
        epoch = covey(lan, 0, laptop, "group", "rotate", "family")["epoch"]["number"]
        shown = wait_for_epoch(lan, 1, phone, epoch)
        assert shown["epoch"]["number"] == epoch
        assert shown["epoch"]["key_held"]

        nodes[1].kill()  # the phone's node is killed (SIGKILL) ...
        nodes[1].communicate()
        epoch = covey(lan, 0, laptop, "group", "rotate", "family")["epoch"]["number"]
        nodes[1] = up(lan, 1, phone)  # ... and comes back
        shown = wait_for_epoch(lan, 1, phone, epoch)
        assert shown["epoch"]["number"] == epoch

        status = covey(lan, 1, phone, "status")
        assert [p["name"] for p in status["peers"]] == ["laptop"]
        devices = covey(lan, 0, laptop, "devices", "-g", "family")
        assert {d["name"]: d["seen"] for d in devices["devices"]} == {"laptop": True, "phone": True}
    finally:
        outputs = [stop(node) if node.poll() is None else "" for node in nodes]
    # The restarted phone caught up: each sync it reports changed something
    # (a new key, by the laptop), from the laptop's IPv4 address (issue 9, 6g).
    events = [json.loads(line) for line in outputs[1].splitlines() if line.strip()]
    synced = [e for e in events if e["event"] == "synced"]
    assert synced
    assert all(e["changes"] for e in synced)
    assert any(c["epoch"] and c["epoch"]["by"] == "laptop" for e in synced for c in e["changes"])
    assert not [e for e in synced if e["address"].startswith("::ffff:")]
    # The stranger saw adverts but never synced with anyone, and holds no group.
    assert "synced" not in outputs[2]
    assert covey(lan, 2, stranger, "group", "list")["groups"] == []
    assert covey(lan, 2, stranger, "status")["peers"] == []
