"""What `covey up` logs (issue 9, 6g): what changed, by whom, from whom, when.

Found by review: its log repeated "synced with" lines every few seconds when
nothing changed, twice per peer (an IPv4 and an IPv4-mapped IPv6 address),
without times, and never said what changed. The node now notifies a sync
only when it changed something, with what changed (tested with the pure
node in `tests/core/test_node.py`); here `covey up` runs in this process
with its node replaced by one that reports such events, and every line it
prints must carry the local time and say what changed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from covey.cli import common, main
from covey.runtime import daemon as runtime_daemon
from tests.cli.test_devices_cli import make_homes

STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")

CHANGED = {
    "peer": "laptop",
    "peer_id": "cv1-aaaa",
    "address": "192.0.2.7",
    "finished": True,
    "refused": 0,
    "changes": [
        {
            "group": "family",
            "group_id": "ab" * 32,
            "ops": 3,
            "added": [{"name": "tablet", "device_id": "cv1-bbbb", "by": "laptop"}],
            "removed": [
                {"name": "phone", "device_id": "cv1-cccc", "by": "laptop", "left": False},
                {"name": "watch", "device_id": "cv1-dddd", "by": "watch", "left": True},
            ],
            "roles": [{"name": "tablet", "device_id": "cv1-bbbb", "by": "laptop", "role": "admin"}],
            "epoch": {"number": 7, "by": "laptop", "held": True},
            "history": None,
        }
    ],
}


def run_up(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    events: list[tuple[str, dict[str, Any]]],
    *args: str,
) -> tuple[str, str]:
    """`covey up` whose node emits `events` and stops."""

    async def serve(*_: Any, emit: Any, **__: Any) -> None:
        for event, data in events:
            emit(event, data)

    monkeypatch.setattr(runtime_daemon, "serve", serve)
    monkeypatch.delenv("COVEY_PASSPHRASE", raising=False)
    common._PASSPHRASES.clear()
    capsys.readouterr()
    assert main(["up", "--home", str(home), *args]) == 0
    out, err = capsys.readouterr()
    return out, err


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_homes(tmp_path, ("laptop",))["laptop"]


def test_every_line_has_the_time_and_a_sync_says_what_changed(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [
        ("listening", {"port": 4242}),
        ("synced", CHANGED),
        ("connection_failed", {"address": "192.0.2.9", "reason": "timed out"}),
        ("stopped", {}),
    ]
    out, err = run_up(home, monkeypatch, capsys, events)
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all(STAMP.match(line) for line in lines), lines
    assert lines[0].endswith("covey is up on port 4242; Ctrl-C stops it.")
    assert lines[1][len("2026-12-03 14:05:12 ") :] == (
        "family: added 'tablet' (by 'laptop'), removed 'phone' (by 'laptop'), 'watch' left,"
        " 'tablet' is now admin (by 'laptop'), new key, epoch 7 (by 'laptop')"
        " (from 'laptop' at 192.0.2.7)"
    )
    (failed,) = err.strip().splitlines()
    assert STAMP.match(failed)
    assert failed.endswith("a connection with 192.0.2.9 failed: timed out")


def test_a_new_key_this_device_does_not_hold_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A removed device hears of the rotation that removed it (a manual run
    printed "new key, epoch 4" there, as if it held that key)."""
    (change,) = CHANGED["changes"]
    removal = {**change, "added": [], "roles": [], "removed": []}
    removal["epoch"] = {"number": 4, "by": "laptop", "held": False}
    out, _ = run_up(home, monkeypatch, capsys, [("synced", {**CHANGED, "changes": [removal]})])
    assert out.strip().endswith(
        "family: new key, epoch 4 (by 'laptop', not for this device) (from 'laptop' at 192.0.2.7)"
    )


def test_json_lines_carry_the_time_and_the_changes(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = run_up(home, monkeypatch, capsys, [("synced", CHANGED)], "--json")
    first, *_ = (json.loads(line) for line in out.strip().splitlines())
    assert first["event"] == "synced"
    assert isinstance(first["time"], float)
    assert first["changes"] == CHANGED["changes"]


def test_relay_events_have_lines_saying_what_went_through_the_relay() -> None:
    from covey.cli.daemon import log_line

    fetched = {"group": "family", "relay": "relay.example:4433", "ops": 3, "dropped": 1}
    assert log_line("relay_fetched", fetched) == (
        "family: took 3 op(s) from relay relay.example:4433 (1 item(s) that did not open dropped)"
    )
    fetched["dropped"] = 0
    assert (
        log_line("relay_fetched", fetched) == "family: took 3 op(s) from relay relay.example:4433"
    )
    left = {"group": "family", "relay": "relay.example:4433", "to": "phone", "delivered": True}
    assert log_line("relay_delivered", left) == (
        "family: left what 'phone' lacks at relay relay.example:4433"
    )
    left["delivered"] = False
    assert "could not leave 'phone'" in str(log_line("relay_delivered", left))
