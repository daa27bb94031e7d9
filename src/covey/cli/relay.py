"""`covey relay serve`: run a relay; `covey relay add / list / remove`: a group's relays.

A group's relays are in its signed log (an admin's `add_relay` and
`remove_relay` ops, PROTOCOL.md sections 6.1 and 18), so its members agree
which relays to use and which key each must prove it holds. `list` reads
the view the store keeps beside the ops (no passphrase); `add` and
`remove` are changes, made by the node like every change
(`covey.cli.common.node_command`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import click

from covey.cli.common import Context, common_options, confirm, node_command, run
from covey.errors import InvalidArgument

if TYPE_CHECKING:  # (imported where used: `covey --help` loads no protocol code)
    from covey.relay.limits import RelayLimits

#: Where a relay keeps its key and store unless told (`--data`).
DEFAULT_DATA: Final = "~/.local/share/covey-relay"


@click.group(name="relay")
def relay_cli() -> None:
    """Run a relay: an untrusted mailbox for devices on different networks."""


def _listen(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidArgument("--listen takes HOST:PORT, such as 0.0.0.0:4433 or [::]:4433")
    return host, int(port)


def _wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


@asynccontextmanager
async def _reachable(opening: Any) -> AsyncIterator[Any]:
    """`opening`, with a database that cannot be reached as one clear line
    (the URL is not repeated: it may hold a password)."""
    try:
        entered = await opening.__aenter__()
    except (OSError, ImportError) as exc:
        raise InvalidArgument(
            "cannot reach the PostgreSQL database named by --db: check the URL and "
            "that the server runs"
        ) from exc
    except Exception as exc:
        if type(exc).__module__.startswith("asyncpg"):
            raise InvalidArgument(
                f"the PostgreSQL database named by --db refused: {type(exc).__name__}"
            ) from exc
        raise
    try:
        yield entered
    except BaseException as exc:
        if not await opening.__aexit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        await opening.__aexit__(None, None, None)


def _store(url: str, limits: RelayLimits) -> Any:
    """What opens the store `url` names (an async context manager factory)."""
    if url.startswith("sqlite:"):
        from covey.relay.sqlite import SqliteRelayStore

        path = Path(url.removeprefix("sqlite:")).expanduser()
        return lambda: SqliteRelayStore.open(path, limits)
    if url.startswith(("postgresql://", "postgres://")):
        try:
            from covey.relay.postgres import PostgresRelayStore
        except ImportError:
            raise InvalidArgument(
                "a PostgreSQL store needs asyncpg: pip install 'covey[postgres]'"
            ) from None
        return lambda: _reachable(PostgresRelayStore.open(url, limits))
    raise InvalidArgument("--db takes sqlite:PATH or postgresql://...")


@relay_cli.command(name="serve")
@click.option("--listen", "listen", required=True, help="HOST:PORT to listen on (port 0: any).")
@click.option(
    "--host",
    "public_host",
    default=None,
    help="The name or address devices reach it by, for its link "
    "(needed when listening on 0.0.0.0 or ::).",
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Where the relay keeps its key and store (default: {DEFAULT_DATA}).",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    help="Its store: sqlite:PATH (default: relay.db in the data directory), or "
    "postgresql://... (a database several relay processes may share).",
)
@click.option(
    "--requests-per-second",
    "rate",
    type=click.IntRange(1, 100_000),
    default=None,
    help="Requests one connection may make per second (default: 50; bursts of twice it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the link as one JSON line.")
def serve(
    listen: str,
    public_host: str | None,
    data: Path | None,
    db_url: str | None,
    rate: int | None,
    as_json: bool,
) -> None:
    """Run a relay until interrupted; print its link (give it to `covey relay add`)."""
    from covey.core.relaylink import RelayLink
    from covey.relay.server import RelayServer, load_or_create_identity

    host, port = _listen(listen)
    if public_host is None and _wildcard(host):
        raise InvalidArgument(
            "listening on every address: say which name devices use with --host NAME"
        )
    from covey.relay.limits import DEFAULT_LIMITS

    data = (data or Path(DEFAULT_DATA)).expanduser()
    limits = DEFAULT_LIMITS
    if rate is not None:
        limits = dataclasses.replace(limits, requests_per_second=rate, request_burst=2 * rate)
    opener = _store(db_url or f"sqlite:{data / 'relay.db'}", limits)
    identity, access = load_or_create_identity(data)

    def started(bound: int) -> None:
        link = RelayLink(public_host or host, bound, identity.public, access)
        if as_json:
            click.echo(json.dumps({"event": "listening", "port": bound, "link": str(link)}))
        else:
            click.echo(f"covey relay listening on {host}:{bound}")
            click.echo(f"Link (give it to the groups that use this relay): {link}")

    def report(event: str, fields: dict[str, Any]) -> None:
        """What went wrong, on stderr (one line; the relay goes on)."""
        if as_json:
            click.echo(json.dumps({"event": event, **fields}), err=True)
        else:
            what = " ".join(f"{k}={v}" for k, v in fields.items())
            click.echo(f"covey relay: {event.replace('_', ' ')} ({what})", err=True)

    async def go() -> None:
        async with opener() as backend:
            server = RelayServer(identity, access, backend, clock=time.time, report=report)
            try:
                await server.serve(host, port, started=started)
            except OSError as exc:
                raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    run(go)  # (until interrupted: every action was its own transaction, nothing to flush)


@relay_cli.command(name="add")
@click.argument("link")
@click.option("--group", "-g", "group_name", required=True, help="The group whose relay it is.")
@common_options
def add(ctx: Context, link: str, group_name: str) -> None:
    """Make the relay at LINK one of a group's relays (an admin's change).

    LINK is what `covey relay serve` printed (covey-relay://HOST:PORT/ACCESS#KEY).
    The group's members then keep an inbox there, and put what a member
    that is away needs (new keys, changes) into it. The same relay with a
    new address moves it. A group has at most 8 relays.
    """
    from covey.cli.members import read_group, told_lines
    from covey.core import relaylink, roster
    from covey.core.node import io
    from covey.core.ops import AddRelay

    parsed = relaylink.parse_link(link)
    log, me = read_group(ctx, group_name)
    relay = AddRelay(parsed.key, parsed.host, parsed.port, parsed.access)
    roster.check_add_relay(log, me, relay)
    document = node_command(
        ctx, io.AddRelay(log.group_id.hex(), link), needs="named", group=log.group_id.hex()
    )

    def human() -> None:
        where = _where(document["relay"])
        click.echo(f"Added relay {where} to {document['name']!r}.")
        for line in told_lines(document, "the relay"):
            click.echo(line)

    ctx.emit(document, human)


@relay_cli.command(name="remove")
@click.argument("relay")
@click.option("--group", "-g", "group_name", required=True, help="The group.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common_options
def remove(ctx: Context, relay: str, group_name: str, yes: bool) -> None:
    """Stop a group's members using RELAY (an admin's change).

    RELAY is the relay's host, HOST:PORT, or the start of its key (4
    characters or more), as `covey relay list` shows it.
    """
    from covey.cli.members import read_group, told_lines
    from covey.core import roster
    from covey.core.node import io

    log, me = read_group(ctx, group_name)
    assert log.state is not None
    key = roster.resolve_relay(log.state, relay)
    roster.check_remove_relay(log, me, key)
    group = log.state.name
    where = f"{log.state.relays[key].host}:{log.state.relays[key].port}"
    confirm(
        yes,
        f"Stop using the relay {where} for {group!r}? Members away from the others then "
        "depend on the group's other relays.",
        f"removing the relay {where} from {group!r}",
    )
    document = node_command(
        ctx, io.RemoveRelay(log.group_id.hex(), key), needs="named", group=log.group_id.hex()
    )

    def human() -> None:
        click.echo(f"Removed relay {_where(document['relay'])} from {group!r}.")
        for line in told_lines(document, "the change"):
            click.echo(line)

    ctx.emit(document, human)


@relay_cli.command(name="list")
@click.option("--group", "-g", "group_name", default=None, help="Only this group's relays.")
@common_options
def list_relays(ctx: Context, group_name: str | None) -> None:
    """List the relays of this device's groups (or of one group)."""
    from covey.store import reader

    if group_name is None:
        from covey.store.sqlite import Store

        async def names() -> list[str]:
            async with Store.open(ctx.home) as store:
                return [group_id.hex() for group_id, _ in await store.list_groups()]

        wanted = run(names)
    else:
        wanted = [group_name]
    groups = []
    for name in wanted:
        group_id, view = reader.group_view(ctx.home, name)
        if view is None or "relays" not in view:  # (none kept yet, or kept by an older covey)
            from covey.store.sqlite import Store

            async def rebuild(group_id: bytes = group_id) -> dict[str, Any]:
                async with Store.open(ctx.home) as store:
                    return await store.rebuild_view(group_id)

            view = run(rebuild)
        groups.append(
            {"name": view["name"], "group_id": view["group_id"], "relays": view["relays"]}
        )
    document = {"groups": groups}

    def human() -> None:
        if not groups:
            click.echo("No groups yet: `covey group create NAME` makes one.")
        for group in groups:
            if not group["relays"]:
                click.echo(f"{group['name']}: no relays (`covey relay add LINK -g NAME` adds one)")
                continue
            click.echo(f"{group['name']}:")
            for relay in group["relays"]:
                inbox = "" if relay["inbox"] else "  (this device has no inbox there yet)"
                if not relay.get("used", True):
                    inbox = "  (not used: the group names more than 8 relays; remove one)"
                click.echo(f"  {_where(relay)}  key {relay['key'][:16]}{inbox}")

    ctx.emit(document, human)


def _where(relay: dict[str, Any]) -> str:
    host = f"[{relay['host']}]" if ":" in relay["host"] else relay["host"]
    return f"{host}:{relay['port']}"


COMMANDS = (relay_cli,)
