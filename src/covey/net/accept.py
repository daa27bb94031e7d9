"""Accepting TCP connections so that a flood cannot stop the process.

`accepted(listener, on_error)` yields each accepted connection as an anyio
stream. Running out of file descriptors (EMFILE, ENFILE: a flood of
connections, or simply many) or any other accept error is reported and
pauses accepting for `ACCEPT_PAUSE` seconds, instead of ending the serving
task group and the process with it (a review found a stranger stopping a
relay by opening connections). Used by the device's driver and the relay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import anyio
import anyio.abc

#: Seconds accepting pauses after an accept failed.
ACCEPT_PAUSE: Final = 0.5


async def accepted(
    listener: Any, on_error: Callable[[OSError], None]
) -> AsyncIterator[anyio.abc.SocketStream]:
    """Each connection `listener` (one socket listener) accepts, until cancelled."""
    raw = listener.extra(anyio.abc.SocketAttribute.raw_socket)
    while True:
        # Wait, then accept by hand: asyncio's own accept, cancelled at
        # shutdown while a connection arrives, raises InvalidStateError in a
        # loop callback and leaks that connection (CPython 3.11). Waiting
        # loses nothing when cancelled, and an accepted socket is closed if
        # the wrapping is.
        await anyio.wait_readable(raw)
        try:
            sock, _ = raw.accept()
        except (BlockingIOError, InterruptedError):
            continue
        except OSError as exc:
            on_error(exc)
            await anyio.sleep(ACCEPT_PAUSE)
            continue
        try:
            sock.setblocking(False)
            stream = await anyio.abc.SocketStream.from_socket(sock)
        except BaseException:
            sock.close()
            raise
        yield stream
