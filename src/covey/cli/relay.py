"""`covey relay serve`: run a relay (PROTOCOL.md section 18).

(`covey relay add / list / remove`, a group's relays, come with the relay
ops in the log.)
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

from covey.cli.common import run
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
    from covey.relay.link import RelayLink
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

    async def go() -> None:
        async with opener() as backend:
            server = RelayServer(identity, access, backend, clock=time.time)
            try:
                await server.serve(host, port, started=started)
            except OSError as exc:
                raise InvalidArgument(f"cannot listen on {host}:{port}: {exc.strerror}") from None

    run(go)  # (until interrupted: every action was its own transaction, nothing to flush)


COMMANDS = (relay_cli,)
