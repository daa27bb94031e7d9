"""Every error path of the command line, and what its message looks like (issue 9, 6d).

A user error is one line on stderr, `covey: error: ` and what to do next,
a non-zero exit, and under --json one JSON document on stdout with
`ok: false`. Found by review: opening a file sealed for a group this device
does not hold printed the group ID as a Python bytes value. So each message
here is checked for any sign of an internal value: a bytes repr, an escape,
a long run of hex, a Python class name, a traceback, an internal error.

The cases are every `raise` of a covey error reachable from a command (the
store, the home, the node's refusals, sealed files, pairing arguments, the
home lock) and click's usage errors. They run `covey.cli.main` in this
process (as the console script does), so that a few dozen cases stay quick;
the commands that need other processes are tested with real ones elsewhere
(`tests/cli/test_lock_cli.py`, `tests/net/`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from covey.cli import common, main
from covey.core.identity import create_identity
from covey.runtime import control
from covey.store.sqlite import Store
from tests.cli.test_devices_cli import deliver, make_homes
from tests.conftest import NOW, SeededRng
from tests.net.loopback import FAST

#: Signs of an internal value in a message for people.
BYTES_REPR = re.compile(r"""\bb['"]""")
LONG_HEX = re.compile(r"[0-9a-fA-F]{17,}")
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|\b[A-Z]\w+\(")


@dataclass
class Result:
    status: int
    out: str
    err: str


def check(result: Result, as_json: bool) -> str:
    """The one error line, checked; under --json, the document checked too."""
    assert result.status != 0, result
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    line = lines[0]
    assert line.startswith("covey: error: "), line
    assert "Traceback" not in result.err
    assert "internal error" not in line, line
    assert not BYTES_REPR.search(line), line
    assert "\\x" not in line, line
    assert not LONG_HEX.search(line), line
    assert not CLASS_NAME.search(line), line
    message = line[len("covey: error: ") :]
    assert message.strip(), line
    if as_json:
        document = json.loads(result.out)  # exactly one document
        assert document["ok"] is False
        assert document["error"]["message"] == message
        assert re.fullmatch(r"[a-z_]+", document["error"]["code"])
    else:
        assert result.out == ""
    return message


Run = Callable[..., Result]


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """Run `covey ARGS` in this process: (status, stdout, stderr)."""
    for name in ("COVEY_HOME", "COVEY_PASSPHRASE", "COVEY_NEW_PASSPHRASE", "COVEY_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    # A command whose home lock is held waits this long for the holder.
    monkeypatch.setattr(control, "LOCK_WAIT", 0.3)

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        common._PASSPHRASES.clear()  # (asked once per process: here, once per call)
        capsys.readouterr()
        with monkeypatch.context() as scoped:
            for name, value in (env or {}).items():
                scoped.setenv(name, value)
            status = main(list(args))
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


@dataclass
class Places:
    """Homes and files the cases refer to by name."""

    homes: dict[str, Path]
    files: dict[str, Path]

    def resolve(self, arg: str) -> str:
        """`@name` is a home, `%name` a file, anything else as it is."""
        if arg.startswith("@"):
            return str(self.homes[arg[1:]])
        if arg.startswith("%"):
            return str(self.files[arg[1:]])
        return arg


def sealed_variants(sealed: Path, tmp: Path) -> dict[str, Path]:
    """A sealed file cut short, altered, with bytes after its end, and not sealed at all."""
    data = sealed.read_bytes()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 1
    variants = {
        "truncated": data[:-10],
        "head-only": data[:30],
        "tampered": bytes(flipped),
        "trailing": data + b"x",
        "bad-envelope": b"covey-sealed/1\n\x00\x00\x00\x05hello",
        "plain": b"not sealed at all\n",
    }
    paths = {}
    for name, content in variants.items():
        path = tmp / f"{name}.covey"
        path.write_bytes(content)
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Places:
    """Every home and file a case needs, built once (the cases change nothing)."""
    tmp = tmp_path_factory.mktemp("errors")
    homes = make_homes(tmp / "house")
    homes.update({f"2-{k}": v for k, v in make_homes(tmp / "house2").items()})
    homes["solo"] = make_homes(tmp / "alone", ("solo",))["solo"]
    homes["stranger"] = make_homes(tmp / "strangers", ("stranger",))["stranger"]
    homes["fresh"] = tmp / "fresh"  # no identity: not even the directory
    homes["empty"] = tmp / "empty"
    homes["empty"].mkdir(mode=0o700)
    homes["not-a-dir"] = tmp / "a-file"
    homes["not-a-dir"].write_text("not a home")
    homes["open-to-all"] = tmp / "open"
    homes["open-to-all"].mkdir()
    homes["open-to-all"].chmod(0o777)
    corrupt = tmp / "corrupt"
    corrupt.mkdir(mode=0o700)
    (corrupt / "covey.db").write_text("garbage, not SQLite")
    (corrupt / "covey.db").chmod(0o600)
    homes["corrupt"] = corrupt

    locked = tmp / "locked"

    async def lock_it() -> None:
        async with Store.open(locked, create=True) as store:
            me = create_identity("locked", NOW, SeededRng("locked"))
            await store.create_identity(me, "right one", SeededRng("ring-locked"), **FAST)

    anyio.run(lock_it)
    homes["locked"] = locked

    files: dict[str, Path] = {}
    note = tmp / "note.txt"
    note.write_text("for the family\n")
    files["note"] = note
    files["dir"] = tmp
    files["missing"] = tmp / "missing.txt"
    files["nowhere"] = tmp / "no" / "such" / "dir" / "out"
    files["out"] = tmp / "never-written"  # (every case fails: nothing is written)
    files["existing"] = tmp / "existing.txt"
    files["existing"].write_text("already here\n")
    outcome = main(["seal", "-g", "family", str(note), "--home", str(homes["laptop"])])
    assert outcome == 0
    files["sealed"] = tmp / "note.txt.covey"
    files.update(sealed_variants(files["sealed"], tmp))

    # house2: the phone is removed (and knows it), the tablet left.
    assert main(["remove", "phone", "-g", "family", "--yes", "--home", str(homes["2-laptop"])]) == 0
    deliver(homes["2-laptop"], homes["2-phone"])
    assert main(["group", "leave", "family", "--yes", "--home", str(homes["2-tablet"])]) == 0
    return Places(homes, files)


#: (case name, home, arguments): `@home` and `%file` are filled in from `places`;
#: a home `$name` is given as $COVEY_HOME instead of --home.
CASES: list[tuple[str, str, list[str]]] = [
    # click: the command line does not parse
    ("no such command", "@fresh", ["nonsense"]),
    ("no such option", "@fresh", ["init", "--bogus"]),
    ("no such group command", "@laptop", ["group", "nonsense"]),
    ("extra argument", "@laptop", ["group", "show", "family", "more"]),
    ("missing option", "@laptop", ["seal", "%note"]),
    ("missing argument", "@laptop", ["group", "create"]),
    ("bad choice", "@laptop", ["invite", "-g", "family", "--role", "root"]),
    ("bad history", "@laptop", ["group", "create", "x", "--history", "sometimes"]),
    ("bad integer", "@laptop", ["up", "--port", "eighty"]),
    ("a directory for a file", "@laptop", ["open", "%dir"]),
    ("option without value", "@fresh", ["init", "--name"]),
    # the home and the store
    ("unknown user's home", "~nosuchuserhere/x", ["id"]),
    ("no identity: id", "@fresh", ["id"]),
    ("no identity: status", "@fresh", ["status"]),
    ("no identity: devices", "@fresh", ["devices"]),
    ("no identity: list", "@fresh", ["group", "list"]),
    ("no identity: create", "@fresh", ["group", "create", "x"]),
    ("no identity: rotate", "@fresh", ["group", "rotate", "x"]),
    ("no identity: seal", "@fresh", ["seal", "-g", "x", "%note"]),
    ("no identity: open", "@fresh", ["open", "%sealed"]),
    ("no identity: invite", "@fresh", ["invite", "-g", "x"]),
    ("no identity: join", "@fresh", ["join", "7-academic-acid", "--address", "127.0.0.1:9"]),
    ("no identity: up", "@fresh", ["up"]),
    ("no identity: passphrase", "@fresh", ["passphrase"]),
    ("empty home: up", "@empty", ["up"]),
    ("empty home: create", "@empty", ["group", "create", "x"]),
    ("home is a file: id", "@not-a-dir", ["id"]),
    ("home is a file: up", "@not-a-dir", ["up"]),
    ("home is a file: create", "@not-a-dir", ["group", "create", "x"]),
    ("$COVEY_HOME is a file: id", "$not-a-dir", ["id"]),
    ("$COVEY_HOME is a file: up", "$not-a-dir", ["up"]),
    ("$COVEY_HOME is a file: create", "$not-a-dir", ["group", "create", "x"]),
    ("$COVEY_HOME is missing: rotate", "$fresh", ["group", "rotate", "x"]),
    ("home open to all", "@open-to-all", ["id"]),
    ("home open to all: up", "@open-to-all", ["up"]),
    ("not a store: id", "@corrupt", ["id"]),
    ("not a store: up", "@corrupt", ["up"]),
    ("not a store: create", "@corrupt", ["group", "create", "x"]),
    # identity and passphrase
    ("identity exists", "@laptop", ["init"]),
    ("replace unconfirmed", "@laptop", ["init", "--force"]),
    ("name with a newline", "@fresh", ["init", "--name", "a\nb"]),
    ("name with an override", "@fresh", ["init", "--name", "evil\u202etxt"]),
    ("name too long", "@fresh", ["init", "--name", "x" * 300]),
    ("locked, no passphrase", "@locked", ["group", "create", "x"]),
    ("locked: up", "@locked", ["up"]),
    ("new passphrase missing", "@laptop", ["passphrase"]),
    # groups
    ("group exists", "@laptop", ["group", "create", "family"]),
    ("bad group name", "@laptop", ["group", "create", "bad\u202ename"]),
    ("show no group", "@laptop", ["group", "show", "nope"]),
    ("rotate no group", "@laptop", ["group", "rotate", "nope"]),
    ("shred unconfirmed", "@laptop", ["group", "shred", "family"]),
    ("shred no group", "@laptop", ["group", "shred", "nope", "--yes"]),
    ("rotate when removed", "@2-phone", ["group", "rotate", "family"]),
    ("seal when removed", "@2-phone", ["seal", "-g", "family", "%note", "-o", "%out"]),
    # managing devices
    ("remove: nothing matches", "@laptop", ["remove", "fridge", "-g", "family", "--yes"]),
    ("remove: prefix too short", "@laptop", ["remove", "cv1-", "-g", "family", "--yes"]),
    ("remove: itself", "@laptop", ["remove", "laptop", "-g", "family", "--yes"]),
    ("remove: unconfirmed", "@laptop", ["remove", "phone", "-g", "family"]),
    ("remove: not an admin", "@phone", ["remove", "tablet", "-g", "family", "--yes"]),
    ("remove: no group", "@laptop", ["remove", "phone", "-g", "nope", "--yes"]),
    ("remove: former member", "@2-laptop", ["remove", "phone", "-g", "family", "--yes"]),
    ("remove: by a removed device", "@2-phone", ["remove", "laptop", "-g", "family"]),
    ("role: last admin", "@laptop", ["group", "role", "laptop", "member", "-g", "family"]),
    ("role: not an admin", "@phone", ["group", "role", "tablet", "admin", "-g", "family"]),
    ("role: bad role", "@laptop", ["group", "role", "phone", "root", "-g", "family"]),
    ("role: same role", "@laptop", ["group", "role", "phone", "member", "-g", "family"]),
    ("leave: last admin", "@laptop", ["group", "leave", "family", "--yes"]),
    ("leave: last member", "@solo", ["group", "leave", "family", "--yes"]),
    ("leave: unconfirmed", "@tablet", ["group", "leave", "family"]),
    ("leave: again", "@2-tablet", ["group", "leave", "family", "--yes"]),
    ("devices: no group", "@laptop", ["devices", "-g", "nope"]),
    # sealing and opening
    ("seal: no group", "@laptop", ["seal", "-g", "nope", "%note"]),
    ("seal: no file", "@laptop", ["seal", "-g", "family", "%missing"]),
    ("seal: output exists", "@laptop", ["seal", "-g", "family", "%note", "-o", "%existing"]),
    ("seal: no such directory", "@laptop", ["seal", "-g", "family", "%note", "-o", "%nowhere"]),
    ("seal: label too long", "@laptop", ["seal", "-g", "family", "%note", "--ad", "a" * 5000]),
    ("open: not sealed", "@laptop", ["open", "%plain"]),
    ("open: no file", "@laptop", ["open", "%missing"]),
    ("open: group not held", "@stranger", ["open", "%sealed", "-o", "%out"]),
    ("open: cut short", "@phone", ["open", "%truncated", "-o", "%out"]),
    ("open: header only", "@phone", ["open", "%head-only", "-o", "%out"]),
    ("open: altered", "@phone", ["open", "%tampered", "-o", "%out"]),
    ("open: bytes after the end", "@phone", ["open", "%trailing", "-o", "%out"]),
    ("open: bad envelope", "@phone", ["open", "%bad-envelope", "-o", "%out"]),
    ("open: output exists", "@phone", ["open", "%sealed", "-o", "%existing"]),
    ("open: no such directory", "@phone", ["open", "%sealed", "-o", "%nowhere"]),
    ("open: this device left", "@2-tablet", ["open", "%sealed", "-o", "%out"]),
    # pairing
    ("invite: bad duration", "@laptop", ["invite", "-g", "family", "--expires", "soon"]),
    ("invite: too short", "@laptop", ["invite", "-g", "family", "--expires", "5s"]),
    ("invite: no group", "@laptop", ["invite", "-g", "nope"]),
    ("invite: not an admin", "@phone", ["invite", "-g", "family"]),
    ("invite: removed", "@2-phone", ["invite", "-g", "family"]),
    ("join: nothing", "@laptop", ["join"]),
    ("join: code and link", "@laptop", ["join", "7-academic-acid", "--link", "covey:join:aa"]),
    ("join: bad code", "@laptop", ["join", "1-x-y"]),
    ("join: code shape", "@laptop", ["join", "velvet"]),
    ("join: bad link", "@laptop", ["join", "--link", "covey:join:zzzz"]),
    ("join: not a link", "@laptop", ["join", "--link", "https://example.org"]),
    ("join: bad address", "@laptop", ["join", "7-academic-acid", "--address", "nowhere"]),
    ("join: bad timeout", "@laptop", ["join", "7-academic-acid", "--timeout", "0"]),
    ("join: no answer", "@laptop", ["join", "1-acid-acid", "--address", "[::1]:9", "--timeout=1"]),
]  # fmt: skip


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
@pytest.mark.parametrize(("name", "home", "args"), CASES, ids=[name for name, _, _ in CASES])
def test_every_error_is_one_plain_line(
    cli: Run, places: Places, name: str, home: str, args: list[str], as_json: bool
) -> None:
    # --home and --json go right after the command's name, so an option
    # left without its value at the end cannot take them for its value.
    where = 2 if args[0] == "group" else 1
    options = ["--json"] if as_json else []
    env = {}
    if home.startswith("$"):
        env["COVEY_HOME"] = places.resolve("@" + home[1:])
    else:
        options += ["--home", places.resolve(home)]
    full = [places.resolve(arg) for arg in [*args[:where], *options, *args[where:]]]
    check(cli(*full, env=env), as_json)
    assert not places.files["out"].exists()


def test_a_file_sealed_for_a_group_not_held_names_no_bytes(cli: Run, places: Places) -> None:
    """The finding itself: the message says what happened, in words."""
    result = cli("open", str(places.files["sealed"]), "--home", str(places.homes["stranger"]))
    message = check(result, False)
    assert "sealed for a group this device does not hold" in message


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_wrong_passphrase_and_locked_store(cli: Run, places: Places, as_json: bool) -> None:
    extra = ["--json"] if as_json else []
    home = str(places.homes["locked"])
    wrong = cli("group", "create", "x", "--home", home, *extra, env={"COVEY_PASSPHRASE": "no"})
    assert "Wrong passphrase" in check(wrong, as_json)
    env = {"COVEY_PASSPHRASE": "no", "COVEY_NEW_PASSPHRASE": ""}
    check(cli("passphrase", "--home", home, *extra, env=env), as_json)


@pytest.mark.parametrize("as_json", [False, True], ids=["human", "json"])
def test_with_the_home_lock_held(cli: Run, places: Places, as_json: bool) -> None:
    """Another process holds the home lock (here: this one, on another descriptor):
    the refusal names it, and says how to stop it (issue 9, 6b)."""
    extra = ["--json"] if as_json else []
    home = str(places.homes["tablet"])
    pid = os.getpid()
    lock = control.HomeLock(places.homes["tablet"])
    assert lock.try_acquire("covey up")
    try:
        second = check(cli("up", "--home", home, *extra), as_json)
        assert f"covey up (process {pid}, since " in second
        assert "already running" in second
        assert f"`kill {pid}`" in second
        # A command that finds no socket to talk to says who holds the store.
        busy = check(cli("group", "rotate", "family", "--home", home, *extra), as_json)
        assert f"covey up (process {pid}, since " in busy
        assert "does not answer" in busy
    finally:
        lock.release()
    assert lock.try_acquire("covey invite")
    try:
        up = check(cli("up", "--home", home, *extra), as_json)
        assert f"covey invite (process {pid}, since " in up
        assert f"`kill {pid}`" in up
        busy = check(cli("group", "rotate", "family", "--home", home, *extra), as_json)
        assert f"covey invite (process {pid}, since " in busy
        assert "wait for it to end" in busy
    finally:
        lock.release()
    assert (places.homes["tablet"] / "node.lock").read_bytes() == b""  # the note is cleared


def test_a_bad_group_name_is_called_a_group_name(cli: Run, places: Places) -> None:
    result = cli("group", "create", "bad\u202ename", "--home", str(places.homes["laptop"]))
    assert check(result, False).startswith("a group name is 1 to 64")
