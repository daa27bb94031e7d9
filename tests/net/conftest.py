"""Fixtures for the network tests: a LAN of namespaced hosts, an anyio backend."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.net.netns import Lan, can_make_namespaces

#: Why namespaced hosts cannot be made here (None if they can).
NAMESPACES_MISSING = can_make_namespaces()
needs_namespaces = pytest.mark.skipif(
    NAMESPACES_MISSING is not None, reason=NAMESPACES_MISSING or ""
)


@pytest.fixture
def lan() -> Iterator[Lan]:
    """Three hosts on one bridged LAN, torn down even when the test fails."""
    network = Lan(3)
    try:
        yield network
    finally:
        network.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
