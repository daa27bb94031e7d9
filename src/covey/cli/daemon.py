"""`covey up`, `covey status`, `covey devices`: the running node and what it saw."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any, Final

import click

from covey.cli.common import Context, ask_passphrase, common_options, run, unlock
from covey.errors import NodeRunning

#: The exit status after a second signal or a stuck shutdown (as for Ctrl-C).
EXIT_INTERRUPTED: Final = 130


#: Seconds `covey up` may take to stop after SIGINT or SIGTERM, whatever its
#: peers do; past it, the process exits without finishing its cleanup (the
#: store is safe: each change is one SQLite transaction).
SHUTDOWN_LIMIT: Final = 4.5


@click.command()
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: any).")
@common_options
def up(ctx: Context, port: int) -> None:
    """Run this device's node: find group members on the LAN and keep in sync.

    Runs until interrupted (Ctrl-C, SIGTERM), then shuts down within five
    seconds; a second Ctrl-C exits at once. While it runs, other covey
    commands that change this device's groups go through it. With --json,
    prints one JSON object per line as things happen.
    """
    import anyio

    from covey.runtime import control
    from covey.runtime.daemon import serve
    from covey.store.sqlite import Store

    lock = control.HomeLock(ctx.home)
    if not lock.try_acquire():
        raise NodeRunning(
            "covey up is already running for this device: stop it first (Ctrl-C or SIGTERM)"
        )
    passphrase = ask_passphrase(ctx)

    def emit(event: str, data: dict[str, Any]) -> None:
        if ctx.json:
            click.echo(json.dumps({"event": event, "time": time.time(), **data}))
        elif event == "listening":
            click.echo(f"covey is up on port {data['port']}; Ctrl-C stops it.")
        elif event == "synced":
            click.echo(f"synced with {data['peer']!r} at {data['address']}")
        elif event == "healed":
            click.echo(f"rotated {data['group']!r} to a fresh key (a merge left it unhealthy)")
        elif event == "connection_failed":
            click.echo(f"a connection from {data['address']} failed: {data['reason']}", err=True)

    async def go() -> None:
        async with Store.open(ctx.home) as store:
            me, data_key = await unlock(store, passphrase)
            async with anyio.create_task_group() as tg:
                node = anyio.CancelScope()

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            if node.cancel_called:
                                os._exit(EXIT_INTERRUPTED)  # a second signal: at once
                            node.cancel()
                            backstop = threading.Timer(
                                SHUTDOWN_LIMIT, os._exit, args=(EXIT_INTERRUPTED,)
                            )
                            backstop.daemon = True
                            backstop.start()

                tg.start_soon(watch_signals)
                with node:
                    await serve(ctx.home, store, me, data_key, port=port, emit=emit)
                tg.cancel_scope.cancel()
        emit("stopped", {})

    try:
        run(go)
    finally:
        lock.release()


@click.command()
@common_options
def status(ctx: Context) -> None:
    """This device, its groups, and the devices it met on the network."""
    from covey.core.identity import DeviceId
    from covey.store.sqlite import Store

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            record = await store.device_record()
            groups = await store.list_groups()
            peers = await store.peers()
        return {
            "device_id": str(record.device_id),
            "name": record.name,
            "groups": [{"name": name, "group_id": gid.hex()} for gid, name in groups],
            "peers": [
                {
                    "device_id": str(DeviceId(device)),
                    "name": name,
                    "address": address,
                    "last_seen": seen,
                    "last_sync": synced,
                }
                for device, name, address, seen, synced in peers
            ],
        }

    document = run(go)

    def human() -> None:
        click.echo(f"{document['name']}  {document['device_id']}")
        click.echo("Groups: " + (", ".join(g["name"] for g in document["groups"]) or "none"))
        if not document["peers"]:
            click.echo("No devices met yet (is `covey up` running?).")
        for peer in document["peers"]:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(peer["last_sync"] or 0))
            click.echo(f"  {peer['name']:<20} {peer['address']:<16} last sync {when}")

    ctx.emit(document, human)


@click.command()
@click.option("--group", "-g", "group_name", required=True)
@common_options
def devices(ctx: Context, group_name: str) -> None:
    """The members of a group, their safety words, and whether this device met them."""
    from covey.cli.groups import load
    from covey.core.identity import DeviceId
    from covey.store.sqlite import Store

    passphrase = ask_passphrase(ctx)

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            group, _ = await load(store, group_name, passphrase)
            met = {device: (seen, synced) for device, _, _, seen, synced in await store.peers()}
        state = group.state
        me = group.me.device_id.raw
        return {
            "group": state.name,
            "devices": [
                {
                    "device_id": str(DeviceId(device)),
                    "name": member.record.name,
                    "role": member.role,
                    "safety_words": member.record.safety_words,
                    "this_device": device == me,
                    "seen": device == me or device in met,
                    "last_sync": met.get(device, (None, None))[1],
                }
                for device, member in sorted(state.members.items(), key=lambda i: i[1].seniority)
            ],
        }

    document = run(go)

    def human() -> None:
        for device in document["devices"]:
            mark = (
                "this device"
                if device["this_device"]
                else ("seen" if device["seen"] else "not seen")
            )
            click.echo(f"{device['role']:<7} {device['name']:<20} {mark}")
            click.echo(f"        {' '.join(device['safety_words'])}")

    ctx.emit(document, human)


COMMANDS = (up, status, devices)
