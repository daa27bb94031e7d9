"""`covey up`: this device's node, its driver, mDNS and the control socket.

Everything the node does is decided in `covey.core.node`; this module wires
it to the world (`covey.runtime.driver`) and serves the control socket
through which other covey commands reach it (`covey.runtime.control`). The
caller holds the home lock for the node's whole life.

It runs until cancelled (SIGINT or SIGTERM, see `covey.cli.daemon`), then
withdraws its adverts and closes its connections and the socket within
seconds (`covey.runtime.driver.FLUSH_TIMEOUT`); the store is closed by the
caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from covey import recoverydeal
from covey.core.identity import Identity
from covey.core.node import Node, NodeConfig
from covey.core.node.relays import FETCH_EVERY
from covey.entropy import system_rng
from covey.net.discovery import MdnsLan
from covey.runtime import control
from covey.runtime.driver import Driver, plain_errors
from covey.store.sqlite import Store


async def serve(
    home: Path,
    store: Store,
    me: Identity,
    data_key: bytes,
    *,
    port: int,
    emit: Callable[[str, dict[str, Any]], None],
    relay_every: float = FETCH_EVERY,
) -> None:
    """Run the node with every stored group until cancelled."""
    groups = [
        await store.load_group(group_id, me, data_key) for group_id, _ in await store.list_groups()
    ]
    driver = Driver(
        Node(
            me,
            groups,
            NodeConfig(
                serve=True,
                relay_every=relay_every,
                person=await store.person(),
                dealer=recoverydeal.deal,
            ),
        ),
        store,
        data_key,
        system_rng,
        time.time,
        MdnsLan(),
        emit,
        port=port,
    )
    with plain_errors():
        await _run(home, driver)


async def _run(home: Path, driver: Driver) -> None:
    async with anyio.create_task_group() as tg:
        listener = await control.serve(home, driver, tg)
        try:
            await driver.run()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                await listener.aclose()
            control.remove_socket(home)
