"""The nemesis: faults of the network between our hosts, switched on and off on a schedule.

Partitions are directed cuts "packets from A to B are lost", made in the bridge's namespace, on
the bridge port toward B: an htb root whose default class passes everything, a second class whose
queue holds nothing (pfifo limit 0, so whatever is sent to it is dropped), and one u32 filter per
cut source sending the packets of that source to it. So a cut is silent, as a real partition is:
the sender's kernel is not told (no route error, no ICMP), its SYNs and its segments simply never
arrive; only IP is cut (ARP still passes, as a switch that drops IP would). The hosts' own stacks
are untouched. From cuts: `full` (both ways between two sides), `one_way` (from one side to the
other only) and `bridge` (two sides cut from each other, a third host reaching both). A host can
also be `isolated` (its bridge port down: no frame in or out). Bandwidth is limited with tbf:
toward the host under the port's default class, and from the host at the root of its own veth.

Delay, jitter, loss, duplication and reordering need sch_netem, and this kernel has none ("Specified
qdisc kind is unknown"; no modprobe here), nor tc actions (act_gact: `action drop` fails), which is
why cuts go through a queue of length 0. `netem_probe()` tries a netem qdisc once, on a host's
loopback, and says what the kernel answered; the Nemesis records that in its history, so a kernel
that has netem shows it and those faults can be added as one more tbf-like leaf under the port's
default class.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopctl.chaos.net import Host, Network, ip, tc

Cut = tuple[str, str]  # (from host, to host): packets from the first to the second are lost
PASS_CLASS, DROP_CLASS = "1:1", "1:2"
# htb wants a rate; far above what two processes on one machine exchange, so it never shapes.
UNSHAPED = "10gbit"
QUANTUM = "1514"  # one full frame per round (htb's default from rate / r2q is huge at 10gbit and warns)
# A tbf burst below one frame plus headers passes nothing; latency bounds its queue.
TBF_BURST = "32kbit"
TBF_LATENCY = "400ms"


def full(a: Iterable[str], b: Iterable[str]) -> frozenset[Cut]:
    """Neither side reaches the other."""
    a, b = list(a), list(b)
    return frozenset({(x, y) for x in a for y in b} | {(y, x) for x in a for y in b})


def one_way(source: Iterable[str], target: Iterable[str]) -> frozenset[Cut]:
    """Packets from `source` to `target` are lost; the other way they arrive (replies included)."""
    target = list(target)
    return frozenset((x, y) for x in source for y in target)


def bridge(a: Iterable[str], b: Iterable[str], via: str) -> frozenset[Cut]:
    """`a` and `b` cut from each other; `via`, in neither, reaches and is reached by both."""
    a, b = list(a), list(b)
    if via in a or via in b:
        raise ValueError(f"the bridge host {via} must be on neither side")
    return full(a, b)


def netem_probe(host: Host) -> str:
    """Try a netem qdisc once on a host's loopback: 'available', or what the kernel said."""
    done = tc(host.ns, "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", check=False)
    if done.returncode == 0:
        tc(host.ns, "qdisc", "del", "dev", "lo", "root", check=False)
        return "available"
    return f"unavailable: {done.stderr.strip() or done.returncode}"


@dataclass(frozen=True)
class Fault:
    """Something the nemesis switches on and then off again; `kind` is what the run counts."""

    kind: str
    detail: str
    on: Callable[[], None]
    off: Callable[[], None]


@dataclass
class Nemesis:
    net: Network
    record: Callable[[str], None] = lambda kind: None  # the run's fault counter (Run.fault)
    history: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self._cut: set[Cut] = set()
        for host in self.net.hosts.values():
            self._prepare(host)
        self.netem = netem_probe(next(iter(self.net.hosts.values())))
        self.note("netem", self.netem)

    def _prepare(self, host: Host) -> None:
        ns, port = self.net.bridge_ns, host.port
        tc(ns, "qdisc", "replace", "dev", port, "root", "handle", "1:", "htb", "default", "1")
        for klass in (PASS_CLASS, DROP_CLASS):
            tc(ns, "class", "add", "dev", port, "parent", "1:", "classid", klass, "htb", "rate", UNSHAPED,
               "quantum", QUANTUM)
        tc(ns, "qdisc", "add", "dev", port, "parent", DROP_CLASS, "handle", "20:", "pfifo", "limit", "0")

    def note(self, event: str, detail: str) -> None:
        self.history.append({"at_s": round(time.monotonic() - self.started, 3), "event": event, "detail": detail})

    # --- partitions --------------------------------------------------------------------------

    def _filter_prio(self, source: str) -> str:
        return str(1 + list(self.net.hosts).index(source))  # one filter per source on each port

    def cut(self, cuts: Iterable[Cut]) -> None:
        for source, target in sorted(set(cuts) - self._cut):
            src, dst = self.net[source], self.net[target]
            tc(self.net.bridge_ns, "filter", "add", "dev", dst.port, "parent", "1:", "protocol", "ip",
               "prio", self._filter_prio(source), "u32", "match", "ip", "src", f"{src.address}/32",
               "flowid", DROP_CLASS)
            self._cut.add((source, target))

    def heal(self, cuts: Iterable[Cut] | None = None) -> None:
        """Undo these cuts (every cut when None)."""
        for source, target in sorted(set(self._cut if cuts is None else cuts) & self._cut):
            tc(self.net.bridge_ns, "filter", "del", "dev", self.net[target].port, "parent", "1:",
               "protocol", "ip", "prio", self._filter_prio(source), "u32")
            self._cut.discard((source, target))

    def partition(self, cuts: frozenset[Cut], kind: str = "partition") -> Fault:
        detail = ", ".join(f"{a}->{b}" for a, b in sorted(cuts))
        return Fault(kind, detail, lambda: self.cut(cuts), lambda: self.heal(cuts))

    def isolation(self, name: str) -> Fault:
        """The host's bridge port down: nothing in or out, every peer waits."""
        port = self.net[name].port
        return Fault("isolate", name, lambda: self._link(port, "down"), lambda: self._link(port, "up"))

    def _link(self, port: str, state: str) -> None:
        ip("-n", self.net.bridge_ns, "link", "set", port, state)

    # --- bandwidth ---------------------------------------------------------------------------

    def bandwidth(self, name: str, rate: str) -> Fault:
        """The host's link limited to `rate` (tc units: 1mbit, 200kbit) each way, by tbf."""
        host = self.net[name]
        return Fault("bandwidth", f"{name} {rate}", lambda: self._limit(host, rate), lambda: self._unlimit(host))

    def _limit(self, host: Host, rate: str) -> None:
        tbf = ["tbf", "rate", rate, "burst", TBF_BURST, "latency", TBF_LATENCY]
        tc(self.net.bridge_ns, "qdisc", "replace", "dev", host.port, "parent", PASS_CLASS, "handle", "10:", *tbf)
        tc(host.ns, "qdisc", "replace", "dev", "eth0", "root", *tbf)

    def _unlimit(self, host: Host) -> None:
        tc(self.net.bridge_ns, "qdisc", "del", "dev", host.port, "parent", PASS_CLASS, "handle", "10:", check=False)
        tc(host.ns, "qdisc", "del", "dev", "eth0", "root", check=False)

    # --- the schedule ------------------------------------------------------------------------

    def switch(self, fault: Fault, on: bool) -> None:
        (fault.on if on else fault.off)()
        self.note(f"{fault.kind} {'on' if on else 'off'}", fault.detail)
        if on:
            self.record(fault.kind)

    async def hold(self, fault: Fault, seconds: float) -> None:
        """On for `seconds`, then off, whatever happens meanwhile (cancellation included)."""
        await asyncio.to_thread(self.switch, fault, True)
        try:
            await asyncio.sleep(seconds)
        finally:
            await asyncio.to_thread(self.switch, fault, False)

    async def run(self, schedule: Sequence[tuple[float, float, Fault]]) -> None:
        """Each (start s, duration s, fault) of the schedule, timed from now; bounded by its last end."""
        t0 = time.monotonic()

        async def one(start: float, seconds: float, fault: Fault) -> None:
            await asyncio.sleep(max(0.0, t0 + start - time.monotonic()))
            await self.hold(fault, seconds)

        await asyncio.gather(*(one(*step) for step in schedule))
