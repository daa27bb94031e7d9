"""`covey up` and `covey status`: the running node and what it saw.

(`covey devices` lives with the commands that manage devices, `covey.cli.members`.)
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any, Final

import click

from covey.cli.common import Context, ask_passphrase, common_options, run, unlock, when

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
    if not lock.try_acquire("covey up"):
        raise lock.refuse_node()  # (which process runs, and how to stop or reach it)
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
        elif event == "removed":
            by = f" by {data['by']!r}" if data.get("by") else ""
            click.echo(
                f"this device was removed from group {data['group']!r}{by}: no longer syncing it"
            )
        elif event == "left":
            click.echo(
                f"{data['told']!r} heard that this device left {data['group']!r}:"
                " the group is deleted here"
            )
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
    """This device, where it stands in each group, and the devices it met on the network.

    A group this device was removed from says so (by whom, and when by the
    remover's clock): it is no longer synced. One it left is listed until a
    member has heard of the leave. Reads the store: no passphrase.
    """
    from covey.core import roster
    from covey.core.identity import DeviceId
    from covey.store.sqlite import Store

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            record = await store.device_record()
            me = record.device_id.raw
            groups = []
            for group_id, name in await store.list_groups():
                described = roster.describe_devices(await store.load_log(group_id), me, {})
                groups.append(
                    {
                        "name": name,
                        "group_id": group_id.hex(),
                        "standing": described["standing"],
                        "removed_by": described["removed_by"],
                        "removed_at": described["removed_at"],
                    }
                )
            peers = await store.peers()
        return {
            "device_id": str(record.device_id),
            "name": record.name,
            "groups": groups,
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
        if not document["groups"]:
            click.echo("Groups: none")
        else:
            click.echo("Groups:")
        for group in document["groups"]:
            click.echo(f"  {group['name']:<20} {standing_line(group)}")
        if not document["peers"]:
            click.echo("No devices met yet (is `covey up` running?).")
        for peer in document["peers"]:
            synced = when(peer["last_sync"])
            click.echo(f"  {peer['name']:<20} {peer['address']:<16} last sync {synced}")

    ctx.emit(document, human)


def standing_line(group: dict[str, Any]) -> str:
    """Where this device stands in a group, in words (`covey status`)."""
    from covey.core.roster import command_arg

    name = group["name"]
    if group["standing"] == "member":
        return "member"
    if group["standing"] == "leaving":
        return "left; waiting until a member hears of it (while `covey up` runs)"
    by = group["removed_by"]
    shred = f"`covey group shred {command_arg(name)}` deletes it here"
    if by is None:
        return f"no longer a member of group {name!r}; not synced ({shred})"
    return (
        f"removed from group {name!r} by {by['name']!r} at {when(group['removed_at'])}"
        f" (by its clock); not synced any more ({shred})"
    )


COMMANDS = (up, status)
