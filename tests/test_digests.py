"""The background digest gives exactly the digest of the same bytes in order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from covey.core import crypto
from covey.digests import BackgroundDigest


@given(st.lists(st.binary(max_size=9000), max_size=30))
@settings(max_examples=60)
def test_same_digest_as_hashing_in_order(pieces: list[bytes]) -> None:
    plain = crypto.stream_digest()
    background = BackgroundDigest()
    for piece in pieces:
        plain.update(piece)
        background.update(piece)
    assert background.digest() == plain.digest()
    assert background.digest() == plain.digest()  # asking twice is fine
    background.close()


def test_buffers_given_to_it_may_be_reused() -> None:
    background = BackgroundDigest()
    buffer = bytearray(b"a" * 10_000)
    background.update(buffer)
    buffer[:] = b"b" * 10_000
    expected = crypto.stream_digest()
    expected.update(b"a" * 10_000)
    assert background.digest() == expected.digest()


def test_close_stops_the_worker() -> None:
    background = BackgroundDigest()
    background.update(b"x" * 10_000)
    background.close()
    assert not background._worker.is_alive()
