"""mDNS discovery across real (virtual) hosts: namespaces on a bridge.

A member's advert is found by another member, while a third host that is not
in the group sees the advert and can make nothing of it: no device ID, no
name, a random salt and 120 tags it cannot recognize. The advert is a full
one (a salt and 120 tags in five TXT strings, 995 bytes): it crosses real
multicast whole.
"""

from __future__ import annotations

import json

from covey.core import discovery
from tests.conftest import SeededRng
from tests.net.conftest import needs_namespaces
from tests.net.netns import Lan

pytestmark = needs_namespaces

ADVERTISE = """
import anyio, sys
from covey.net.discovery import Advertiser, open_zeroconf
async def main():
    zc = open_zeroconf()
    advert = Advertiser(zc, 7777, bytes.fromhex(sys.argv[1]))
    await advert.start()
    print("ready", flush=True)
    await anyio.sleep(float(sys.argv[2]))
    await advert.stop()
    await zc.async_close()
anyio.run(main)
"""

BROWSE = """
import anyio, json, sys, time
from covey.net.discovery import Browser, open_zeroconf
async def main():
    zc = open_zeroconf()
    browser = Browser(zc)
    await browser.start()
    wanted = bytes.fromhex(sys.argv[1]) if sys.argv[1] != "-" else None
    start = time.monotonic()
    try:
        seen = await browser.wait_for(
            lambda s: (wanted in s.tags) if wanted else bool(s.tags), float(sys.argv[2]))
        result = {"found": True, "after": time.monotonic() - start, "addresses": seen.addresses,
                  "port": seen.port, "txt": seen.txt.hex(), "name": seen.name}
    except TimeoutError:
        result = {"found": False}
    await browser.stop()
    await zc.async_close()
    print(json.dumps(result), flush=True)
anyio.run(main)
"""


def test_member_finds_advert_and_stranger_learns_nothing(lan: Lan) -> None:
    group_tag, other_tag = "0123456789abcdef", "fedcba9876543210"
    real = [bytes.fromhex(group_tag), bytes.fromhex(other_tag)]
    txt = discovery.padded_advert(real, SeededRng("lan-advert"))
    advertiser = lan.python(0, ADVERTISE, txt.hex(), "8")
    try:
        assert advertiser.stdout.readline().strip() == "ready"
        member = lan.python(1, BROWSE, group_tag, "6")
        stranger = lan.python(2, BROWSE, "-", "6")
        member_out, member_err = member.communicate(timeout=30)
        stranger_out, _ = stranger.communicate(timeout=30)
    finally:
        advertiser.kill()
        advertiser.communicate()
    found = json.loads(member_out.strip().splitlines()[-1])
    assert found["found"], member_err
    assert lan.addresses[0] in found["addresses"]
    assert found["port"] == 7777
    seen = json.loads(stranger_out.strip().splitlines()[-1])
    assert seen["found"]  # the stranger sees an advert ...
    # ... whose name is random and which carries only a salt and opaque tags,
    # exactly as published.
    assert len(seen["name"].split(".")[0]) == 32
    assert bytes.fromhex(seen["txt"]) == txt
    advert = discovery.decode_advert(txt)
    assert len(advert.tags) == discovery.ADVERT_TAGS
    assert {bytes.fromhex(group_tag), bytes.fromhex(other_tag)} <= advert.tags


OWN_ADVERT = """
import anyio, json, sys
from covey.core.node import io
from covey.net.discovery import MdnsLan
async def main():
    lan = MdnsLan()
    events = []
    async def post(event):
        events.append(event)
    async with anyio.create_task_group() as tg:
        await lan.start(post, tg)
        name = sys.argv[1]
        await lan.advertise(name, 7778, bytes.fromhex(sys.argv[2]))
        with anyio.move_on_after(10):
            while not any(isinstance(e, io.AdvertSeen) for e in events):
                await anyio.sleep(0.05)
        await lan.withdraw(name)
        with anyio.move_on_after(10):
            while not any(isinstance(e, io.AdvertLost) for e in events):
                await anyio.sleep(0.05)
        await lan.close()
        tg.cancel_scope.cancel()
    print(json.dumps([[type(e).__name__, e.name] for e in events]), flush=True)
anyio.run(main)
"""


def test_a_node_sees_its_own_advert_under_the_name_it_gave_it(lan: Lan) -> None:
    """The node knows its adverts by the names it chose (`io.Advertise.name`)
    and skips them; mDNS reports `<name>._covey._tcp.local.`, so the Lan must
    hand back the node's name, or the node dials its own advert as a
    stranger's (seen in a manual run: "a connection with <its own address>
    failed")."""
    name = "ab" * 16
    txt = discovery.padded_advert([bytes(8)], SeededRng("own-advert"))
    out, err = lan.python(0, OWN_ADVERT, name, txt.hex()).communicate(timeout=60)
    events = json.loads(out.strip().splitlines()[-1])
    assert ["AdvertSeen", name] in events, (events, err)
    assert ["AdvertLost", name] in events, (events, err)
