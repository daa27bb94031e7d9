"""`covey up` as the one writer of the store, and how it stops.

Each test runs real `covey` processes on one namespaced host (so no mDNS
advert leaves the machine): commands that change state reach the running
node over its control socket; junk on the socket or the port hurts no one;
a dead node's socket never makes a command wait; SIGTERM stops the node
within five seconds whatever its peers do, and a second signal at once;
Ctrl-C at a passphrase prompt stops the command at the first press.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import socket
import stat
import subprocess
import termios
import time
from pathlib import Path

import pytest

from tests.net.conftest import needs_namespaces
from tests.net.netns import Lan
from tests.net.test_pairing_lan import COVEY

pytestmark = needs_namespaces
PASSPHRASE = {"COVEY_PASSPHRASE": "correct horse battery"}
#: What the issue promises: a signal stops `covey up` within this many seconds.
STOP_LIMIT = 5.0


@pytest.fixture
def host():
    alone = Lan(1)
    try:
        yield alone
    finally:
        alone.close()


def covey(lan: Lan, home: Path, *args: str, env: dict[str, str] | None = None):
    """Run covey on the host with no passphrase in the environment unless given."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    process = lan.run(0, [*COVEY, *args, "--home", str(home)], env={**environ, **(env or {})})
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


def start_up(lan: Lan, home: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    process = lan.run(0, [*COVEY, "up", "--json", "--home", str(home)], env={**environ, **env})
    first = json.loads(process.stdout.readline())
    assert first["event"] == "listening", first
    deadline = time.monotonic() + 10
    while not (home / "node.sock").exists():
        assert time.monotonic() < deadline, "no control socket"
        time.sleep(0.05)
    return process, first["port"]


def init(lan: Lan, home: Path) -> None:
    code, _, err = covey(lan, home, "init", "--name", "laptop", env=PASSPHRASE)
    assert code == 0, err
    code, _, err = covey(lan, home, "group", "create", "family", env=PASSPHRASE)
    assert code == 0, err


def stop(process: subprocess.Popen) -> tuple[float, int]:
    """SIGTERM; (seconds until it exited, exit status)."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=30)
    return time.monotonic() - started, process.returncode


def test_commands_go_through_the_running_node(host: Lan, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    init(host, home)
    node, _ = start_up(host, home, PASSPHRASE)
    try:
        assert stat.S_IMODE((home / "node.sock").stat().st_mode) == 0o600
        # No passphrase in the environment and no terminal: opening the store
        # directly would fail; through the unlocked node, the rotation works.
        code, out, err = covey(host, home, "group", "rotate", "family", "--json")
        assert code == 0, err
        assert json.loads(out)["epoch"]["number"] == 2
        code, out, err = covey(host, home, "group", "create", "work", "--json")
        assert code == 0, err
        assert json.loads(out)["name"] == "work"
        code, _, err = covey(host, home, "group", "create", "work")
        assert code == 1
        assert err.strip().splitlines() == [
            "covey: error: a group named 'work' already exists on this device"
        ]
        # A second node for the same home is refused in one line that names
        # the first one's process and how to stop it (issue 9, 6b).
        code, _, err = covey(host, home, "up", env=PASSPHRASE)
        assert code == 1
        assert "already running" in err
        assert f"covey up (process {node.pid}, since " in err
        assert f"`kill {node.pid}`" in err
        assert len(err.strip().splitlines()) == 1
        # Junk on the control socket closes that client only.
        for junk in (b"\xff\xfe\n", b'{"action": "rotate", "group": 7}\n', b"x" * 70_000):
            client = socket.socket(socket.AF_UNIX)
            client.connect(str(home / "node.sock"))
            client.sendall(junk)
            client.settimeout(5)
            try:
                answer = client.recv(4096)
            except ConnectionResetError:  # closed with our junk unread
                answer = b""
            client.close()
            if answer:
                assert json.loads(answer)["error"] == "MalformedMessage"
        code, out, err = covey(host, home, "group", "rotate", "family", "--json")
        assert code == 0, err
        assert json.loads(out)["epoch"]["number"] == 3
    finally:
        elapsed, status = stop(node)
    assert status == 0
    assert elapsed < STOP_LIMIT
    assert not (home / "node.sock").exists()
    # The node's changes are in the store.
    code, out, err = covey(host, home, "group", "show", "family", "--json", env=PASSPHRASE)
    assert json.loads(out)["epoch"]["number"] == 3


def test_a_dead_nodes_socket_does_not_hold_a_command(host: Lan, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    init(host, home)
    node, _ = start_up(host, home, PASSPHRASE)
    node.kill()  # SIGKILL: the socket file stays behind
    node.communicate()
    assert (home / "node.sock").exists()
    started = time.monotonic()
    code, out, err = covey(host, home, "group", "rotate", "family", "--json", env=PASSPHRASE)
    assert code == 0, err
    assert json.loads(out)["epoch"]["number"] == 2
    assert time.monotonic() - started < 10  # (no wait for a dead socket: see LOCK_WAIT)
    assert not (home / "node.sock").exists()


def test_sigterm_stops_within_five_seconds_whatever_the_peers_do(host: Lan, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    init(host, home)
    node, port = start_up(host, home, PASSPHRASE)
    address = host.addresses[0]
    # Peers that never answer: half-open connections (a preamble, then
    # silence), a flood of connections, and one pairing attempt left hanging.
    peers = host.python(
        0,
        f"""
import socket, time
held = []
for i in range(60):
    try:
        s = socket.create_connection(("{address}", {port}), timeout=2)
        if i % 2 == 0:
            s.sendall(b"cv1c")
        held.append(s)
    except OSError:
        pass
print("ready", flush=True)
time.sleep(60)
""",
    )
    try:
        assert peers.stdout.readline().strip() == "ready"
        elapsed, status = stop(node)
    finally:
        peers.kill()
        peers.communicate()
    assert status == 0
    assert elapsed < STOP_LIMIT


def test_a_vanished_network_and_a_second_signal(host: Lan, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    init(host, home)
    node, _ = start_up(host, home, PASSPHRASE)
    subprocess.run(
        ["ip", "-n", host.hosts[0], "link", "del", "eth0"], check=True, capture_output=True
    )
    time.sleep(0.5)
    elapsed, status = stop(node)
    assert status == 0
    assert elapsed < STOP_LIMIT
    # A second signal exits at once, even mid-shutdown.
    node, _ = start_up(host, home, PASSPHRASE)
    started = time.monotonic()
    node.send_signal(signal.SIGTERM)
    node.send_signal(signal.SIGTERM)
    node.communicate(timeout=30)
    assert time.monotonic() - started < STOP_LIMIT
    assert node.returncode in (0, 130)


def _own_terminal() -> None:
    """In the child: a new session whose controlling terminal is the pty (stdin)."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_ctrl_c_at_the_passphrase_prompt_stops_at_once(tmp_path: Path) -> None:
    """In a terminal, a command that unlocks the store asks; one Ctrl-C ends it."""
    home = tmp_path / "laptop"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    done = subprocess.run(
        [*COVEY, "init", "--name", "laptop", "--home", str(home)],
        env={**environ, **PASSPHRASE},
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    for args in (["group", "create", "family"], ["up"], ["passphrase"]):
        primary, secondary = pty.openpty()
        process = subprocess.Popen(
            [*COVEY, *args, "--home", str(home)],
            stdin=secondary,
            stdout=secondary,
            stderr=secondary,
            env=environ,
            preexec_fn=_own_terminal,
        )
        os.close(secondary)
        seen = b""
        deadline = time.monotonic() + 30
        while b"Passphrase" not in seen:
            assert time.monotonic() < deadline, seen
            ready, _, _ = select.select([primary], [], [], 1)
            if ready:
                seen += os.read(primary, 1024)
        started = time.monotonic()
        os.write(primary, b"\x03")  # Ctrl-C, through the terminal
        process.wait(timeout=10)
        assert time.monotonic() - started < 2, args
        assert process.returncode == 130, args
        os.close(primary)
