"""`covey up`, `covey status`, `covey devices`: the running node and what it saw."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import click

from covey.cli.common import Context, common_options, now, run, unlock


@click.command()
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: any).")
@common_options
def up(ctx: Context, port: int) -> None:
    """Run this device's node: find group members on the LAN and keep in sync.

    Runs until interrupted (Ctrl-C, SIGTERM), then shuts down cleanly. With
    --json, prints one JSON object per line as things happen.
    """
    import anyio

    from covey.entropy import system_rng
    from covey.runtime.daemon import Daemon
    from covey.store.sqlite import Store

    def emit(event: str, data: dict[str, Any]) -> None:
        if ctx.json:
            click.echo(json.dumps({"event": event, "time": time.time(), **data}))
        elif event == "listening":
            click.echo(f"covey is up on port {data['port']}; Ctrl-C stops it.")
        elif event == "synced":
            click.echo(f"synced with {data['peer']!r} at {data['address']}")
        elif event == "connection_failed":
            click.echo(f"a connection from {data['address']} failed: {data['reason']}", err=True)

    async def go() -> None:
        async with Store.open(ctx.home) as store:
            me, data_key = await unlock(store)
            daemon = Daemon(store, me, data_key, system_rng, now, emit, port)
            async with anyio.create_task_group() as tg:

                async def watch_signals() -> None:
                    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                        async for _ in signals:
                            tg.cancel_scope.cancel()
                            return

                tg.start_soon(watch_signals)
                tg.start_soon(daemon.run)
        emit("stopped", {})

    run(go)


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

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            group, _ = await load(store, group_name)
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
