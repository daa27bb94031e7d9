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
@click.option(
    "--relay-every",
    type=click.FloatRange(1, 86_400),
    default=60.0,
    show_default=True,
    help="Seconds between checks of this device's inbox at each of its groups' relays.",
)
@common_options
def up(ctx: Context, port: int, relay_every: float) -> None:
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
            return
        line = log_line(event, data)
        if line is not None:
            click.echo(f"{stamp(time.time())} {line}", err=event in ERROR_EVENTS)

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
                    await serve(
                        ctx.home, store, me, data_key, port=port, emit=emit, relay_every=relay_every
                    )
                tg.cancel_scope.cancel()
        emit("stopped", {})

    try:
        run(go)
    finally:
        lock.release()


#: Events whose lines go to stderr.
ERROR_EVENTS: Final = frozenset(
    {"connection_failed", "heal_failed", "internal_error", "claim_pending", "claim_failed"}
)


def stamp(seconds: float) -> str:
    """A log line's local time: `2026-12-03 14:05:12`."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def log_line(event: str, data: dict[str, Any]) -> str | None:
    """`covey up`'s line for a node's event (None: nothing to say to people).

    A sync is logged only when it changed something, and says what: members
    added and removed, roles, a new key, a new history policy, by whom, and
    from which device it came (`covey.core.node.views.changes`).
    """
    if event == "listening":
        return f"covey is up on port {data['port']}; Ctrl-C stops it."
    if event == "synced":
        peer = f"from {data['peer']!r} at {data['address']}"
        if not data.get("finished", True):
            peer += " (the sync broke off after this)"
        return "; ".join(change_line(change) for change in data["changes"]) + f" ({peer})"
    if event == "healed":
        return f"{data['group']}: rotated to a fresh key (a merge left it unhealthy)"
    if event == "heal_failed":
        return f"{data['group']}: could not rotate to a fresh key: {data['reason']}"
    if event == "removed":
        by = f" by {data['by']!r}" if data.get("by") else ""
        return f"this device was removed from group {data['group']!r}{by}: no longer syncing it"
    if event == "left":
        return f"{data['told']!r} heard that this device left {data['group']!r}: deleted here"
    if event == "connection_failed":
        return f"a connection with {data['address']} failed: {data['reason']}"
    if event == "relay_fetched":
        where = f"relay {data['relay']}"
        dropped = (
            f" ({data['dropped']} item(s) that did not open dropped)" if data["dropped"] else ""
        )
        return f"{data['group']}: took {data['ops']} op(s) from {where}{dropped}"
    if event == "relay_delivered":
        where = f"relay {data['relay']}"
        if data["delivered"]:
            return f"{data['group']}: left what {data['to']!r} lacks at {where}"
        return f"{data['group']}: could not leave {data['to']!r} its changes at {where}"
    if event == "internal_error":
        return f"internal error in the node ({data.get('where', '?')}): please report it"
    if event.startswith("claim_"):
        return claim_line(event, data)
    return None


def claim_line(event: str, data: dict[str, Any]) -> str:
    """`covey up`'s line for an admission or a recovery (pending ones loudly, on stderr)."""
    group = data["group"]
    if event == "claim_failed":
        return f"{group}: could not {data['step']} a pending request: {data['reason']}"
    what = (
        f"{data['device']!r} asks to join"
        if data["kind"] == "admit"
        else f"{data['device']!r} asks to RECOVER {data['person']!r} (and replace their devices)"
    )
    if event == "claim_pending":
        hours = data["window_seconds"] / 3600
        veto = (
            f"any device of {data['person']!r} can stop it: `covey recovery veto -g {group}`"
            if data["kind"] == "recover"
            else f"an admin can stop it: `covey recovery veto -g {group}`"
        )
        return (
            f"{group}: PENDING: {what}, approved by {', '.join(data['approved_by']) or 'nobody'}"
            f"{' and paper' if data['paper'] else ''}; it completes after {hours:g} h unless"
            f" vetoed; {veto}. Its safety words: {' '.join(data['safety_words'])}"
        )
    if event == "claim_witness":
        return f"{group}: witnessed that {what} stayed unvetoed for its whole window"
    return f"{group}: completed: {what}; a fresh key leaves out the devices it replaces"


def change_line(change: dict[str, Any]) -> str:
    """One group's changes from one sync, for people: `family: added 'tablet' (by ...)`."""

    def by(entry: dict[str, Any]) -> str:
        return f" (by {entry['by']!r})" if entry.get("by") else ""

    parts = [f"added {e['name']!r}{by(e)}" for e in change["added"]]
    for entry in change["removed"]:
        if entry.get("left"):
            parts.append(f"{entry['name']!r} left")
        else:
            parts.append(f"removed {entry['name']!r}{by(entry)}")
    parts += [f"{e['name']!r} is now {e['role']}{by(e)}" for e in change["roles"]]
    if change["epoch"] is not None:
        epoch = change["epoch"]
        held = "" if epoch.get("held", True) else ", not for this device"
        parts.append(f"new key, epoch {epoch['number']} (by {epoch['by']!r}{held})")
    if change["history"] is not None:
        parts.append(f"history policy now {change['history']}")
    if not parts:
        count = change["ops"]
        parts.append(f"{count} new change{'s' if count != 1 else ''} (members and key as before)")
    return f"{change['group']}: " + ", ".join(parts)


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
    from covey.core.node.relays import VIA_RELAY
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
                    "via": "relay" if address.startswith(VIA_RELAY) else "direct",
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
            how = "through" if peer["via"] == "relay" else "directly at"
            where = peer["address"].removeprefix(VIA_RELAY)
            if peer["via"] == "relay":
                where = f"relay {where}"
            click.echo(f"  {peer['name']:<20} last sync {synced}, {how} {where}")

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
