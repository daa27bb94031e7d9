"""PROTOCOL.md stays true to the code it describes."""

from __future__ import annotations

from pathlib import Path

from covey.core import crypto, discovery
from covey.core.membership import rules_table

PROTOCOL = (Path(__file__).parent.parent / "PROTOCOL.md").read_text()


def test_rule_table_in_protocol_matches_the_code() -> None:
    assert rules_table() in PROTOCOL


def test_every_domain_string_is_documented() -> None:
    for domain in (*crypto.HashDomain, *crypto.SignDomain):
        assert f"`{domain.value.decode()}`" in PROTOCOL, domain


def test_the_advert_format_in_protocol_matches_the_code() -> None:
    text = " ".join(PROTOCOL.split())  # (whatever the line breaks)
    assert f"a TXT record of exactly {discovery.TXT_BYTES} bytes" in text
    assert f"exactly **{discovery.ADVERT_TAGS} tags**" in text
    assert f"each {discovery.TAGS_PER_STRING} tags of {discovery.TAG_BYTES} bytes" in text
    assert f"a {discovery.SALT_BYTES}-byte random **salt**" in text


def test_the_merge_limits_in_protocol_match_the_code() -> None:
    from covey.core import log

    text = " ".join(PROTOCOL.split())
    assert f"`CHECKPOINT_EVERY` = {log.CHECKPOINT_EVERY} positions" in text
    assert f"`MAX_PENDING_OPS` ({log.MAX_PENDING_OPS:,})" in text
    assert f"`MAX_PENDING_PER_SENDER` ({log.MAX_PENDING_PER_SENDER:,})" in text
    assert f"`MAX_OPS_AFTER_REMOVAL` ({log.MAX_OPS_AFTER_REMOVAL})" in text
