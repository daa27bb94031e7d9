"""`covey relay add / list / remove`, as a user runs them, on homes with one group.

The relay is named by a link only (nothing is dialed here): what these
commands change is the group's signed state, which the members then share.
"""

from __future__ import annotations

from pathlib import Path

from covey.core.relaylink import RelayLink, encode_key
from tests.cli.test_devices_cli import deliver, make_homes, ok, one_line
from tests.cli.test_identity_cli import covey

LINK = RelayLink("relay.example.org", 4433, b"k" * 32, b"a" * 32)
OTHER = RelayLink("fd00::7", 4434, b"o" * 32, b"b" * 32)


def relays(home: Path) -> list[dict]:
    shown = ok(covey("relay", "list", "-g", "family", "--json", home=home))
    return shown["groups"][0]["relays"]


def test_an_admin_adds_lists_and_removes_relays(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop, phone = homes["laptop"], homes["phone"]
    assert relays(laptop) == []
    added = ok(covey("relay", "add", str(LINK), "-g", "family", "--json", home=laptop))
    assert added["relay"] == {"key": encode_key(LINK.key), "host": LINK.host, "port": 4433}
    human = covey("relay", "add", str(OTHER), "-g", "family", home=laptop)
    assert human.returncode == 0, human.stderr
    assert "Added relay [fd00::7]:4434 to 'family'." in human.stdout
    shown = relays(laptop)
    assert {(r["host"], r["port"]) for r in shown} == {(LINK.host, 4433), (OTHER.host, 4434)}
    assert [r["host"] for r in shown] == [LINK.host, OTHER.host]  # (by key: b"k..." < b"o...")
    # The admin's node announced its own inbox at each (a set_inbox op).
    assert all(r["inbox"] for r in shown)
    # The access secret is never shown, in JSON or for people.
    listing = covey("relay", "list", home=laptop)
    assert listing.returncode == 0, listing.stderr
    assert encode_key(LINK.access) not in listing.stdout + str(shown)
    assert "relay.example.org:4433" in listing.stdout

    # The phone learns them when it syncs; it has no inbox there until its node runs.
    deliver(laptop, phone)
    theirs = relays(phone)
    assert {r["host"] for r in theirs} == {LINK.host, OTHER.host}
    assert not any(r["inbox"] for r in theirs)

    removed = ok(
        covey(
            "relay", "remove", "relay.example.org", "-g", "family", "--yes", "--json", home=laptop
        )
    )
    assert removed["relay"]["host"] == LINK.host
    assert [r["host"] for r in relays(laptop)] == [OTHER.host]
    # By the start of its key, too.
    start = encode_key(OTHER.key)[:6]
    ok(covey("relay", "remove", start, "-g", "family", "--yes", "--json", home=laptop))
    assert relays(laptop) == []


def test_relay_mistakes_are_one_line_each(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop, phone = homes["laptop"], homes["phone"]
    assert "starts with covey-relay://" in one_line(
        covey("relay", "add", "https://relay.example", "-g", "family", home=laptop)
    )
    cut = str(LINK)[:-5]
    assert "52 characters" in one_line(covey("relay", "add", cut, "-g", "family", home=laptop))
    assert "only an admin" in one_line(covey("relay", "add", str(LINK), "-g", "family", home=phone))
    ok(covey("relay", "add", str(LINK), "-g", "family", "--json", home=laptop))
    assert "already" in one_line(covey("relay", "add", str(LINK), "-g", "family", home=laptop))
    assert "covey relay list" in one_line(
        covey("relay", "remove", "nowhere.example", "-g", "family", "--yes", home=laptop)
    )
    assert "--yes" in one_line(
        covey("relay", "remove", LINK.host, "-g", "family", home=laptop)
    )  # (no terminal to ask in)
    one_line(covey("relay", "list", "-g", "nope", home=laptop))
