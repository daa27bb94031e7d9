"""covey: a peer-to-peer key distribution mesh for small groups of devices.

This module stays tiny on purpose: `covey --help` imports it, and its start-up
time is measured (benchmarks/cli_startup.py).
"""

__version__ = "0.1.0"
