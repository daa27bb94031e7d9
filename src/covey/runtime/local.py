"""One command on a node of the command's own, when no `covey up` runs.

A command that changes state (`group create`, `rotate`, `invite`, `join`,
...) runs through a `Node` either way: through the running node's control
socket (`covey.runtime.control`), or, when none runs, through a node built
here on the store, driven by a `Driver` until the command's final reply.
The caller holds the home lock meanwhile, so this node is the store's one
writer. It does not sync (`NodeConfig(serve=False)`): it only pairs, when
the command is `invite` or `join`, with a listener and mDNS for those.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final, Literal

import anyio

from covey import recoverydeal
from covey.core.group import Group
from covey.core.node import Node, NodeConfig, io
from covey.entropy import system_rng
from covey.net.discovery import MdnsLan
from covey.runtime.driver import Driver, Lan, NoLan, plain_errors
from covey.store.sqlite import Store

#: Seconds a command's node may take after its final reply to finish what it
#: says at a relay (a welcome put at a rendezvous), and how often it looks.
SETTLE_TIMEOUT: Final = 10.0
SETTLE_POLL: Final = 0.05

#: Which stored groups the command's node needs: none (create), the one it
#: names (rotate, invite, ...), or all (join: it may already hold the group).
Needs = Literal["none", "named", "all"]


async def run_command(
    home: Path,
    passphrase: str | None,
    action: io.Action,
    *,
    needs: Needs,
    group: str | None = None,
    network: bool = False,
    listen: bool = False,
    port: int = 0,
    on_reply: Callable[[io.Reply, int], None] = lambda reply, port: None,
) -> io.Reply:
    """Run `action` to its final reply; `on_reply(reply, port)` sees every reply."""
    async with Store.open(home) as store:
        me, data_key = await store.open_identity(passphrase)
        groups: list[Group] = []
        if needs == "named" and group is not None:
            group_id, _ = await store.find_group(group)
            groups.append(await store.load_group(group_id, me, data_key))
        elif needs == "all":
            for group_id, _ in await store.list_groups():
                groups.append(await store.load_group(group_id, me, data_key))
        lan: Lan = MdnsLan() if network else NoLan()
        driver = Driver(
            Node(
                me,
                groups,
                NodeConfig(serve=False, person=await store.person(), dealer=recoverydeal.deal),
            ),
            store,
            data_key,
            system_rng,
            time.time,
            lan,
            port=port if listen else None,
        )
        with plain_errors():
            final = await _drive(driver, action, on_reply)
        assert final is not None
        return final


async def _drive(
    driver: Driver, action: io.Action, on_reply: Callable[[io.Reply, int], None]
) -> io.Reply | None:
    final = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(driver.run)
        async with driver.request(action) as replies:
            async for reply in replies:
                on_reply(reply, driver.port or 0)
                if reply.final:
                    final = reply
                    break
        await _settle(driver)
        tg.cancel_scope.cancel()
    return final


async def _settle(driver: Driver) -> None:
    """Let the node say what it still has to say at a relay (`Node.saying`: the
    welcome of an invitation that was just used), for SETTLE_TIMEOUT at most."""
    with anyio.move_on_after(SETTLE_TIMEOUT):
        while True:
            with driver.lock:
                saying = driver.node.saying
            if not saying:
                return
            await anyio.sleep(SETTLE_POLL)
