"""The bare hops, on a private Redis: a gateway process -> an order process, and what stands
behind it.

Bare (`BareHops()`): the order process does one XADD of a small payload and answers; nothing
else runs. What the transport alone costs.

Durable (`BareHops(durable=True)`): the order process makes the real order hop's commit (one
EVALSHA: SET the idempotency key NX, SET the order, PUBLISH it, ZADD pending-events, XADD
OrderPlaced; bench.common.durable) and answers, while lean consumers make the real consumers'
commits behind it (bench.events.lean): payment and notification in processes of their own, the
order's settling in the order process, as in the real stack. Five fsynced commits and one GET per
order, as counted on the real stack: what the transport and the durable work cost, with nothing
of ours.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc
from shop.v1 import types_pb2

from bench.common import durable
from bench.common.bare import BareGateway, BareOrderReads, Closer, Context, serve
from bench.common.cluster_store import Transport
from bench.common.durable import LeanStore
from bench.common.processes import BareServers
from bench.events.lean import LeanConsumer
from shoplib import log
from shoplib.store import connections

BARE_STREAM = "bench-bare-events"
BARE_PAYLOAD = b"x" * 200  # about the size of an OrderPlaced envelope
EVENTS = types_pb2.FLOW_MODE_EVENTS


class BareOrder(BareOrderReads):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def CreateOrder(self, request: od.CreateOrderRequest, context: Context) -> od.CreateOrderResponse:
        await self._client.xadd(BARE_STREAM, {"id": request.idempotency_key, "type": "bench.placed",
                                              "envelope": BARE_PAYLOAD})
        return od.CreateOrderResponse()


class DurableOrder(BareOrderReads):
    def __init__(self, store: LeanStore) -> None:
        self._store = store

    async def CreateOrder(self, request: od.CreateOrderRequest, context: Context) -> od.CreateOrderResponse:
        order_id = durable.new_order_id(request.idempotency_key)
        await self._store.commit(durable.placed(request.idempotency_key, order_id, EVENTS))
        return od.CreateOrderResponse(order=types_pb2.Order(order_id=order_id))


async def _lean(url: str, server: grpc.aio.Server, role: str) -> Sequence[Closer]:
    """A durable role: the lean consumer of `role` (and the order hop, for the order)."""
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # creating the groups logs a line per stream: not our output
    log.configure(f"bench-{role}")
    client = connections.connect(url)  # the services' own pool settings, nothing else
    return await lean_role(client, await durable.connect(url), server, role.removeprefix("durable-"))


async def lean_role(client: aioredis.Redis, store: LeanStore, server: grpc.aio.Server, role: str, instance: int = 1,
                    transport: Transport = "lean") -> Sequence[Closer]:
    """The lean consumer of `role` on `store` (and the order hop, for the order); closing it
    closes `store` and `client` too."""
    if role == "order":
        od_grpc.add_OrderServiceServicer_to_server(DurableOrder(store), server)
    consumer = await LeanConsumer(client, store, role, instance, transport).start()

    async def close() -> None:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
        await store.aclose()
        await client.aclose()

    return [close]


async def _register(role: str, target: str, server: grpc.aio.Server) -> Sequence[Closer]:
    """The gateway's target is the order process's address; every other role's, the Redis URL."""
    if role == "gateway":
        channel = grpc.aio.insecure_channel(target)
        gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(channel), server)
        return [channel.close]
    if role == "order":
        client = connections.connect(target)
        od_grpc.add_OrderServiceServicer_to_server(BareOrder(client), server)
        return [client.aclose]
    if role in ("durable-order", "payment", "notification"):
        return await _lean(target, server, role)
    raise SystemExit(f"unknown bare role {role!r}")


async def serve_bare(role: str, port: int, target: str) -> None:
    await serve(lambda server: _register(role, target, server), port)


class BareHops(BareServers):
    """The bare (or durable) processes on a private Redis; `with BareHops() as hops:` stops them."""

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        super().__init__("bench.events", ("gateway", "order", *(("payment", "notification") if durable else ())),
                         redis=True)

    def start(self) -> None:
        self.spawn("order", self.redis_url, serves="durable-order" if self.durable else None)
        for role in ("payment", "notification") if self.durable else ():
            self.spawn(role, self.redis_url)
        self.spawn("gateway", self.address("order"))


class LeanConsumers(BareServers):
    """Only the lean payment and notification consumers, on a private Redis: the durable twin of
    the consumers-alone measurement (bench.events.consumers)."""

    def __init__(self) -> None:
        super().__init__("bench.events", ("payment", "notification"), redis=True)

    def start(self) -> None:
        for role in self.ports:
            self.spawn(role, self.redis_url)
