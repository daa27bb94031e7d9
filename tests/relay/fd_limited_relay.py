"""A relay process (reference store) with few file descriptors, as a relay under
a default `ulimit -n` is to more connections than that (`test_wait_review`).

Run as `python -m tests.relay.fd_limited_relay LIMIT`; prints its port.
"""

import resource
import sys

import anyio

from covey.relay import server
from tests.relay.test_server_silence import ACCESS, IDENTITY, AsyncMemory


async def main(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    relay = server.RelayServer(IDENTITY, ACCESS, AsyncMemory())
    await relay.serve("127.0.0.1", 0, started=lambda port: print(port, flush=True))


if __name__ == "__main__":
    anyio.run(main, int(sys.argv[1]))
