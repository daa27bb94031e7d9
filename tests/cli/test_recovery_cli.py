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
    shown = " ".join(str(status).replace("'", " ").split())
    words = paper["words"]  # (any three in a row: single words such as "family" are common)
    assert not any(" ".join(words[i : i + 3]) in shown for i in range(len(words) - 2))
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


def claim_in_stores(homes: dict[str, Path]) -> str:
    """A dealing, two approvals and an admission claim, written through the stores:
    (what a running household's nodes would have written); the claim's ID."""
    from covey.core.identity import create_identity
    from covey.core.ops import request_id
    from covey.sim.dealing import seeded_dealer
    from tests.conftest import NOW, SeededRng

    new = create_identity("new-phone", NOW, SeededRng("cli-new"))
    claimed = {}

    async def go() -> None:
        order = ("laptop", "phone", "tablet")
        loaded = {}
        for name in order:
            async with Store.open(homes[name]) as store:
                me, key = await store.open_identity(None)
                gid, _ = await store.find_group("family")
                loaded[name] = (await store.load_group(gid, me, key), key)
        laptop = loaded["laptop"][0]
        planned = escrow.plan(laptop.state, 2, 1, 3600)
        dealt = seeded_dealer(SeededRng("cli-deal"))(2, planned.count)
        body, _ = escrow.deal_body(laptop.id, dealt, planned, NOW + 5, SeededRng("s"))
        laptop.deal(body, NOW + 5)
        request = request_id(new.record_bytes, "admit", None)
        groups = [loaded[n][0] for n in order]
        for g in groups[1:]:
            for op in laptop.log.order:
                g.receive(op.raw)
        a = groups[1].approve(request, "admit", None, NOW + 6)
        groups[2].receive(a.raw)
        b = groups[2].approve(request, "admit", None, NOW + 7)
        claimed["id"] = groups[2].claim_admission(new.record_bytes, [a.id, b.id], NOW + 8).id
        for g in groups:
            for op in groups[2].log.order:
                g.receive(op.raw)
        for name, g in zip(order, groups, strict=True):
            async with Store.open(homes[name]) as store:
                await store.save_group(g, loaded[name][1], SeededRng("save"))

    anyio.run(go)
    return claimed["id"].hex()


def test_status_shows_a_pending_request_and_an_admin_vetoes_it(tmp_path: Path) -> None:
    homes = make_homes(tmp_path)
    claim = claim_in_stores(homes)
    status = ok(covey("recovery", "status", "-g", "family", "--json", home=homes["laptop"]))
    [request] = status["requests"]
    assert request["claim"] == claim
    assert request["status"] == "pending"
    assert sorted(request["approved_by"]) == ["phone", "tablet"]  # (by approval ID)
    assert request["this_device_may_veto"]
    human = covey("recovery", "status", "-g", "family", home=homes["laptop"]).stdout
    assert "PENDING" in human
    assert "'new-phone' to join" in human
    assert "covey recovery veto" in human
    line = one_line(covey("recovery", "veto", "-g", "family", "--yes", home=homes["phone"]))
    assert "nothing pending" in line
    line = one_line(covey("recovery", "veto", "-g", "family", home=homes["laptop"]))
    assert "add --yes" in line
    vetoed = ok(covey("recovery", "veto", "-g", "family", "--yes", "--json", home=homes["laptop"]))
    assert vetoed["vetoed"]["status"] == "vetoed"
    status = ok(covey("recovery", "status", "-g", "family", "--json", home=homes["laptop"]))
    assert status["requests"][0]["status"] == "vetoed"
    line = one_line(covey("recovery", "veto", "-g", "family", "--yes", home=homes["laptop"]))
    assert "nothing pending" in line
