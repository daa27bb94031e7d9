"""The operating system's random source, for the edges to pass to the core.

The core never draws randomness itself (it takes an `rng` argument), so that
tests and the simulator can make it deterministic. Everything that runs for
real passes `system_rng`, which reads getrandom(2) through `os.urandom`: the
same kernel CSPRNG libsodium's `randombytes_buf` uses on Linux.
"""

import os

system_rng = os.urandom
