"""Relay links: what a relay prints is what a device reads; anything else is one clear error."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core.relaylink import RelayLink, parse_link
from covey.errors import InvalidArgument

hosts = st.one_of(
    # (a name's last label never starts with a digit: `ops.valid_relay_host`)
    st.from_regex(
        r"([a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?\.){0,3}[a-z]([a-z0-9-]{0,10}[a-z0-9])?",
        fullmatch=True,
    ),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(str),
)


@given(
    hosts,
    st.integers(1, 65535),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
)
def test_a_link_reads_back_as_written(host: str, port: int, key: bytes, access: bytes) -> None:
    link = RelayLink(host, port, key, access)
    assert parse_link(str(link)) == link


GOOD = str(RelayLink("relay.example", 4433, b"k" * 32, b"a" * 32))


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://relay.example:4433", "starts with covey-relay://"),
        (GOOD.split("#")[0], "has no key"),
        (GOOD[:-1], "key is not 52 characters"),
        (GOOD[:-1] + "1", "key is not base32"),
        (GOOD.replace(":4433", ""), "needs a port"),
        (GOOD.replace(":4433", ":99999"), "needs a port"),
        (GOOD.replace("relay.example", "re lay"), "host is not a name"),
        (GOOD.replace("relay.example", "[not-v6]"), "not IPv6"),
        (GOOD.replace("/" + GOOD.split("/")[3].split("#")[0], ""), "has no access part"),
    ],
)
def test_a_bad_link_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says):
        parse_link(text)
