"""PROTOCOL.md stays true to the code it describes."""

from __future__ import annotations

from pathlib import Path

from covey.core import crypto
from covey.core.membership import rules_table

PROTOCOL = (Path(__file__).parent.parent / "PROTOCOL.md").read_text()


def test_rule_table_in_protocol_matches_the_code() -> None:
    assert rules_table() in PROTOCOL


def test_every_domain_string_is_documented() -> None:
    for domain in (*crypto.HashDomain, *crypto.SignDomain):
        assert f"`{domain.value.decode()}`" in PROTOCOL, domain
