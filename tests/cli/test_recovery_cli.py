"""`covey recovery setup` and `covey recovery status`, as a user runs them (real processes).

The paper words the command prints are standard SLIP-39: with a holder's
share, opened from its own store, shamir-mnemonic's own `combine_mnemonics`
(not covey's code) gives the secret whose recovery record the log holds.
"""

from __future__ import annotations

from pathlib import Path

import anyio
from shamir_mnemonic import combine_mnemonics

from covey.core import escrow
from covey.store.sqlite import Store
from tests.cli.test_devices_cli import deliver, make_homes, ok, one_line
from tests.cli.test_identity_cli import covey


def test_setup_prints_paper_once_and_status_shows_the_dealing(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop, phone = homes["laptop"], homes["phone"]
    made = ok(
        covey(
            "recovery", "setup", "-g", "family", "--threshold", "2", "--paper", "1",
            "--veto", "2h", "--json", home=laptop,
        )
    )  # fmt: skip
    dealing = made["dealing"]
    assert dealing["threshold"] == 2
    assert dealing["shares"] == 4  # three people (each a device of its own) and one paper
    assert dealing["paper"] == 1
    assert dealing["veto_seconds"] == 7200
    assert dealing["void"] is None
    [paper] = made["paper_shares"]
    assert len(paper["words"]) == 33
    # Status shows the dealing, never a share's words.
    status = ok(covey("recovery", "status", "-g", "family", "--json", home=laptop))
    assert status["dealing"]["id"] == dealing["id"]
    assert not set(paper["words"]) & set(str(status).replace("'", " ").split())
    human = covey("recovery", "status", "-g", "family", home=laptop).stdout
    assert dealing["short_id"] in human
    assert "paper" in human
    # The phone learns of it as of any op, and holds its own share.
    deliver(laptop, phone)
    mine = ok(covey("recovery", "status", "-g", "family", "--json", home=phone))["dealing"]
    assert mine["this_device_holds"] is not None

    async def phones_share() -> str:
        async with Store.open(phone) as store:
            me, data_key = await store.open_identity(None)
            group_id, _ = await store.find_group("family")
            group = await store.load_group(group_id, me, data_key)
        assert group.state.dealing is not None
        return escrow.open_share(group.state, group.state.dealing, me).mnemonic()

    secret = combine_mnemonics([anyio.run(phones_share), " ".join(paper["words"])])

    async def the_deal():
        async with Store.open(phone) as store:
            group_id, _ = await store.find_group("family")
            return (await store.load_log(group_id)).state.dealing.deal

    deal = anyio.run(the_deal)
    rebuilt = escrow.recovery_identity(secret, deal.nonce, deal.record.created)
    assert rebuilt.record.device_id == deal.record.device_id


def test_setup_in_words_says_to_write_the_paper_down(tmp_path: Path) -> None:
    laptop = make_homes(tmp_path)["laptop"]
    said = covey("recovery", "setup", "-g", "family", "-k", "2", "--paper", "1", home=laptop)
    assert said.returncode == 0, said.stderr
    assert "any 2 of 4 shares recover" in said.stdout
    assert "Paper share 4 of dealing D-" in said.stdout
    assert "covey keeps no copy" in said.stdout


def test_recovery_mistakes_are_one_line_and_say_what_to_do(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    line = one_line(covey("recovery", "setup", "-g", "family", "-k", "2", home=homes["phone"]))
    assert "only an admin" in line
    line = one_line(
        covey("recovery", "setup", "-g", "family", "-k", "2", "--paper", "2", home=laptop)
    )
    assert "at most 1 paper" in line
    line = one_line(covey("recovery", "setup", "-g", "family", "-k", "1", home=laptop))
    assert "at least 2" in line
    line = one_line(covey("recovery", "setup", "-g", "family", "-k", "4", home=laptop))
    assert "needs at least 4 shares" in line
    line = one_line(
        covey("recovery", "setup", "-g", "family", "-k", "2", "--veto", "10s", home=laptop)
    )
    assert "a veto window" in line
    line = one_line(
        covey("recovery", "setup", "-g", "family", "-k", "2", "--holder", "nosuch", home=laptop)
    )
    assert "covey devices -g family" in line
    said = covey("recovery", "status", "-g", "family", home=laptop)
    assert said.returncode == 0
    assert "has no recovery shares" in said.stdout


def test_a_holders_removal_makes_status_say_the_dealing_is_void(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    laptop = homes["laptop"]
    ok(covey("recovery", "setup", "-g", "family", "-k", "2", "--json", home=laptop))
    ok(covey("remove", "tablet", "-g", "family", "--yes", "--json", home=laptop))
    status = ok(covey("recovery", "status", "-g", "family", "--json", home=laptop))
    assert status["dealing"]["void"] == "a device holding a share was removed"
    human = covey("recovery", "status", "-g", "family", home=laptop).stdout
    assert "NOT USABLE" in human
