"""The chaos suite's hosts (shopctl.chaos.net) and its nemesis (shopctl.chaos.nemesis), for real:
namespaces, veth pairs and a bridge, TCP between two hosts, cuts that stop it and heals that bring
it back, and a run SIGKILLed halfway that leaves nothing after the next start. Needs root and
iproute2 (CI runs as root): without them these fail, saying so; they do not skip."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopctl.chaos import net
from shopctl.chaos.nemesis import Nemesis, bridge, full, one_way
from shopctl.chaos.net import Network

PORT = 7000
# On one machine a connection between two hosts is made in well under a millisecond; a cut one
# never is (its SYNs are dropped): 0.5 s tells them apart.
CONNECT_TIMEOUT_S = 0.5
# The child that builds a network and is SIGKILLed in the middle: it says when its hosts exist.
KILLED_CHILD = """
import sys, time
from shopctl.chaos.net import Network, scratch_dir
net = Network(["a", "b"]).__enter__()
print(net.id, scratch_dir(), flush=True)
time.sleep(60)
"""
CHILD_READY_S = 20.0
# A host's listener lives at most this long, whatever becomes of the test.
LISTENER_LIFE_S = 20


def _listener(host: net.Host) -> subprocess.Popen[bytes]:
    code = (f"import socket,time;s=socket.create_server(({host.address!r},{PORT}));t=time.time()+{LISTENER_LIFE_S}\n"
            "s.settimeout(0.2)\nwhile time.time()<t:\n try: s.accept()[0].close()\n except OSError: pass")
    return subprocess.Popen(host.command([sys.executable, "-c", code]))


def _connects(source: net.Host, target: net.Host) -> bool:
    """One real TCP connect from `source` to `target`'s listener, made inside `source`."""
    code = (f"import socket,sys\ntry: socket.create_connection(({target.address!r},{PORT}),{CONNECT_TIMEOUT_S})\n"
            "except OSError: sys.exit(1)")
    return subprocess.run(source.command([sys.executable, "-c", code]), timeout=10).returncode == 0


def _ours_in_ip_link() -> list[str]:
    return [line for line in subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout.splitlines()
            if net.PREFIX in line]


@pytest.fixture
def hosts() -> Iterator[tuple[Network, Nemesis]]:
    try:
        network = Network(["a", "b", "c"]).__enter__()
    except net.NetworkUnavailable as exc:
        pytest.fail(f"cannot make the chaos network here (needs root and iproute2): {exc}")
    listeners = [_listener(host) for host in network.hosts.values()]
    try:
        deadline = time.monotonic() + 5
        while not _connects(network["a"], network["b"]) and time.monotonic() < deadline:
            time.sleep(0.05)  # the listeners are starting
        yield network, Nemesis(network)
    finally:
        for listener in listeners:
            listener.kill()
            listener.wait()
        network.close()


def test_hosts_have_documentation_addresses_and_no_route_out(hosts: tuple[Network, Nemesis]) -> None:
    network, _ = hosts
    for host in network.hosts.values():
        assert host.address.startswith("198.51.100.")
        routes = net.ip("-n", host.ns, "route", "show").stdout
        assert "default" not in routes, routes
    assert set(network.names()) <= set(net.namespaces())


def test_a_full_partition_cuts_tcp_both_ways_and_the_heal_restores_it(hosts: tuple[Network, Nemesis]) -> None:
    network, nemesis = hosts
    a, b, c = network["a"], network["b"], network["c"]
    assert _connects(a, b) and _connects(b, a)
    nemesis.switch(nemesis.partition(full(["a"], ["b"])), True)
    assert not _connects(a, b) and not _connects(b, a)
    assert _connects(a, c) and _connects(c, b)
    nemesis.heal()
    assert _connects(a, b) and _connects(b, a)
    assert [e["event"] for e in nemesis.history] == ["netem", "partition on"]


def test_a_one_way_cut_loses_only_that_direction(hosts: tuple[Network, Nemesis]) -> None:
    """a -> b lost: a cannot connect to b (its SYN is dropped), and b cannot connect to a
    either, since a's SYN-ACK is lost on the way back; a's own packets to c still go."""
    network, nemesis = hosts
    nemesis.cut(one_way(["a"], ["b"]))
    assert not _connects(network["a"], network["b"])
    assert not _connects(network["b"], network["a"])
    assert _connects(network["c"], network["a"])
    nemesis.heal()
    assert _connects(network["a"], network["b"])


def test_a_bridge_partition_keeps_the_bridge_host_reachable_from_both_sides(hosts: tuple[Network, Nemesis]) -> None:
    network, nemesis = hosts
    nemesis.cut(bridge(["a"], ["b"], via="c"))
    assert not _connects(network["a"], network["b"])
    assert _connects(network["a"], network["c"]) and _connects(network["b"], network["c"])
    nemesis.heal()


def test_an_isolated_host_reaches_no_one_until_its_link_is_up(hosts: tuple[Network, Nemesis]) -> None:
    network, nemesis = hosts
    isolation = nemesis.isolation("a")
    nemesis.switch(isolation, True)
    assert not _connects(network["b"], network["a"])
    nemesis.switch(isolation, False)
    assert _connects(network["b"], network["a"])


def test_a_bandwidth_limit_is_set_and_lifted_with_tbf(hosts: tuple[Network, Nemesis]) -> None:
    network, nemesis = hosts
    limit = nemesis.bandwidth("a", "1mbit")
    nemesis.switch(limit, True)
    assert "tbf" in net.tc(network.bridge_ns, "qdisc", "show", "dev", network["a"].port).stdout
    assert _connects(network["b"], network["a"])  # slow, not cut
    nemesis.switch(limit, False)
    assert "tbf" not in net.tc(network.bridge_ns, "qdisc", "show", "dev", network["a"].port).stdout


def test_the_netem_probe_says_what_the_kernel_answered(hosts: tuple[Network, Nemesis]) -> None:
    _, nemesis = hosts
    assert nemesis.netem == "available" or nemesis.netem.startswith("unavailable: ")


def test_a_run_killed_halfway_leaves_nothing_after_the_next_start() -> None:
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        run_id, scratch = child.stdout.readline().split()
        assert run_id.startswith(f"{net.PREFIX}-{child.pid}-"), run_id
        assert any(ns.startswith(run_id) for ns in net.namespaces())
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(CHILD_READY_S)
    with Network(["x"]) as network:  # the next run's start removes what the killed one left
        assert {f"{run_id}-br", f"{run_id}-a", f"{run_id}-b"} <= set(network.cleaned)
        assert not any(ns.startswith(run_id) for ns in net.namespaces())
        assert not Path(scratch).exists()
    assert not [ns for ns in net.namespaces() if ns.startswith((run_id, network.id))]
    assert not _ours_in_ip_link()
