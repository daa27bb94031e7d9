"""`covey put` and `covey get`: a sealed file through a group's relay.

For members that are offline now: one puts a sealed file on the group's
relay and sends the reference it prints (a chat, a mail: the reference
opens nothing by itself); the others get the file when they come back, and
open it as any sealed file. Neither command changes the group, so neither
goes through the node: they read the store (as `covey seal` does) and
talk to the relay themselves (`covey.relayfiles`).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING

import click

from covey.cli.common import Context, ask_passphrase, common_options, run, unlock

if TYPE_CHECKING:
    from covey.core.blobs import Head
    from covey.relayfiles import Put

DAY = 86_400


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--days",
    type=click.IntRange(1, 30),
    default=None,
    help="How long the relay keeps it (default: the relay's, 14 days; 30 at most).",
)
@common_options
def put(ctx: Context, file: Path, days: int | None) -> None:
    """Put sealed FILE on its group's relay, for members that are offline now.

    Prints a reference (covey:blob:...) to send them any way you like: it
    says where the file is and opens nothing by itself. They run
    `covey get REFERENCE`, then `covey open`.
    """
    from covey.entropy import system_rng
    from covey.errors import NoSuchGroup
    from covey.relayfiles import put_file, sealed_for
    from covey.store.sqlite import Store

    group_id, epoch = sealed_for(file)
    passphrase = ask_passphrase(ctx)

    async def go() -> Put:
        async with Store.open(ctx.home) as store:
            if group_id not in {g for g, _ in await store.list_groups()}:
                raise NoSuchGroup(
                    f"{file} was sealed for a group this device does not hold: only its"
                    " members can put it"
                )
            me, data_key = await unlock(store, passphrase)
            group = await store.load_group(group_id, me, data_key)
        ttl = 0 if days is None else days * DAY
        return await put_file(group, epoch, file, ttl, system_rng, lambda: None)

    done = run(go)
    where = f"{done.relay.host}:{done.relay.port}"
    name = done.group.state.name
    kept = f"{done.ttl / DAY:g} days" if done.ttl >= DAY else f"{done.ttl} seconds"
    ctx.emit(
        {
            "ok": True,
            "ref": str(done.ref),
            "relay": where,
            "group": name,
            "file": str(file),
            "ttl": done.ttl,
        },
        lambda: click.echo(
            f"Put {file} on the relay {where} for {name!r} (kept {kept}).\n"
            "Send this to the others; they run:\n"
            f"  covey get {done.ref}"
        ),
    )


@click.command()
@click.argument("reference")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (default: the file's name, in this folder).",
)
@click.option("--force", is_flag=True, help="Overwrite the output if it exists.")
@common_options
def get(ctx: Context, reference: str, output: Path | None, force: bool) -> None:
    """Get a sealed file a member put on a relay (REFERENCE: what `covey put` printed)."""
    from covey.core.blobs import BlobRef
    from covey.entropy import system_rng
    from covey.relayfiles import get_file
    from covey.store.sqlite import Store

    ref = BlobRef.parse(reference)
    passphrase = ask_passphrase(ctx)

    async def go() -> tuple[Path, Head]:
        async with Store.open(ctx.home) as store:
            me, data_key = await unlock(store, passphrase)
            groups = [
                await store.load_group(group_id, me, data_key)
                for group_id, _ in await store.list_groups()
            ]
        return await get_file(groups, ref, output, force, system_rng, lambda n, total: None)

    destination, head = run(go)
    ctx.emit(
        {"ok": True, "output": str(destination), "size": head.size},
        lambda: click.echo(
            f"Got {destination} ({_size(head.size)})."
            f" Open it with: covey open {shlex.quote(str(destination))}"
        ),
    )


COMMANDS = (put, get)
