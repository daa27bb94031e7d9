"""`covey invite` and `covey join` as separate processes on separate hosts.

Two network namespaces on a bridge: the laptop invites, the phone joins with
the code it printed (found by mDNS), and then opens what the laptop sealed.
A wrong code fails on the first try; a host that answers in the inviter's
place without the code (a man in the middle) gets nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.net.conftest import needs_namespaces
from tests.net.netns import Lan

pytestmark = needs_namespaces

SCRIPT = Path(sys.executable).parent / "covey"
COVEY = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "covey"]


def covey(lan: Lan, host: int, home: Path, *args: str, timeout: float = 60) -> dict:
    process = lan.run(host, [*COVEY, *args, "--json", "--home", str(home)])
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err
    return json.loads(out)


def start_invite(lan: Lan, host: int, home: Path, *extra: str):
    process = lan.run(
        host, [*COVEY, "invite", "-g", "family", "--json", "--home", str(home), *extra]
    )
    first = json.loads(process.stdout.readline())
    assert first["event"] == "invitation"
    return process, first


def test_invite_join_then_open(lan: Lan, tmp_path: Path) -> None:
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    covey(lan, 0, laptop, "init", "--name", "laptop")
    covey(lan, 0, laptop, "group", "create", "family")
    covey(lan, 1, phone, "init", "--name", "phone")
    secret = tmp_path / "wifi.txt"
    secret.write_text("the wifi password is correct-horse")
    covey(lan, 0, laptop, "seal", "-g", "family", str(secret))

    inviter, invitation = start_invite(lan, 0, laptop)
    assert (invitation["group"], invitation["role"]) == ("family", "member")
    assert invitation["link"].startswith("covey:join:")
    try:
        joined = covey(lan, 1, phone, "join", invitation["code"])
        out, err = inviter.communicate(timeout=30)
    finally:
        inviter.kill()
    assert inviter.returncode == 0, err
    served = json.loads(out.strip().splitlines()[-1])
    assert joined["event"] == "joined"
    assert joined["group"] == "family"
    assert joined["inviter"] == "laptop"
    assert served["device"] == "phone"
    assert served["pairing_words"] == joined["pairing_words"]
    assert len(joined["pairing_words"]) == 4
    assert served["remove"].startswith("covey remove cv1-")
    assert joined["shred"] == "covey group shred family --yes"

    opened = covey(lan, 1, phone, "open", str(secret) + ".covey", "-o", str(tmp_path / "got.txt"))
    assert opened["author"]["name"] == "laptop"
    assert (tmp_path / "got.txt").read_text() == secret.read_text()
    shown = covey(lan, 0, laptop, "group", "show", "family")
    assert sorted(m["name"] for m in shown["members"]) == ["laptop", "phone"]


def test_wrong_code_fails_first_try(lan: Lan, tmp_path: Path) -> None:
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    covey(lan, 0, laptop, "init", "--name", "laptop")
    covey(lan, 0, laptop, "group", "create", "family")
    covey(lan, 1, phone, "init", "--name", "phone")
    inviter, invitation = start_invite(lan, 0, laptop)
    try:
        nameplate = invitation["code"].split("-")[0]
        wrong = f"{nameplate}-academic-acid"
        assert wrong != invitation["code"]
        process = lan.run(1, [*COVEY, "join", wrong, "--home", str(phone)])
        _, err = process.communicate(timeout=60)
        assert process.returncode != 0
        assert len(err.strip().splitlines()) == 1
        assert "Traceback" not in err
        failure = json.loads(inviter.stdout.readline())
        assert failure["event"] == "attempt_failed"
        assert failure["attempts_left"] == 2
    finally:
        inviter.kill()
        inviter.communicate()


IMPOSTOR = """
import anyio, json, sys, time
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.node import Node, NodeConfig
from covey.core.node.node import OpenInvitation
from covey.core.pairing import Invitation, Secret
from covey.entropy import system_rng
from covey.net.discovery import Browser, MdnsLan, open_zeroconf
from covey.runtime.driver import Driver

async def main():
    me = create_identity("laptop", 1793491200, system_rng)  # same name, its own key
    group = Group.create(me, "family", "shared", 1793491200, system_rng)
    zc = open_zeroconf()
    browser = Browser(zc)
    await browser.start()
    real = await browser.wait_for(lambda s: bool(s.tags), 10)
    await browser.stop()
    await zc.async_close()
    # A real node whose open invitation has the right number and guessed words.
    node = Node(me, [group], NodeConfig(serve=False))
    guess = Secret(int(sys.argv[1]), sys.argv[1] + "-academic-acid")
    node.invitations[1] = OpenInvitation(Invitation(group.id, "member", guess, 2**40), "x")
    lan = MdnsLan()
    driver = Driver(node, None, b"", system_rng, time.time, lan,
                    lambda event, data: print(json.dumps({"event": event}), flush=True))
    async with anyio.create_task_group() as tg:
        ready = anyio.Event()
        tg.start_soon(driver.run, lambda port: ready.set())
        await ready.wait()
        await lan.advertise("impostor", driver.port, real.txt)  # the real inviter's advert
        print(json.dumps({"event": "ready"}), flush=True)
        await anyio.sleep(float(sys.argv[2]))
        tg.cancel_scope.cancel()
    won = len(group.state.members) > 1
    print(json.dumps({"event": "impostor_won" if won else "impostor_failed"}), flush=True)
anyio.run(main)
"""


def test_an_impostor_copying_the_advert_gets_nothing(lan: Lan, tmp_path: Path) -> None:
    """Host 2 copies the inviter's advert and answers with its own key.

    It guesses the words (it cannot know them): the joiner either reaches the
    real inviter first, or fails against the impostor and then reaches the
    real one; it never joins the impostor's group.
    """
    laptop, phone = tmp_path / "laptop", tmp_path / "phone"
    covey(lan, 0, laptop, "init", "--name", "laptop")
    covey(lan, 0, laptop, "group", "create", "family")
    covey(lan, 1, phone, "init", "--name", "phone")
    inviter, invitation = start_invite(lan, 0, laptop)
    nameplate = invitation["code"].split("-")[0]
    impostor = lan.python(2, IMPOSTOR, nameplate, "20")
    try:
        while json.loads(impostor.stdout.readline())["event"] != "ready":
            pass
        joined = covey(lan, 1, phone, "join", invitation["code"])
        inviter.communicate(timeout=30)
    finally:
        inviter.kill()
        impostor.kill()
        impostor_out, _ = impostor.communicate()
    laptop_group = covey(lan, 0, laptop, "group", "show", "family")
    assert joined["group_id"] == laptop_group["group_id"]
    assert "impostor_won" not in impostor_out


def test_separate_processes_on_loopback(tmp_path: Path) -> None:
    """Invite and join as two processes over 127.0.0.1, inside one namespace.

    (The namespace keeps the inviter's mDNS advert off every real network.)
    """
    alone = Lan(1)
    try:
        laptop, phone = tmp_path / "laptop", tmp_path / "phone"
        covey(alone, 0, laptop, "init", "--name", "laptop")
        covey(alone, 0, laptop, "group", "create", "family")
        covey(alone, 0, phone, "init", "--name", "phone")
        inviter, invitation = start_invite(alone, 0, laptop)
        try:
            joined = covey(
                alone,
                0,
                phone,
                "join",
                invitation["code"],
                "--address",
                f"127.0.0.1:{invitation['port']}",
            )
            inviter.communicate(timeout=30)
        finally:
            inviter.kill()
        assert joined["inviter"] == "laptop"
        shown = covey(alone, 0, phone, "group", "show", "family")
        assert shown["epoch"]["key_held"]
    finally:
        alone.close()
