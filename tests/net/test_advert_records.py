"""Adverts through python-zeroconf's own record code, in process (no network).

Issue 9, finding 5i: `covey up` stopped at start once a device had 15 tags
to advertise, because one TXT string passed DNS's 255 bytes and zeroconf
raised. Here the advert of a device in 50 groups becomes a real
`AsyncServiceInfo`, is written as zeroconf writes an announcement, read
back by zeroconf's parser and cache as a browser reads it, and recognized
by a fellow's node: the TXT record crosses zeroconf byte for byte, within
one mDNS packet.
"""

from __future__ import annotations

import secrets

from hypothesis import given
from hypothesis import strategies as st
from zeroconf import DNSCache, DNSIncoming, DNSOutgoing
from zeroconf.asyncio import AsyncServiceInfo
from zeroconf.const import _FLAGS_AA, _FLAGS_QR_RESPONSE, _MAX_MSG_TYPICAL

from covey.core import discovery
from covey.core.group import Group
from covey.core.identity import create_identity
from covey.core.node import Node, io
from covey.net.discovery import SERVICE, service_info
from tests.conftest import NOW, SeededRng

#: A host with an IPv4 address and four IPv6 ones (global and temporary).
ADDRESSES = ["192.0.2.7", "2001:db8::7", "2001:db8::8", "2001:db8:1::7", "2001:db8:1::8"]


class _Cached:
    """What `AsyncServiceInfo.load_from_cache` reads of a Zeroconf: its cache."""

    def __init__(self, cache: DNSCache) -> None:
        self.cache = cache


def announced(info: AsyncServiceInfo) -> list[bytes]:
    """The packets of zeroconf's announcement of `info` (as registering sends)."""
    out = DNSOutgoing(_FLAGS_QR_RESPONSE | _FLAGS_AA)
    for record in (info.dns_pointer(), info.dns_service(), info.dns_text(), *info.dns_addresses()):
        out.add_answer_at_time(record, 0)
    return out.packets()


def browsed(packets: list[bytes], name: str) -> AsyncServiceInfo:
    """What a browser's `AsyncServiceInfo` holds after reading `packets`."""
    cache = DNSCache()
    for packet in packets:
        incoming = DNSIncoming(packet)
        assert incoming.valid
        cache.async_add_records(incoming.answers())
    info = AsyncServiceInfo(SERVICE, f"{name}.{SERVICE}")
    assert info.load_from_cache(_Cached(cache))  # type: ignore[arg-type]
    return info


def test_a_50_group_advert_crosses_zeroconf_in_one_packet() -> None:
    me = create_identity("laptop", NOW, SeededRng("zc-me"))
    fellows = [create_identity(f"f{i}", NOW, SeededRng(f"zc-f{i}")) for i in range(100)]
    rng = SeededRng("zc-groups")
    groups = []
    for i in range(50):
        group = Group.create(me, f"g{i}", "shared", NOW, rng)
        for fellow in fellows[2 * i : 2 * i + 2]:
            group.add(fellow.record_bytes, "member", NOW, rng)
        groups.append(group)
    (advert,) = [
        e for e in Node(me, groups).handle(io.Tick(), NOW, rng) if isinstance(e, io.Advertise)
    ]
    info = service_info(4242, advert.txt, advert.name, ADDRESSES)  # (raised at 15 tags)
    packets = announced(info)
    assert len(packets) == 1
    assert len(packets[0]) <= _MAX_MSG_TYPICAL
    got = browsed(packets, advert.name)
    assert got.text == advert.txt
    assert got.port == 4242
    # The last fellow (of the 50th group) finds the advertiser from what zeroconf read.
    last = groups[-1]
    node = Node(fellows[-1], [Group.replica(fellows[-1], last.id, [o.raw for o in last.log.order])])
    seen = io.AdvertSeen(advert.name, tuple(got.parsed_addresses()), got.port or 0, got.text)
    effects = node.handle(seen, NOW + 5, SeededRng("zc-look"))
    assert [e.port for e in effects if isinstance(e, io.Dial)] == [4242]


@given(
    salt=st.binary(min_size=discovery.SALT_BYTES, max_size=discovery.SALT_BYTES),
    tags=st.binary(
        min_size=discovery.ADVERT_TAGS * discovery.TAG_BYTES,
        max_size=discovery.ADVERT_TAGS * discovery.TAG_BYTES,
    ),
)
def test_any_advert_round_trips_through_zeroconf(salt: bytes, tags: bytes) -> None:
    split = [tags[i : i + discovery.TAG_BYTES] for i in range(0, len(tags), discovery.TAG_BYTES)]
    txt = discovery.encode_advert(salt, split)
    name = secrets.token_hex(16)
    got = browsed(announced(service_info(9, txt, name, ADDRESSES[:1])), name)
    assert discovery.decode_advert(got.text) == discovery.AdvertText(salt, frozenset(split))
