"""WatchOrder follows a pending order until it is terminal, then ends."""

from __future__ import annotations

import asyncio
import time

import grpc
import redis
from shop.v1 import gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from order_svc.adapters import UPDATES_CHANNEL, reservation_key
from order_svc.ports import RESYNC_S
from tests.contract.inprocess import running_services
from tests.support import PAID_LINES, new_id

# Long enough for the order to be stored and watched before its payment settles it.
PAYMENT_DELAY_MS = 700


async def order_id_of(client: redis.Redis, idempotency_key: str, within_s: float = 5.0) -> str:
    """The id the order service gave the order of this key, as soon as the order is stored."""
    deadline = time.monotonic() + within_s
    while (claimed := client.get(reservation_key(idempotency_key))) is None:
        assert time.monotonic() < deadline, "the order was never stored"
        await asyncio.sleep(0.02)
    return claimed.decode().partition(" ")[2]


async def test_watching_a_pending_order_sends_pending_then_paid_and_ends(
        redis_url: str, redis_client: redis.Redis) -> None:
    """The change comes by push; the order service subscribes to updates only once someone watches
    (before that, every status change would be read for nobody)."""
    async with running_services(redis_url, payment_delay_ms=PAYMENT_DELAY_MS) as services, \
            grpc.aio.insecure_channel(services.address("gateway")) as channel:
        gateway = gateway_service_pb2_grpc.GatewayServiceStub(channel)
        request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                        lines=PAID_LINES, mode=types_pb2.FLOW_MODE_SYNC)
        placing = asyncio.ensure_future(gateway.PlaceOrder(request, timeout=5))
        order_id = await order_id_of(redis_client, request.idempotency_key)
        assert redis_client.pubsub_numsub(UPDATES_CHANNEL)[0][1] == 0
        started = time.monotonic()
        watch = gateway.WatchOrder(gateway_service_pb2.WatchOrderRequest(order_id=order_id), timeout=5)
        statuses = [reply.order.status async for reply in watch]
        assert statuses == [types_pb2.ORDER_STATUS_PENDING, types_pb2.ORDER_STATUS_PAID]
        assert time.monotonic() - started < RESYNC_S / 2, "the change came by the resync, not by push"
        assert (await placing).order.status == types_pb2.ORDER_STATUS_PAID
