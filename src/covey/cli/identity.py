"""`covey init`, `covey id` and `covey passphrase`: this device's identity."""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import (
    ENV_NEW_PASSPHRASE,
    ENV_PASSPHRASE,
    Context,
    ask_passphrase,
    common_options,
    interactive,
    now,
    passphrase_to_set,
    run,
)

if TYPE_CHECKING:
    from covey.core.identity import DeviceRecord

UNPROTECTED_KEYS_NOTE = (
    "No passphrase: this device's private keys are protected only by file permissions "
    "(run `covey passphrase` to set one)."
)


def record_document(record: DeviceRecord) -> dict[str, Any]:
    """The public facts of a device record, as JSON-friendly values."""
    return {
        "device_id": str(record.device_id),
        "name": record.name,
        "safety_words": record.safety_words,
        "keys": {
            "signing": record.signing_key.hex(),
            "box": record.box_key.hex(),
            "channel": record.channel_key.hex(),
        },
        "created": record.created,
    }


def print_record(record: DeviceRecord) -> None:
    rows = (
        ("Device ID", str(record.device_id)),
        ("Name", record.name),
        ("Safety words", " ".join(record.safety_words)),
        ("Signing key", record.signing_key.hex()),
        ("Box key", record.box_key.hex()),
        ("Channel key", record.channel_key.hex()),
    )
    for label, value in rows:
        click.echo(f"{label + ':':<14}{value}")


@click.command()
@click.option("--name", help="What to call this device (default: its host name).")
@click.option(
    "--person",
    help="Whose device this is (a name such as Alice): groups it joins are told,"
    " and an admin there decides.",
)
@click.option("--force", is_flag=True, help="Replace an existing identity (asks first).")
@click.option("--yes", "-y", is_flag=True, help="With --force, do not ask.")
@common_options
def init(ctx: Context, name: str | None, person: str | None, force: bool, yes: bool) -> None:
    """Create this device's identity: its keys and signed device record.

    A passphrase is read from $COVEY_PASSPHRASE or asked for in a terminal;
    an empty one means none.
    """
    from covey.core.identity import create_identity, validate_name
    from covey.entropy import system_rng
    from covey.errors import IdentityExists, InvalidArgument
    from covey.store.home import db_path
    from covey.store.sqlite import Store

    chosen = validate_name(name if name is not None else socket.gethostname() or "device")
    whose = None if person is None else validate_name(person, "a person's name")

    async def has_identity() -> bool:
        if not db_path(ctx.home).exists():
            return False
        async with Store.open(ctx.home) as store:
            return await store.has_identity()

    exists = run(has_identity)
    if exists and not force:
        raise IdentityExists()
    if exists and not yes:
        if not interactive():
            raise InvalidArgument("replacing an identity needs confirmation: add --yes")
        if not click.confirm(
            f"This deletes the identity in {ctx.home} and everything it holds; "
            "its keys cannot be recovered. Continue?",
            err=True,
        ):
            raise InvalidArgument("not confirmed: nothing was changed")
    passphrase = passphrase_to_set(ENV_PASSPHRASE)
    new = create_identity(chosen, now(), system_rng)

    async def save() -> None:
        async with Store.open(ctx.home, create=True) as store:
            await store.create_identity(new, passphrase, system_rng, replace=force, person=whose)

    run(save)
    document = record_document(new.record)
    document.update(home=str(ctx.home), passphrase=bool(passphrase), person=whose)
    if not passphrase:
        document["warning"] = UNPROTECTED_KEYS_NOTE
        ctx.note(UNPROTECTED_KEYS_NOTE)

    def human() -> None:
        whose_ = f", {whose}'s device," if whose else ""
        click.echo(f"Created the identity of {new.record.name!r}{whose_} in {ctx.home}.")
        print_record(new.record)

    ctx.emit(document, human)


@click.command(name="id")
@common_options
def show_id(ctx: Context) -> None:
    """Show this device's ID, safety words and public keys (no passphrase needed)."""
    from covey.store.sqlite import Store

    async def load() -> DeviceRecord:
        async with Store.open(ctx.home) as store:
            return await store.device_record()

    record = run(load)
    ctx.emit(record_document(record), lambda: print_record(record))


@click.command()
@common_options
def passphrase(ctx: Context) -> None:
    """Set, change or remove the passphrase that protects this device's keys.

    The current one is read from $COVEY_PASSPHRASE, the new one from
    $COVEY_NEW_PASSPHRASE; in a terminal covey asks for each.
    """
    from covey.entropy import system_rng
    from covey.store.sqlite import Store

    # Prompts run outside the event loop, so Ctrl-C at one stops at once.
    old = ask_passphrase(ctx)

    async def check() -> None:
        async with Store.open(ctx.home) as store:
            await store.unlock(old)  # a wrong passphrase stops here, before any prompt

    run(check)
    new = passphrase_to_set(ENV_NEW_PASSPHRASE, required=True)

    async def change() -> bool:
        async with Store.open(ctx.home) as store:
            await store.change_passphrase(old, new, system_rng)
            return bool(new)

    has_passphrase = run(change)
    if not has_passphrase:
        ctx.note(UNPROTECTED_KEYS_NOTE)

    def human() -> None:
        click.echo("Passphrase set." if has_passphrase else "Passphrase removed.")

    ctx.emit({"ok": True, "passphrase": has_passphrase}, human)


COMMANDS = (init, show_id, passphrase)
