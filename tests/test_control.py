"""The control socket's request codec: every action round-trips, junk is one typed error."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.core.node import io
from covey.errors import MalformedMessage
from covey.runtime.control import decode_action, encode_action, reply_error

ACTIONS = [
    io.CreateGroup("family", "forward"),
    io.Rotate("family"),
    io.Heal("family"),
    io.RemoveDevice("family", b"\x01" * 32),
    io.ChangeRole("family", b"\x02" * 32, "admin"),
    io.Leave("family"),
    io.Shred("0123456789abcdef"),
    io.Invite("family", "admin", 3600),
    io.Join(code="7-academic-acid", timeout=12.5),
    io.Join(link="covey:join:abc", address=("::1", 4242)),
    io.AddRelay("family", "covey-relay://relay.example:4433/abc#def"),
    io.RemoveRelay("family", b"\x03" * 32),
]


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_round_trip(action: io.Action) -> None:
    assert decode_action(encode_action(action)) == action


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@given(
    name=st.sampled_from(["create", "rotate", "invite", "join", "remove", "role", "leave", ""])
    | JSON,
    fields=st.dictionaries(
        st.sampled_from(
            ["group", "name", "role", "device", "lifetime", "code", "timeout", "address", "z"]
        ),
        JSON,
    ),
)
def test_any_json_request_is_an_action_or_malformed(name: object, fields: dict) -> None:
    line = json.dumps({"action": name, **fields}).encode()
    try:
        action = decode_action(line)
    except MalformedMessage:
        return
    assert decode_action(encode_action(action)) == action  # what decodes, round-trips


@given(st.binary(max_size=200))
def test_any_bytes_are_an_action_or_malformed(line: bytes) -> None:
    try:
        action = decode_action(line)
    except MalformedMessage:
        return
    assert isinstance(action, tuple({type(a) for a in ACTIONS}))


@pytest.mark.parametrize(
    "line",
    [
        b'{"action": []}',
        b"[" * 60_000,
        b'{"action": "join", "code": "1-a-b", "timeout": 1' + b"0" * 400 + b"}",
        b'{"action": "join", "code": "1-a-b", "timeout": NaN}',
        b'{"action": "join", "code": "1-a-b", "address": ["127.0.0.1", 70000]}',
        b'{"action": "rotate", "group": "g", "extra": 1}',
        b'{"action": "role", "group": "g", "device": "00", "role": "root"}',
        b'{"action": "role", "group": "g", "device": "not hex", "role": "admin"}',
    ],
)
def test_what_review_found_is_malformed_not_a_crash(line: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_action(line)


def test_a_failed_reply_raises_its_own_error_type() -> None:
    error = reply_error({"error": "NoSuchGroup", "data": {"message": "there is no group 'x'"}})
    assert type(error).__name__ == "NoSuchGroup"
    assert str(error) == "there is no group 'x'"
    odd = reply_error({"error": "SystemExit", "data": {}})
    assert type(odd).__name__ == "CoveyError"
