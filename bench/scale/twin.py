"""The durable twin of a scaled stack: `instances` processes of each role on one Redis or on a 3+3
Redis Cluster, every one making the real stack's commits the cheapest way (bench.common.durable):

    gateway-i       forwards PlaceOrder to the order processes (gRPC round_robin over them)
    order-i         the order hop's commit, and the lean order consumer (settling)
    payment-i       the lean payment consumer
    notification-i  the lean notification consumer

On a cluster the commits and reads go over `transport` (bench.common.cluster_store): redis-py's
cluster client as the real stack, or one lean connection per master. Consumers of one role share
their group under names of their own, as the real instances do.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

from bench.common import cluster_store, durable
from bench.common.bare import BareGateway, Closer, serve
from bench.common.cluster_store import Transport
from bench.common.durable import LeanStore
from bench.common.processes import BareServers
from bench.events.bare import lean_role
from bench.scale.run import Result, Setup, Sizes, Target, measure, server_pids
from shopctl.local_redis.cluster import LocalCluster
from shopctl.local_redis.server import LocalRedis
from shoplib import log
from shoplib.calls import balancing
from shoplib.store import connections

ROLES = ("order", "payment", "notification", "gateway")  # in start order: the gateway calls the order ones


def label(role: str, instance: int) -> str:
    return role if instance == 1 else f"{role}-{instance}"


async def _store(url: str, transport: Transport) -> LeanStore:
    return await cluster_store.connect(url, transport) if connections.clustered() else await durable.connect(url)


async def _durable(role: str, url: str, instance: int, transport: Transport, server: grpc.aio.Server
                   ) -> Sequence[Closer]:
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # creating the groups logs a line per stream: not our output
    log.configure(f"bench-scale-{role}")
    return await lean_role(connections.connect(url), await _store(url, transport), server, role, instance, transport)


async def serve_twin(role: str, port: int, target: str, instance: int, transport: Transport) -> None:
    """A twin process: the gateway's target is the order processes' addresses; the others', Redis."""

    async def register(server: grpc.aio.Server) -> Sequence[Closer]:
        if role != "gateway":
            return await _durable(role, target, instance, transport, server)
        channel = grpc.aio.insecure_channel(balancing.target(target), options=balancing.ROUND_ROBIN_OPTIONS)
        gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(channel), server)
        return [channel.close]

    await serve(register, port)


class ScaleTwin(BareServers):
    """`with ScaleTwin(...) as twin:` starts the Redis (or cluster) and every process, and stops them."""

    def __init__(self, clustered: bool, instances: int, transport: Transport, wait_replicas: int) -> None:
        super().__init__("bench.scale", [label(role, i) for role in ROLES for i in range(1, instances + 1)])
        self.clustered, self.instances, self.transport = clustered, instances, transport
        self.env = {"REDIS_CLUSTER": "1" if clustered else "0", "REDIS_WAIT_REPLICAS": str(wait_replicas)}
        self.cluster: LocalCluster | None = None

    def addresses(self, role: str) -> str:
        return ",".join(self.address(label(role, i)) for i in range(1, self.instances + 1))

    def start(self) -> None:
        if self.clustered:
            self.cluster = LocalCluster()
            url = self.cluster.start().url
        else:
            self.redis = LocalRedis().start()
            url = self.redis.url
        for role in ROLES:
            for i in range(1, self.instances + 1):
                target = self.addresses("order") if role == "gateway" else url
                self.spawn(label(role, i), target, str(i), self.transport, serves=role)

    def servers(self) -> list[LocalRedis]:
        """The Redis servers: the one, or every node of the cluster."""
        return list(self.cluster.nodes) if self.cluster else [self.redis] if self.redis else []

    def __exit__(self, *exc: object) -> None:
        super().__exit__()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None


def measure_twin(setup: Setup, transport: Transport, sizes: Sizes) -> Result:
    with ScaleTwin(setup.clustered, setup.instances, transport, setup.wait_replicas) as twin:
        servers = twin.servers()
        pids = {role: process.pid for role, process in twin.processes.items()} | server_pids(servers)
        kind = f"twin, {transport}" if setup.clustered else "twin"
        return measure(setup, kind, Target(twin.addresses("gateway"), pids, servers), sizes)
