"""`covey invite` and `covey join`: bring a new device into a group on the LAN.

Both run for a while; with `--json` they print one JSON object per line as
things happen (for `invite`: the code and link first, then each failed try,
then the outcome), so a script can read the code before the command ends.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import click

from covey.cli.common import Context, common_options, now, run, unlock

if TYPE_CHECKING:
    from covey.core.group import Group

#: Seconds a joiner looks for the inviter on the LAN.
JOIN_TIMEOUT = 30.0
#: Seconds a joiner whose attempt failed still waits for another matching advert.
RETRY_GRACE = 3.0
DURATION = re.compile(r"^(\d+)([smh]?)$")


def parse_duration(text: str) -> int:
    """Seconds in "90", "90s", "10m" or "1h"."""
    from covey.errors import InvalidArgument

    match = DURATION.match(text.strip().lower())
    if not match:
        raise InvalidArgument("a duration looks like 90s, 10m or 1h")
    value, unit = int(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600}[unit]
    if not 10 <= seconds <= 24 * 3600:
        raise InvalidArgument("an invitation lasts from 10 seconds to 24 hours")
    return seconds


class Events:
    """Progress for people (stderr/stdout lines) or scripts (JSON lines)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def emit(self, event: str, human: str, **data: Any) -> None:
        if self.ctx.json:
            click.echo(json.dumps({"event": event, **data}), nl=True)
        else:
            click.echo(human)


@click.command()
@click.option("--group", "-g", "group_name", required=True, help="The group to invite into.")
@click.option("--role", type=click.Choice(["member", "admin"]), default="member", show_default=True)
@click.option("--expires", default="10m", show_default=True, help="How long the code works.")
@click.option("--port", type=int, default=0, help="TCP port to listen on (default: any).")
@common_options
def invite(ctx: Context, group_name: str, role: str, expires: str, port: int) -> None:
    """Invite a device: print a code (and a QR code), wait for it to join."""
    import anyio

    from covey.core.pairing import Invitation, new_secret
    from covey.entropy import system_rng
    from covey.errors import HandshakeFailed, InvalidInput, NotAllowed
    from covey.net.discovery import Advertiser, open_zeroconf
    from covey.runtime.pairing import welcome
    from covey.store.sqlite import Store

    lifetime = parse_duration(expires)
    events = Events(ctx)

    async def go() -> dict[str, Any]:
        async with Store.open(ctx.home) as store:
            from covey.cli.groups import load

            group, data_key = await load(store, group_name)
            me = group.me
            if group.state.role(me.device_id.raw) != "admin":
                raise NotAllowed("only an admin of the group can invite")
            secret = new_secret(system_rng)
            invitation = Invitation(group.id, role, secret, now() + lifetime)
            listener = await anyio.create_tcp_listener(local_port=port)
            bound = listener.extra(anyio.abc.SocketAttribute.local_port)
            zc = open_zeroconf()
            advert = Advertiser(zc, bound, secret.advert_tags)
            await advert.start()
            events.emit(
                "invitation",
                f"On the new device, run:  covey join {secret.code}",
                code=secret.code,
                link=secret.as_link(),
                expires=invitation.expires,
                port=bound,
            )
            if not ctx.json:
                import io

                import segno

                qr = io.StringIO()
                segno.make(secret.as_link(), error="l").terminal(out=qr, compact=True)
                click.echo("or scan this with covey:")
                click.echo(qr.getvalue())
                click.echo("Waiting for the device to join ...")
            outcome: dict[str, Any] = {}
            lock = anyio.Lock()

            async def persist(g: Group) -> None:
                await store.save_group(g, data_key, system_rng)

            async def serve(stream: Any) -> None:
                async with lock, stream:
                    if outcome:
                        return
                    try:
                        joined = await welcome(
                            stream,
                            me,
                            group,
                            invitation,
                            rng=system_rng,
                            now=now(),
                            persist=persist,
                        )
                    except (HandshakeFailed, InvalidInput, NotAllowed) as exc:
                        events.emit(
                            "attempt_failed",
                            f"A device tried and failed: {exc}",
                            reason=str(exc),
                            attempts_left=invitation.attempts_left,
                        )
                        if invitation.attempts_left <= 0:
                            outcome["error"] = "the invitation was destroyed after 3 wrong codes"
                            tg.cancel_scope.cancel()
                        return
                    outcome["joined"] = joined
                    tg.cancel_scope.cancel()

            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(listener.serve, serve)
                    await anyio.sleep(max(0, invitation.expires - now()))
                    outcome.setdefault("error", "the invitation expired")
                    tg.cancel_scope.cancel()
            finally:
                await advert.stop()
                await zc.async_close()
                await listener.aclose()
            return outcome

    outcome = run(go)
    joined = outcome.get("joined")
    if joined is None:
        from covey.errors import NotAllowed

        raise NotAllowed(outcome.get("error", "nobody joined"))
    events.emit(
        "joined",
        f"{joined.peer_name!r} joined. Safety words (compare if you like): " + " ".join(joined.sas),
        device=joined.peer_name,
        sas=joined.sas,
        group=joined.group.state.name,
    )


@click.command()
@click.argument("code", required=False)
@click.option("--link", help="The link from the inviter's QR code, instead of a code.")
@click.option("--address", help="HOST:PORT of the inviter, instead of looking on the LAN.")
@click.option("--timeout", type=float, default=JOIN_TIMEOUT, show_default=True)
@common_options
def join(
    ctx: Context, code: str | None, link: str | None, address: str | None, timeout: float
) -> None:
    """Join a group with the code (or link) another device shows."""
    import anyio

    from covey.core.pairing import MAX_ATTEMPTS, parse_code, parse_link
    from covey.entropy import system_rng
    from covey.errors import HandshakeFailed, InvalidArgument
    from covey.net.discovery import Browser, open_zeroconf
    from covey.runtime.pairing import join as join_over
    from covey.store.sqlite import Store

    if (code is None) == (link is None):
        raise InvalidArgument("give either a code or --link")
    secret = parse_code(code) if code is not None else parse_link(link or "")
    events = Events(ctx)

    async def attempt(me: Any, host: str, port: int) -> Any:
        with anyio.fail_after(timeout):
            stream = await anyio.connect_tcp(host, port)
        async with stream:
            return await join_over(stream, me, secret, rng=system_rng)

    async def via_lan(me: Any) -> Any:
        """Try each advert with the invitation's tag until one pairs.

        Anyone can copy an advert's tags, so a device that answers first may
        be an impostor: it cannot pass the handshake without the code, and
        the next advert is tried.
        """
        zc = open_zeroconf()
        browser = Browser(zc, keep=lambda s: secret.tag in s.tags)
        tried: set[str] = set()
        attempts = 0
        last: Exception | None = None
        try:
            await browser.start()
            deadline = anyio.current_time() + timeout
            while (left := deadline - anyio.current_time()) > 0:
                try:
                    seen = await browser.wait_for(
                        lambda s: secret.tag in s.tags and s.name not in tried, left
                    )
                except TimeoutError:
                    break
                tried.add(seen.name)
                for host in seen.addresses:
                    try:
                        return await attempt(me, host, seen.port)
                    except (OSError, TimeoutError) as exc:
                        last = exc  # not reached: no guess was made
                    except HandshakeFailed as exc:
                        # Each handshake lets whoever answered test one guess
                        # at the code: stop after as many as an inviter allows.
                        last = exc
                        attempts += 1
                        if attempts >= MAX_ATTEMPTS:
                            raise HandshakeFailed(f"pairing failed: {exc}") from exc
                        break
                # After a failure, wait only briefly for another device to try.
                deadline = min(deadline, anyio.current_time() + RETRY_GRACE)
        finally:
            await browser.stop()
            await zc.async_close()
        if last is not None:
            raise HandshakeFailed(f"pairing failed: {last}")
        raise HandshakeFailed("no inviting device with that code on this network")

    async def go() -> Any:
        async with Store.open(ctx.home) as store:
            me, data_key = await unlock(store)
            if address:
                host, _, port_text = address.rpartition(":")
                if not host or not port_text.isdigit():
                    raise InvalidArgument("an address looks like 192.0.2.7:4242")
                joined = await attempt(me, host.strip("[]"), int(port_text))
            else:
                joined = await via_lan(me)
            await store.create_group(joined.group, data_key, system_rng)
            return joined

    joined = run(go)
    events.emit(
        "joined",
        f"Joined {joined.group.state.name!r} (invited by {joined.peer_name!r}). "
        "Safety words (compare if you like): " + " ".join(joined.sas),
        group=joined.group.state.name,
        group_id=joined.group.id.hex(),
        inviter=joined.peer_name,
        sas=joined.sas,
    )


COMMANDS = (invite, join)
