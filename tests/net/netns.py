"""Test hosts in Linux network namespaces, joined by veth pairs to a bridge.

`Lan(n)` makes a "switch" namespace holding a bridge and n host namespaces,
each with one veth into the bridge and an address 10.213.<k>.<i>/24 of its
own. Multicast works across the bridge, so mDNS does. Everything is removed
on `close()` (deleting a namespace deletes its links), even after a failure.
Test traffic stays inside these namespaces. Needs root and iproute2.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path


def can_make_namespaces() -> str | None:
    """None if this machine can make test namespaces, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "iproute2's ip command is not installed"
    name = "cvprobe" + secrets.token_hex(3)
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, check=False)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.decode().strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Lan:
    """n hosts on one bridged LAN, each in its own network namespace."""

    def __init__(self, hosts: int) -> None:
        tag = secrets.token_hex(3)
        self.switch = f"cvsw{tag}"
        self.hosts = [f"cvh{tag}{i}" for i in range(hosts)]
        self.subnet = 1 + secrets.randbelow(250)
        self.addresses = [f"10.213.{self.subnet}.{i + 1}" for i in range(hosts)]
        self._made: list[str] = []
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        sw = ["-n", self.switch]
        _ip(*sw, "link", "add", "br0", "type", "bridge")
        _ip(*sw, "link", "set", "br0", "up")
        _ip(*sw, "link", "set", "lo", "up")
        for i, host in enumerate(self.hosts):
            _ip("netns", "add", host)
            self._made.append(host)
            _ip(*sw, "link", "add", f"p{i}", "type", "veth", "peer", "name", "eth0", "netns", host)
            _ip(*sw, "link", "set", f"p{i}", "master", "br0")
            _ip(*sw, "link", "set", f"p{i}", "up")
            h = ["-n", host]
            _ip(*h, "link", "set", "lo", "up")
            _ip(*h, "addr", "add", f"{self.addresses[i]}/24", "dev", "eth0")
            _ip(*h, "link", "set", "eth0", "up")
            _ip(*h, "route", "add", "224.0.0.0/4", "dev", "eth0")

    def run(
        self, host: int, args: list[str], env: dict[str, str] | None = None, **kwargs
    ) -> subprocess.Popen:
        """Start a process on one host (with `env`, else this process's environment)."""
        env = {**(os.environ if env is None else env)}
        env["PYTHONPATH"] = str(Path(__file__).parent.parent.parent)
        return subprocess.Popen(
            ["ip", "netns", "exec", self.hosts[host], *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def python(self, host: int, code: str, *args: str) -> subprocess.Popen:
        return self.run(host, [sys.executable, "-c", code, *args])

    def close(self) -> None:
        for name in reversed(self._made):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)
        self._made.clear()


class Internet(Lan):
    """n hosts, each alone on a network of its own, joined by a router (no multicast).

    Host i is 10.214.<k+i>.2/24 behind the router's 10.214.<k+i>.1; the
    router forwards unicast between them and nothing else, so mDNS never
    leaves a host: devices on two of them find each other only through a
    relay on a third (issue 10's acceptance).
    """

    def _build(self) -> None:
        self.subnet = 1 + secrets.randbelow(200)
        self.addresses = [f"10.214.{self.subnet + i}.2" for i in range(len(self.hosts))]
        _ip("netns", "add", self.switch)
        self._made.append(self.switch)
        router = ["-n", self.switch]
        _ip(*router, "link", "set", "lo", "up")
        subprocess.run(
            ["ip", "netns", "exec", self.switch, "sysctl", "-qw", "net.ipv4.ip_forward=1"],
            check=True,
            capture_output=True,
        )
        for i, host in enumerate(self.hosts):
            _ip("netns", "add", host)
            self._made.append(host)
            _ip(
                *router,
                "link",
                "add",
                f"r{i}",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                host,
            )
            _ip(*router, "addr", "add", f"10.214.{self.subnet + i}.1/24", "dev", f"r{i}")
            _ip(*router, "link", "set", f"r{i}", "up")
            h = ["-n", host]
            _ip(*h, "link", "set", "lo", "up")
            _ip(*h, "addr", "add", f"{self.addresses[i]}/24", "dev", "eth0")
            _ip(*h, "link", "set", "eth0", "up")
            _ip(*h, "route", "add", "default", "via", f"10.214.{self.subnet + i}.1")
