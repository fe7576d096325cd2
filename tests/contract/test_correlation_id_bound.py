"""A caller's x-correlation-id is copied onward (logs, event envelopes) only when it is short and of
safe characters; any other value is replaced by a fresh id, whatever it held."""

from __future__ import annotations

import re

import pytest
import redis
from shop.v1 import events_pb2, gateway_service_pb2, gateway_service_pb2_grpc, types_pb2

from shoplib import catalogue
from shoplib.log import CORRELATION_HEADER
from shoplib.rules.bounds import MAX_CORRELATION_ID_LENGTH
from tests.events.helpers import in_partition
from tests.support import PAID_LINES, new_id

TIMEOUT_S = 5.0
FRESH_ID = re.compile(r"[0-9a-f]{32}")  # shoplib.log.new_correlation_id
# The newest entries of order-events searched for the one event of the order just placed.
RECENT_ENTRIES = 500
KEPT = ["demo-3f2a1c-paid", "a.b_c:d-1", "x" * MAX_CORRELATION_ID_LENGTH]
REPLACED = ["x" * (MAX_CORRELATION_ID_LENGTH + 1), "two words", "semi;colon", '{"json": 1}', "slash/path", ""]


async def placed_with(stub: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis,
                      correlation_id: str) -> str:
    """The correlation id carried by the event of an events-mode order placed with `correlation_id`."""
    reply = await stub.PlaceOrder(
        gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                              lines=PAID_LINES, mode=types_pb2.FLOW_MODE_EVENTS),
        timeout=TIMEOUT_S, metadata=((CORRELATION_HEADER, correlation_id),))
    order_id = reply.order.order_id
    for _, fields in redis_client.xrevrange(in_partition(catalogue.ORDER_EVENTS, order_id), count=RECENT_ENTRIES):
        if fields[b"subject"].decode() == order_id:
            return events_pb2.EventEnvelope.FromString(fields[b"envelope"]).correlation_id
    raise AssertionError(f"no event of {order_id} in the newest {RECENT_ENTRIES} entries of {catalogue.ORDER_EVENTS}")


@pytest.mark.parametrize("offered", KEPT, ids=["demo", "all-safe-marks", "at-the-bound"])
async def test_a_short_safe_correlation_id_reaches_the_event_envelope(
        gateway_stub: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis, offered: str) -> None:
    assert await placed_with(gateway_stub, redis_client, offered) == offered


@pytest.mark.parametrize("offered", REPLACED, ids=["one-past-the-bound", "space", "semicolon", "json", "slash",
                                                   "empty"])
async def test_any_other_correlation_id_is_replaced_by_a_fresh_one(
        gateway_stub: gateway_service_pb2_grpc.GatewayServiceStub, redis_client: redis.Redis, offered: str) -> None:
    carried = await placed_with(gateway_stub, redis_client, offered)
    assert FRESH_ID.fullmatch(carried), carried

