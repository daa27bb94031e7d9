"""Channels over TCP, with anyio: framing, time limits, the handshake.

Every read has a time limit (`READ_TIMEOUT`; the handshake as a whole has
`HANDSHAKE_TIMEOUT`), so a silent or slow peer is dropped. A malformed frame,
a failed handshake or an oversize message raises a `covey.errors` type;
the caller closes that one connection and goes on serving the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import anyio
import anyio.abc

from covey.core import Rng, channel, noise
from covey.core.channel import Deframer, Reassembler, check_peer_record
from covey.core.identity import DeviceRecord, Identity
from covey.errors import HandshakeFailed, PeerRefused

#: Seconds to finish a handshake (three messages: milliseconds on a LAN), and
#: to wait for any single read after it.
HANDSHAKE_TIMEOUT: Final = 5.0
READ_TIMEOUT: Final = 60.0
#: Seconds one whole sync session may take, however lively the peer.
SESSION_TIMEOUT: Final = 300.0
#: Bytes read from the socket at once.
READ_SIZE: Final = 64 * 1024


@dataclass
class Channel:
    """An authenticated, encrypted channel to one peer device."""

    stream: anyio.abc.ByteStream
    transport: noise.Transport
    peer: DeviceRecord
    _deframer: Deframer = field(default_factory=Deframer)
    _queue: list[bytes] = field(default_factory=list)
    _reassembler: Reassembler | None = None

    async def send(self, message: bytes) -> None:
        for piece in channel.fragments(self.transport, message):
            await self.stream.send(piece)

    async def receive(self, timeout: float = READ_TIMEOUT) -> bytes:
        """The next whole message (raises on end of stream, time-out or bad input)."""
        if self._reassembler is None:
            self._reassembler = Reassembler(self.transport)
        while True:
            while self._queue:
                message = self._reassembler.push(self._queue.pop(0))
                if message is not None:
                    return message
            self._queue = await _read_frames(self.stream, self._deframer, timeout)

    async def aclose(self) -> None:
        await self.stream.aclose()


async def _read_frames(
    stream: anyio.abc.ByteStream, deframer: Deframer, timeout: float
) -> list[bytes]:
    while True:
        with anyio.fail_after(timeout):
            data = await stream.receive(READ_SIZE)
        frames = deframer.feed(data)
        if frames:
            return frames


async def handshake(
    stream: anyio.abc.ByteStream,
    me: Identity,
    *,
    initiator: bool,
    rng: Rng,
    knows: Callable[[DeviceRecord], bool],
) -> Channel:
    """Run Noise_XX over `stream` and exchange device records; return the channel.

    `knows(record)` decides whether the authenticated peer may talk to us.
    Neither side shows its record (its name) to a device it does not know:
    the initiator first checks that the responder's proven static key is the
    channel key of a device it knows, then sends its record; the responder
    sends its own only after accepting the initiator's.
    """
    state = noise.Handshake(
        "XX",
        initiator=initiator,
        rng=rng,
        prologue=channel.PROLOGUE,
        static_secret=me.secrets.channel_secret,
    )
    deframer = Deframer()
    pending: list[bytes] = []
    try:
        with anyio.fail_after(HANDSHAKE_TIMEOUT):
            while not state.complete:
                if state.my_turn():
                    if initiator and state.rs is not None and not knows_key(knows, state.rs):
                        # Message 2 proved the responder's key: stop before
                        # message 3 would show ours to a device we do not know.
                        raise PeerRefused("the device that answered is not one this one knows")
                    await stream.send(channel.frame(state.write_message()))
                else:
                    while not pending:
                        pending = deframer.feed(await stream.receive(READ_SIZE))
                    state.read_message(pending.pop(0))
            transport = state.transport
            assert transport is not None
            result = Channel(stream, transport, me.record, deframer, pending)
            if initiator:
                await result.send(me.record_bytes)
            peer = check_peer_record(
                await result.receive(HANDSHAKE_TIMEOUT), transport.remote_static
            )
            if not knows(peer):
                raise PeerRefused("the peer is not a device this one knows")
            if not initiator:
                await result.send(me.record_bytes)
    except TimeoutError as exc:
        raise HandshakeFailed("the peer took too long to set up a channel") from exc
    except (anyio.EndOfStream, anyio.BrokenResourceError) as exc:
        raise HandshakeFailed("the peer closed the connection during the handshake") from exc
    result.peer = peer
    return result


def knows_key(knows: Callable[[DeviceRecord], bool], static: bytes | None) -> bool:
    """Whether `knows` accepts a device whose channel key is `static`.

    `knows` may carry `.channel_keys` (a set of the channel keys it accepts);
    without it the key cannot be checked before the record arrives, and the
    check happens on the record alone.
    """
    keys = getattr(knows, "channel_keys", None)
    return True if keys is None else static in keys
