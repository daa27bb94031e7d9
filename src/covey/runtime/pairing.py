"""Pairing over a byte stream: the async driver of `core.pairing`.

The inviter serves each connection with `welcome`: the pairing handshake,
then (the code being proven) the add op, persisted, then the whole group log
to the joiner as one channel message `{"g": group ID, "o": [op bytes]}`.
The joiner (`join`) checks that what it got is a group it is now a member of,
with keys for it, from the very device that proved the code.

Persist, then send: the inviter commits the add op before the joiner sees
anything of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import anyio
import anyio.abc

from covey.core import Rng, channel, encoding, fields
from covey.core.channel import Deframer, Reassembler
from covey.core.group import Group
from covey.core.identity import Identity
from covey.core.pairing import Invitation, Inviter, Joiner, Secret
from covey.errors import HandshakeFailed, InvalidInput, MalformedMessage
from covey.net.tcp import HANDSHAKE_TIMEOUT, READ_SIZE

#: The welcome message can carry a long log: allow the channel's maximum.
WELCOME_LIMITS: Final = encoding.Limits(
    total=channel.MAX_MESSAGE,
    bin_len=channel.MAX_MESSAGE,
    str_len=64,
    array_len=100_000,
    map_len=8,
    depth=4,
    objects=200_000,
)


@dataclass(frozen=True)
class Joined:
    """What a successful pairing gave each side."""

    group: Group
    sas: list[str]
    peer_name: str


async def _next_frame(
    stream: anyio.abc.ByteStream, deframer: Deframer, queue: list[bytes]
) -> bytes:
    while not queue:
        queue += deframer.feed(await stream.receive(READ_SIZE))
    return queue.pop(0)


async def welcome(
    stream: anyio.abc.ByteStream,
    me: Identity,
    group: Group,
    invitation: Invitation,
    *,
    rng: Rng,
    now: int,
    persist: Callable[[Group], Awaitable[None]],
) -> Joined:
    """Serve one joiner on `stream` (the inviter's side). Raises on any failure."""
    invitation.check_open(now)
    inviter = Inviter(me, invitation, rng)
    deframer, queue = Deframer(), list[bytes]()
    try:
        with anyio.fail_after(HANDSHAKE_TIMEOUT):
            first = await _next_frame(stream, deframer, queue)
            await stream.send(channel.frame(inviter.second(first)))
            record, record_bytes = inviter.finish(await _next_frame(stream, deframer, queue))
    except TimeoutError as exc:
        raise HandshakeFailed("the joining device took too long") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise HandshakeFailed("the joining device went away") from exc
    if record.device_id.raw not in group.state.members:
        group.add(record_bytes, invitation.role, now, rng)  # type: ignore[arg-type]
        await persist(group)
    # (Already a member: an earlier pairing wrote the add but its welcome
    # never arrived. The code proved it again; just send the log.)
    invitation.succeeded()
    message = encoding.encode(
        {"g": group.id, "o": [op.raw for op in group.log.order]}, WELCOME_LIMITS
    )
    for piece in channel.fragments(inviter.transport, message):
        await stream.send(piece)
    return Joined(group, inviter.sas, record.name)


async def join(stream: anyio.abc.ByteStream, me: Identity, secret: Secret, *, rng: Rng) -> Joined:
    """Pair with the inviter on `stream` (the joiner's side); return the group joined."""
    joining = Joiner(me, secret, rng)
    deframer, queue = Deframer(), list[bytes]()
    try:
        with anyio.fail_after(HANDSHAKE_TIMEOUT):
            await stream.send(channel.frame(joining.first()))
            third = joining.third(await _next_frame(stream, deframer, queue))
            await stream.send(channel.frame(third))
            reassembler = Reassembler(joining.transport)
            message = None
            while message is None:
                message = reassembler.push(await _next_frame(stream, deframer, queue))
    except TimeoutError as exc:
        raise HandshakeFailed("the inviting device took too long") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise HandshakeFailed(
            "the inviting device closed the connection: wrong code, or the invitation is over"
        ) from exc
    body = fields.as_map(encoding.decode(message, WELCOME_LIMITS), ("g", "o"), what="welcome")
    group_id = fields.get_bytes(body, "g", size=32)
    ops = body["o"]
    if not isinstance(ops, list) or not all(isinstance(op, bytes) for op in ops):
        raise MalformedMessage("the welcome must list ops")
    group = Group.replica(me, group_id, ops)
    state = group.state
    if me.device_id.raw not in state.members:
        raise InvalidInput("the inviter did not add this device")
    inviter = [m for m in state.members.values() if m.record.channel_key == joining.inviter_key]
    if not inviter:
        raise InvalidInput("the device that proved the code is not a member of that group")
    if state.current_epoch.id not in group.keys:
        raise InvalidInput("the group's current key was not wrapped for this device")
    return Joined(group, joining.sas, inviter[0].record.name)
