"""One node per home (issue 9, 6b): a second `covey up` says which process runs.

Found by review: a second `covey up` on the same home started, and the two
nodes dialed each other with misleading errors. The home lock refuses it
now, and the refusal names the process that holds the store (its PID and
command) and how to stop it. Here the holder is a real `covey join`, which
runs a node of its own on the store (reached by address: no mDNS leaves
this machine); `tests/net/test_up_control.py` holds the lock with a real
`covey up` on a namespaced host.
"""

from __future__ import annotations

import fcntl
import json
import signal
import subprocess
import time
from pathlib import Path

from covey.runtime import control
from tests.cli.test_devices_cli import make_homes
from tests.cli.test_identity_cli import COVEY, assert_one_line_error, covey


def holding(home: Path) -> subprocess.Popen[str]:
    """A `covey join` that holds the home lock for a minute (nobody answers it)."""
    process = subprocess.Popen(
        [*COVEY, "join", "1-acid-acid", "--address", "127.0.0.1:9", "--timeout", "60"],
        env={"COVEY_HOME": str(home), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not held(home / "node.lock"):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the join never took the home lock"
        time.sleep(0.05)
    return process


def held(path: Path) -> bool:
    """Whether another process holds the `flock` on `path`."""
    if not path.exists():
        return False
    with path.open("rb") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(probe, fcntl.LOCK_UN)
        return False


def test_a_second_node_names_the_process_that_holds_the_store(tmp_path: Path) -> None:
    home = make_homes(tmp_path, ("laptop",))["laptop"]
    holder = holding(home)
    try:
        second = covey("up", home=home)
        assert_one_line_error(second)
        line = second.stderr.strip()
        assert f"covey join (process {holder.pid}, since " in line
        assert f"`kill {holder.pid}`" in line
        assert "then start covey up" in line
        as_json = covey("up", "--json", home=home)
        assert json.loads(as_json.stdout)["error"]["code"] == "node_running"
        assert holder.poll() is None  # the holder was not disturbed
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.communicate(timeout=30)
    # Its process gone (killed: its note stays behind), the note names nobody,
    # and the next command takes the lock.
    assert (home / "node.lock").read_bytes()
    assert control.HomeLock(home).holder() is None
    rotated = covey("group", "rotate", "family", "--json", home=home)
    assert rotated.returncode == 0, rotated.stderr
