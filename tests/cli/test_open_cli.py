"""`covey open` says who sealed a file and where that device stands (issue 9, 5g).

Data from a device that was removed still opens (it held the key it sealed
under; covey cannot tell when it sealed), and the note says exactly what
happened to it: removed by whom and when. Data from a device that was never
a member (its add was vetoed when the logs merged) is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from covey.store.sqlite import Store
from tests.cli.test_devices_cli import deliver, make_homes, ok, one_line
from tests.cli.test_identity_cli import covey
from tests.conftest import SeededRng
from tests.harness import World
from tests.net.loopback import FAST


def test_a_removed_authors_file_opens_and_says_who_removed_it_and_when(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    note = tmp_path / "note.txt"
    note.write_text("from the phone, while a member\n")
    ok(covey("seal", "-g", "family", str(note), "--json", home=homes["phone"]))
    ok(covey("remove", "phone", "-g", "family", "--yes", "--json", home=homes["laptop"]))
    deliver(homes["laptop"], homes["tablet"])
    opened = covey("open", f"{note}.covey", "-o", str(tmp_path / "a"), home=homes["tablet"])
    assert opened.returncode == 0, opened.stderr
    assert "Note: sealed by 'phone', removed from 'family' by 'laptop' at " in opened.stderr
    assert "(by the remover's clock)" in opened.stderr
    assert "cannot tell whether it sealed this before or after" in opened.stderr
    document = ok(
        covey("open", f"{note}.covey", "-o", str(tmp_path / "b"), "--json", home=homes["tablet"])
    )
    author = document["author"]
    assert author["name"] == "phone"
    assert author["member"] is False
    assert author["standing"] == "removed"
    assert author["removed_by"]["name"] == "laptop"
    assert isinstance(author["removed_at"], int)
    # From a member, no note at all.
    other = tmp_path / "other.txt"
    other.write_text("from the laptop\n")
    ok(covey("seal", "-g", "family", str(other), "--json", home=homes["laptop"]))
    current = covey("open", f"{other}.covey", "-o", str(tmp_path / "c"), home=homes["tablet"])
    assert current.returncode == 0, current.stderr
    assert current.stderr == ""


def test_a_file_from_a_device_never_admitted_is_refused(tmp_path: Path) -> None:
    A, B, C, D = 0, 1, 2, 3
    world = World(4, seed="cli-vetoed")
    world.act(A, "add_admin", B)
    world.act(A, "add", C)
    for device in (B, C):
        world.sync(A, device)
    world.act(A, "remove", B)
    world.act(B, "add", D)  # apart: A's removal of B vetoes it
    world.sync(B, D)
    from covey.core.seal import seal_bytes

    sealed = tmp_path / "from-d.covey"
    sealed.write_bytes(seal_bytes(world.replicas[D], b"let me in", b"", SeededRng("d")))
    world.converge()
    home = tmp_path / "c"

    async def make() -> None:
        async with Store.open(home, create=True) as store:
            await store.create_identity(world.identities[C], None, SeededRng("ring"), **FAST)
            _, data_key = await store.open_identity(None)
            await store.create_group(world.replicas[C], data_key, SeededRng("store"))

    anyio.run(make)
    out = tmp_path / "opened"
    refused = one_line(covey("open", str(sealed), "-o", str(out), home=home))
    assert "sealed by 'device-3', which was never a member of 'family'" in refused
    assert "its addition by 'device-1' was undone" in refused
    assert not out.exists()
    as_json = covey("open", str(sealed), "-o", str(out), "--json", home=home)
    assert json.loads(as_json.stdout)["error"]["code"] == "never_a_member"


def test_open_to_standard_output_writes_only_what_checked(tmp_path: Path) -> None:
    homes = make_homes(tmp_path, ("laptop", "phone"))
    note = tmp_path / "note.txt"
    note.write_text("to the pipe\n" * 1000)
    ok(covey("seal", "-g", "family", str(note), "--json", home=homes["laptop"]))
    opened = covey("open", f"{note}.covey", "-o", "-", home=homes["phone"])
    assert opened.returncode == 0, opened.stderr
    assert opened.stdout == note.read_text()
    assert "Opened " in opened.stderr
    assert not (Path.cwd() / "-").exists()
    # A damaged file: not a byte on stdout (the check comes at the end), one error line.
    damaged = tmp_path / "damaged.covey"
    data = bytearray((tmp_path / "note.txt.covey").read_bytes())
    data[-40] ^= 1
    damaged.write_bytes(bytes(data))
    refused = covey("open", str(damaged), "-o", "-", home=homes["phone"])
    assert refused.stdout == ""
    one_line(refused)
    assert "--json" in one_line(
        covey("open", f"{note}.covey", "-o", "-", "--json", home=homes["phone"])
    )
