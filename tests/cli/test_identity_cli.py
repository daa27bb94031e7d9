"""The covey command as a user runs it: real processes, real files."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from shamir_mnemonic.wordlist import WORDLIST

SCRIPT = Path(sys.executable).parent / "covey"
COVEY = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "covey"]


def covey(
    *args: str, home: Path | None = None, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    if home is not None:
        full_env["COVEY_HOME"] = str(home)
    full_env.update(env or {})
    return subprocess.run(
        [*COVEY, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("covey: error: ")


def test_init_then_id_json(home: Path) -> None:
    init = covey("init", "--name", "laptop", "--json", home=home)
    assert init.returncode == 0, init.stderr
    created = json.loads(init.stdout)
    assert created["passphrase"] is False
    assert "file permissions" in created["warning"]
    assert "file permissions" in init.stderr

    shown = covey("id", "--json", home=home)
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)  # exactly one JSON document
    assert document["device_id"] == created["device_id"]
    assert document["device_id"].startswith("cv1-")
    assert document["name"] == "laptop"
    assert len(document["safety_words"]) == 8
    assert all(word in WORDLIST for word in document["safety_words"])
    assert {len(bytes.fromhex(k)) for k in document["keys"].values()} == {32}


def test_human_output_shows_id_and_words(home: Path) -> None:
    assert covey("init", home=home).returncode == 0
    shown = covey("id", home=home)
    document = json.loads(covey("id", "--json", home=home).stdout)
    assert document["device_id"] in shown.stdout
    assert " ".join(document["safety_words"]) in shown.stdout


def test_second_init_refuses_and_keeps_the_identity(home: Path) -> None:
    first = json.loads(covey("init", "--json", home=home).stdout)
    again = covey("init", home=home)
    assert_one_line_error(again)
    assert "already has an identity" in again.stderr
    assert json.loads(covey("id", "--json", home=home).stdout)["device_id"] == first["device_id"]


def test_force_needs_confirmation_then_replaces(home: Path) -> None:
    first = json.loads(covey("init", "--json", home=home).stdout)
    unconfirmed = covey("init", "--force", home=home)
    assert_one_line_error(unconfirmed)
    assert json.loads(covey("id", "--json", home=home).stdout)["device_id"] == first["device_id"]
    forced = covey("init", "--force", "--yes", "--json", home=home)
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout)["device_id"] != first["device_id"]


def test_id_without_identity_is_one_line(home: Path) -> None:
    result = covey("id", home=home)
    assert_one_line_error(result)
    assert "covey init" in result.stderr
    assert not home.exists()


def test_json_errors_are_one_document(home: Path) -> None:
    result = covey("id", "--json", home=home)
    assert_one_line_error(result)
    document = json.loads(result.stdout)
    assert document["ok"] is False
    assert document["error"]["code"] == "no_identity"


@pytest.mark.parametrize(
    "args",
    [("init", "--bogus"), ("nonsense",), ("init", "--name"), ("init", "--name", "a\nb")],
)
def test_usage_errors_are_one_line(home: Path, args: tuple[str, ...]) -> None:
    assert_one_line_error(covey(*args, home=home))


def test_passphrase_protects_keys_and_wrong_one_changes_nothing(home: Path) -> None:
    init = covey("init", "--json", home=home, env={"COVEY_PASSPHRASE": "hunter2 hunter2"})
    assert init.returncode == 0, init.stderr
    assert json.loads(init.stdout)["passphrase"] is True
    assert "file permissions" not in init.stderr

    before = {p.name: hashlib.sha256(p.read_bytes()).digest() for p in home.iterdir()}
    wrong = covey(
        "passphrase", home=home, env={"COVEY_PASSPHRASE": "nope", "COVEY_NEW_PASSPHRASE": ""}
    )
    assert_one_line_error(wrong)
    assert "Wrong passphrase" in wrong.stderr
    after = {p.name: hashlib.sha256(p.read_bytes()).digest() for p in home.iterdir()}
    assert after == before

    locked = covey("passphrase", home=home)  # no passphrase given, no terminal
    assert_one_line_error(locked)
    assert "COVEY_PASSPHRASE" in locked.stderr

    removed = covey(
        "passphrase",
        "--json",
        home=home,
        env={"COVEY_PASSPHRASE": "hunter2 hunter2", "COVEY_NEW_PASSPHRASE": ""},
    )
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"ok": True, "passphrase": False}


def test_store_is_owner_only(home: Path) -> None:
    assert covey("init", home=home).returncode == 0
    assert home.stat().st_mode & 0o777 == 0o700
    for path in home.iterdir():
        assert path.stat().st_mode & 0o077 == 0, path


def test_home_option_overrides_environment(tmp_path: Path) -> None:
    env_home, option_home = tmp_path / "env", tmp_path / "opt"
    result = covey("init", "--home", str(option_home), home=env_home)
    assert result.returncode == 0, result.stderr
    assert (option_home / "covey.db").exists()
    assert not env_home.exists()


def test_version_and_help() -> None:
    from covey import __version__

    assert covey("--version").stdout.strip() == f"covey {__version__}"
    top = covey("--help")
    assert top.returncode == 0
    for command in ("init", "id", "passphrase"):
        assert command in top.stdout
        assert covey(command, "--help").returncode == 0
        assert "--json" in covey(command, "--help").stdout


def test_secrets_never_reach_the_output(home: Path) -> None:
    import sqlite3

    out = covey("init", "--json", home=home)
    with sqlite3.connect(home / "covey.db") as db:
        (ring,) = db.execute("SELECT wrapped FROM keyring").fetchone()
    assert ring.hex() not in out.stdout + out.stderr


def run_in_terminal(args: list[str], home: Path, answers: list[str]) -> tuple[int, str]:
    """Run covey with a pseudo-terminal as its controlling terminal, typing `answers`."""
    import fcntl
    import select
    import termios
    import time

    primary, secondary = os.openpty()

    def make_controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(secondary, termios.TIOCSCTTY, 0)

    env = {k: v for k, v in os.environ.items() if not k.startswith("COVEY_")}
    env["COVEY_HOME"] = str(home)
    process = subprocess.Popen(
        [*COVEY, *args],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        preexec_fn=make_controlling_terminal,
        close_fds=True,
    )
    os.close(secondary)
    output = b""
    pending = list(answers)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([primary], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output += chunk
            # click prints "Prompt:" and getpass then prints " " once it has
            # set up the terminal (flushing any input typed before): answer
            # only after that space, or the answer is thrown away.
            if pending and output.endswith(b": "):
                os.write(primary, pending.pop(0).encode() + b"\n")
        elif process.poll() is not None:
            break
    try:
        status = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
        os.close(primary)
    return status, output.decode(errors="replace")


def test_init_asks_for_a_passphrase_in_a_terminal(home: Path) -> None:
    status, output = run_in_terminal(
        ["init", "--name", "tty"], home, ["s3cret words", "s3cret words"]
    )
    assert status == 0, output
    assert "s3cret" not in output  # hidden input
    assert "Repeat" in output  # asked twice
    wrong = covey(
        "passphrase", home=home, env={"COVEY_PASSPHRASE": "other", "COVEY_NEW_PASSPHRASE": ""}
    )
    assert "Wrong passphrase" in wrong.stderr
    right = covey(
        "passphrase",
        home=home,
        env={"COVEY_PASSPHRASE": "s3cret words", "COVEY_NEW_PASSPHRASE": ""},
    )
    assert right.returncode == 0, right.stderr


def test_help_imports_no_heavy_module() -> None:
    """`covey --help` stays fast because commands import their dependencies lazily."""
    probe = (
        "import sys, contextlib, io\n"
        "from covey.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['--help'])\n"
        "heavy = {'nacl', 'aiosqlite', 'anyio', 'msgpack', 'shamir_mnemonic', 'platformdirs'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_passphrase_change_never_removes_it_by_default(home: Path) -> None:
    covey("init", home=home, env={"COVEY_PASSPHRASE": "keep me"})
    result = covey("passphrase", home=home, env={"COVEY_PASSPHRASE": "keep me"})
    assert_one_line_error(result)
    assert "COVEY_NEW_PASSPHRASE" in result.stderr
    import sqlite3

    with sqlite3.connect(home / "covey.db") as db:
        assert db.execute("SELECT kind FROM keyring").fetchone()[0] == "passphrase"


@pytest.mark.parametrize(
    "name", ["evil\u202etxt.exe", "zero\u200bwidth", "line\u2028break", "tab\there"]
)
def test_names_with_invisible_characters_are_refused(home: Path, name: str) -> None:
    assert_one_line_error(covey("init", "--name", name, home=home))


def test_names_are_normalised(home: Path) -> None:
    result = covey("init", "--name", "cafe\u0301", "--json", home=home)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["name"] == "caf\u00e9"


def test_home_that_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    result = covey("init", home=shared)
    assert_one_line_error(result)
    assert "chmod 700" in result.stderr
    assert not (shared / "covey.db").exists()


def test_planted_wal_file_is_refused(home: Path) -> None:
    assert covey("init", home=home).returncode == 0
    planted = home / "covey.db-wal"
    planted.write_bytes(b"")
    planted.chmod(0o666)
    result = covey("id", home=home)
    assert_one_line_error(result)
    assert "covey.db-wal" in result.stderr


def test_linked_database_is_refused(home: Path, tmp_path: Path) -> None:
    assert covey("init", home=home).returncode == 0
    real = tmp_path / "elsewhere.db"
    (home / "covey.db").rename(real)
    (home / "covey.db").symlink_to(real)
    assert_one_line_error(covey("id", home=home))


def test_unknown_user_home_is_one_line() -> None:
    assert_one_line_error(covey("id", "--home", "~nosuchuserhere/x"))
