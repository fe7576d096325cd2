"""Hosts of our own: network namespaces joined by veth pairs to a bridge that lives in a namespace too.

`with Network(["redis", "order", ...]) as net:` makes one namespace for the bridge and one per
host, each host with an address from 198.51.100.0/24 (TEST-NET-2, RFC 5737), loopback up and no
default route: a host reaches the other hosts of its network and nothing else. Every link,
address and route is made inside those namespaces (`ip -n <ns> ...`, the veth created in the host
with its peer sent straight into the bridge's namespace); the machine's own namespace is never
touched. A process runs on a host through `host.command(argv)` (`ip netns exec <ns> argv...`).

Names carry the owning process: `shopnet-<pid>-<n>-br` and `shopnet-<pid>-<n>-<host>`. Removing a
namespace removes its ends of the veth pairs and so the pairs, so deleting our namespaces leaves
nothing in `ip link` either. A run that was SIGKILLed cannot delete them; the next Network does,
at its start: every `shopnet-<pid>-...` whose pid no longer lives is deleted, after the processes
still inside it (ours: started in our namespace) are killed, and so is its scratch directory.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PREFIX = "shopnet"
SUBNET = "198.51.100"  # TEST-NET-2 (RFC 5737): never routed on the Internet
PREFIX_LEN = 24
FIRST_HOST = 2  # .1 is left to the gateway a real network would have (we have none)
MAX_HOSTS = 250
BRIDGE = "br0"
HOST_IF = "eth0"
# `ip` answers at once; longer means the kernel or iproute2 is stuck.
IP_TIMEOUT_S = 10.0
_OURS = re.compile(rf"^{PREFIX}-(\d+)-\d+-[a-z0-9-]+$")
_sequence = itertools.count()


class NetworkUnavailable(RuntimeError):
    """This machine cannot make our hosts (no iproute2, not root, no netns support); says why."""


def ip_binary() -> str:
    found = shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip") if os.access(p, os.X_OK)), None)
    if found is None:
        raise NetworkUnavailable("the chaos network needs iproute2's `ip` (Debian: apt-get install iproute2)")
    return found


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`ip args...`; a failure raises NetworkUnavailable with iproute2's own words."""
    done = subprocess.run([ip_binary(), *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if check and done.returncode != 0:
        raise NetworkUnavailable(f"`ip {' '.join(args)}` failed ({done.returncode}): {done.stderr.strip()}"
                                 f"{'' if os.geteuid() == 0 else ' (network namespaces need root)'}")
    return done


def tc(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`tc -n ns args...`: traffic control inside one of our namespaces, never the machine's."""
    binary = shutil.which("tc") or "/usr/sbin/tc"
    done = subprocess.run([binary, "-n", ns, *args], capture_output=True, text=True, timeout=IP_TIMEOUT_S)
    if check and done.returncode != 0:
        raise NetworkUnavailable(f"`tc -n {ns} {' '.join(args)}` failed: {done.stderr.strip()}")
    return done


def namespaces() -> list[str]:
    """Every network namespace `ip netns` knows (its lines read `name` or `name (id: N)`)."""
    return [line.split()[0] for line in ip("netns", "list").stdout.splitlines() if line.strip()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove(ns: str) -> None:
    """Kill what still runs inside one of our namespaces, then delete it."""
    for pid in ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    ip("netns", "delete", ns, check=False)


def leftovers() -> list[str]:
    """Our namespaces whose owning process is gone (a run that was killed)."""
    return [ns for ns in namespaces() if (m := _OURS.match(ns)) and not _alive(int(m[1]))]


def scratch_dir() -> Path:
    """A private directory for a run's sockets, named like its namespaces (removed with them if it dies)."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}-{os.getpid()}-"))  # short: socket paths are 107 bytes at most


def clean_leftovers() -> list[str]:
    """Delete the namespaces (and scratch directories) of dead runs; returns the namespaces' names."""
    found = leftovers()
    for ns in found:
        remove(ns)
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}-*"):
        if (m := re.match(rf"{PREFIX}-(\d+)-", path.name)) and not _alive(int(m[1])):
            shutil.rmtree(path, ignore_errors=True)
    return found


@dataclass(frozen=True)
class Host:
    name: str
    ns: str
    address: str
    port: str  # its veth end in the bridge's namespace (where the nemesis cuts and limits)

    def command(self, argv: Sequence[str]) -> list[str]:
        """argv run on this host (`ip` exec's it in place: the pid is the program's own)."""
        return [ip_binary(), "netns", "exec", self.ns, *argv]


class Network:
    """A bridge and N hosts, each in a namespace of its own; all removed on exit."""

    def __init__(self, names: Sequence[str]) -> None:
        if len(set(names)) != len(names) or not 0 < len(names) <= MAX_HOSTS:
            raise ValueError(f"host names must be distinct, 1 to {MAX_HOSTS}: {list(names)}")
        if bad := [n for n in names if not re.fullmatch(r"[a-z0-9-]+", n)]:
            raise ValueError(f"host names are [a-z0-9-]: {bad}")
        self.id = f"{PREFIX}-{os.getpid()}-{next(_sequence)}"
        self.bridge_ns = f"{self.id}-br"
        self.hosts = {name: Host(name, f"{self.id}-{name}", f"{SUBNET}.{FIRST_HOST + i}", f"v{i}")
                      for i, name in enumerate(names)}
        self.cleaned: list[str] = []  # leftovers of dead runs removed at our start

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> Network:
        self.cleaned = clean_leftovers()
        try:
            self._create()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _create(self) -> None:
        ip("netns", "add", self.bridge_ns)
        ip("-n", self.bridge_ns, "link", "add", BRIDGE, "type", "bridge")
        ip("-n", self.bridge_ns, "link", "set", BRIDGE, "up")
        for host in self.hosts.values():
            ip("netns", "add", host.ns)
            ip("-n", host.ns, "link", "add", HOST_IF, "type", "veth", "peer", "name", host.port,
               "netns", self.bridge_ns)
            ip("-n", self.bridge_ns, "link", "set", host.port, "master", BRIDGE, "up")
            ip("-n", host.ns, "addr", "add", f"{host.address}/{PREFIX_LEN}", "dev", HOST_IF)
            ip("-n", host.ns, "link", "set", "lo", "up")
            ip("-n", host.ns, "link", "set", HOST_IF, "up")

    def names(self) -> list[str]:
        return [self.bridge_ns, *(host.ns for host in self.hosts.values())]

    def close(self) -> None:
        """Delete our namespaces (the hosts first: their processes are killed, then the bridge)."""
        existing = set(namespaces())
        for ns in reversed(self.names()):
            if ns in existing:
                remove(ns)
