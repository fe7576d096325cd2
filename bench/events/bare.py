"""The bare hops: a gateway process -> an order process that does one XADD and answers, on a
private Redis. What the transport alone costs."""

from __future__ import annotations

import os
from collections.abc import Sequence

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc

from bench.common.bare import BareGateway, BareOrderReads, Closer, Context, serve
from bench.common.processes import BareServers
from shoplib import redis_conn
from shoplib.redis_server import LocalRedis

BARE_STREAM = "bench-bare-events"
BARE_PAYLOAD = b"x" * 200  # about the size of an OrderPlaced envelope


class BareOrder(BareOrderReads):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def CreateOrder(self, request: od.CreateOrderRequest, context: Context) -> od.CreateOrderResponse:
        await self._client.xadd(BARE_STREAM, {"id": request.idempotency_key, "type": "bench.placed",
                                              "envelope": BARE_PAYLOAD})
        return od.CreateOrderResponse()


def _register(role: str, target: str, server: grpc.aio.Server) -> Sequence[Closer]:
    """The order role's target is the Redis URL; the gateway's, the order process's address."""
    if role == "order":
        client = redis_conn.connect(target)  # the services' own pool settings, nothing else
        od_grpc.add_OrderServiceServicer_to_server(BareOrder(client), server)
        return [client.aclose]
    if role == "gateway":
        channel = grpc.aio.insecure_channel(target)
        gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(channel), server)
        return [channel.close]
    raise SystemExit(f"unknown bare role {role!r}")


async def serve_bare(role: str, port: int, target: str) -> None:
    await serve(lambda server: _register(role, target, server), port)


class BareHops(BareServers):
    """Bare gateway and order processes on a private Redis; `with BareHops() as hops:` stops them."""

    def __init__(self) -> None:
        super().__init__("bench.events", ("gateway", "order"))
        self.redis: LocalRedis | None = None

    def start(self) -> None:
        self.redis = LocalRedis().start()
        self.spawn("order", self.redis.url)
        self.spawn("gateway", self.address("order"))

    def pids(self) -> dict[str, int]:
        assert self.redis is not None and self.redis.process is not None
        return {**{role: p.pid for role, p in self.processes.items()}, "redis": self.redis.process.pid,
                "bench client": os.getpid()}

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        if self.redis is not None:
            self.redis.close()
            self.redis = None
