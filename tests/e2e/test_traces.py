"""Traces of real service processes, exported by their real OTLP exporters to an in-process
collector (a real gRPC TraceService): one trace per order across all four services, with the
parent/child structure of each mode, and the trace context kept through a reclaim and a dead letter.

The test is the caller: it sends its own `traceparent`, so it knows each order's trace id."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from shop.v1 import events_pb2, gateway_service_pb2, types_pb2

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import SERVICES, Stack
from shoplib import catalogue, log
from shoplib.streams import topology
from tests.e2e import otlp_collector
from tests.e2e.otlp_collector import Collector
from tests.events.helpers import (
    CALL_TIMEOUT_S,
    FAST_ENV,
    PAID_LINES,
    WAIT_S,
    Clients,
    new_id,
    replace_payment,
    wait_until,
)

pytestmark = pytest.mark.e2e

BATCH_DELAY_MS = 50  # OTEL_BSP_SCHEDULE_DELAY: spans reach the collector within a few of these
CRASH_EXIT_CODE = 137  # shoplib.faults.crash() exits as a SIGKILL would
Span = dict[str, Any]


@dataclass
class Traced:
    stack: Stack
    collector: Collector
    clients: Clients


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    server = LocalRedis().start()
    try:
        with otlp_collector.running() as collector, pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", server.url)
            env = {**FAST_ENV, "FAULTS": "", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                   "OTEL_BSP_SCHEDULE_DELAY": str(BATCH_DELAY_MS)}  # the default sampler: parent-based, always on
            with Stack(free_ports=True, log_dir=Path(tmp_path_factory.mktemp("trace-logs")), env=env) as stack:
                clients = Clients.of(stack)
                yield Traced(stack, collector, clients)
                clients.close()
    finally:
        server.close()


def _caller() -> tuple[str, str, str]:
    """A trace id, a span id and the traceparent the test sends as the caller's span."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def _place(t: Traced, mode: int, traceparent: str, cid: str) -> types_pb2.Order:
    request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                    lines=PAID_LINES, mode=mode)
    metadata = (("traceparent", traceparent), (log.CORRELATION_HEADER, cid))
    return t.clients.gateway.PlaceOrder(request, timeout=CALL_TIMEOUT_S, metadata=metadata).order


def _one(spans: list[Span], **match: Any) -> Span:
    found = [s for s in spans if all(s.get(k) == v or s["attributes"].get(k) == v for k, v in match.items())]
    assert len(found) == 1, f"expected one span with {match}, found {len(found)}: {[s['name'] for s in spans]}"
    return found[0]


def _arrived(t: Traced, trace_id: str, what: str, **match: Any) -> Span:
    """The one span of the trace with `match`, waited for: spans of one trace reach the collector
    in several batches, from several processes, in no fixed order."""
    def found() -> list[Span]:
        return [s for s in t.collector.spans(trace_id)
                if all(s.get(k) == v or s["attributes"].get(k) == v for k, v in match.items())]

    return _one(wait_until(found, WAIT_S, what), **match)


def _consumers(spans: list[Span], stream: str) -> dict[str, Span]:
    """The CONSUMER spans of deliveries from `stream` (any partition), by consumer group."""
    return {s["attributes"]["messaging.consumer.group.name"]: s for s in spans if s["kind"] == "CONSUMER"
            and s["attributes"]["messaging.destination.name"].startswith(stream)}


def _child(parent: Span, spans: list[Span], kind: str) -> list[Span]:
    return [s for s in spans if s["parent_id"] == parent["span_id"] and s["kind"] == kind]


def _sync_complete(spans: list[Span]) -> bool:
    return sum(s["kind"] == "SERVER" for s in spans) >= 5 and {s["service"] for s in spans} >= set(SERVICES)


def test_a_sync_order_is_one_tree_of_calls_across_the_four_services(traced: Traced) -> None:
    trace_id, caller, traceparent = _caller()
    order = _place(traced, types_pb2.FLOW_MODE_SYNC, traceparent, "trace-sync-1")
    spans = wait_until(lambda: _sync_complete(got := traced.collector.spans(trace_id)) and got, WAIT_S,
                       "the sync order's spans from the four services")
    place = _one(spans, name="/shop.v1.GatewayService/PlaceOrder", kind="SERVER")
    assert place["parent_id"] == caller and place["attributes"]["shop.order_id"] == order.order_id
    for caller_service, method, callee in [("gateway", "OrderService/CreateOrder", "order"),
                                           ("order", "PaymentService/Charge", "payment")]:
        client = _one(spans, name=f"/shop.v1.{method}", kind="CLIENT", service=caller_service)
        server = _one(spans, name=f"/shop.v1.{method}", kind="SERVER", service=callee)
        assert server["parent_id"] == client["span_id"], f"{callee}'s span is not a child of {caller_service}'s call"
    sends = [s for s in spans if s["kind"] == "SERVER" and s["service"] == "notification"]
    callers = {s["span_id"]: s["service"] for s in spans if s["kind"] == "CLIENT"}
    assert sorted(callers[s["parent_id"]] for s in sends) == ["order", "payment"]  # order received, receipt
    assert {s["attributes"]["shop.correlation_id"] for s in spans if s["kind"] == "SERVER"} == {"trace-sync-1"}
    assert all(_child(s, spans, "CLIENT") for s in spans if s["kind"] == "SERVER" and s["service"] != "gateway"), \
        "a service handled a call without its atomic commit span"


def _events_complete(spans: list[Span]) -> bool:
    return len(_consumers(spans, catalogue.ORDER_EVENTS)) == 2 and len(_consumers(spans, catalogue.PAYMENT_EVENTS)) == 2


def test_an_events_order_is_producers_and_their_consumers_through_the_stream_envelopes(traced: Traced) -> None:
    trace_id, _, traceparent = _caller()
    order = _place(traced, types_pb2.FLOW_MODE_EVENTS, traceparent, "trace-events-1")
    traced.clients.follow(order.order_id)
    spans = wait_until(lambda: _events_complete(got := traced.collector.spans(trace_id)) and got, WAIT_S,
                       "the consumer spans of both streams' groups")
    assert {s["service"] for s in spans} == set(SERVICES)
    created = _one(spans, name="create order-events", kind="PRODUCER")
    assert created["service"] == "order" and created["attributes"]["shop.order_id"] == order.order_id
    assert _one(spans, name="/shop.v1.OrderService/CreateOrder", kind="SERVER")["span_id"] == created["parent_id"]
    placed = _consumers(spans, catalogue.ORDER_EVENTS)
    assert set(placed) == {topology.PAYMENT_GROUP, topology.NOTIFICATION_GROUP}
    assert all(s["parent_id"] == created["span_id"] for s in placed.values()), "a consumer lost the producer"
    outcome = _one(spans, name="create payment-events", kind="PRODUCER")
    assert outcome["parent_id"] == placed[topology.PAYMENT_GROUP]["span_id"]
    settled = _consumers(spans, catalogue.PAYMENT_EVENTS)
    assert set(settled) == {topology.ORDER_GROUP, topology.NOTIFICATION_GROUP}
    assert all(s["parent_id"] == outcome["span_id"] for s in settled.values())
    for span in [*placed.values(), *settled.values()]:
        attributes = span["attributes"]
        assert attributes["messaging.system"] == "redis" and attributes["shop.correlation_id"] == "trace-events-1"
        assert attributes["messaging.redis.stream.delivery_count"] == 1
        assert 0 <= attributes["messaging.redis.stream.wait_ms"] < WAIT_S * 1000
        assert attributes["messaging.message.id"] and attributes["messaging.operation.type"] == "process"
        assert [c["name"] for c in _child(span, spans, "CLIENT")] == ["commit"], "no atomic commit under a delivery"
    watch, follow = sorted(wait_until(lambda: _streams_of(traced, order.order_id), WAIT_S, "WatchOrder's spans"),
                           key=lambda s: s["service"])  # gateway, then order: the stream's own trace
    call = _one(traced.collector.spans(watch["trace_id"]), span_id=follow["parent_id"])
    assert (call["kind"], call["name"], call["service"]) == ("CLIENT", "/shop.v1.OrderService/FollowOrder", "gateway")
    assert call["parent_id"] == watch["span_id"] and follow["trace_id"] == watch["trace_id"]


def _streams_of(t: Traced, order_id: str) -> list[Span] | None:
    """The server spans of WatchOrder at the gateway and of FollowOrder at the order service, once both are in."""
    found = [s for s in t.collector.spans() if s["attributes"].get("shop.order_id") == order_id
             and s["name"].endswith(("GatewayService/WatchOrder", "OrderService/FollowOrder"))]
    return found if len(found) == 2 else None


def test_a_reclaimed_entry_keeps_its_trace_and_links_the_reclaim(traced: Traced) -> None:
    trace_id, _, traceparent = _caller()
    replace_payment(traced.stack, "crashes", FAULTS="exit_after_effect=1")
    order = _place(traced, types_pb2.FLOW_MODE_EVENTS, traceparent, "trace-reclaim-1")
    assert traced.stack.processes["payment"].wait(WAIT_S) == CRASH_EXIT_CODE, "the fault did not fire"
    replace_payment(traced.stack, "takes-over")

    def redelivered() -> list[Span]:
        return [s for s in traced.collector.spans(trace_id) if s["kind"] == "CONSUMER" and s["service"] == "payment"]

    [span] = wait_until(redelivered, WAIT_S, "the payment consumer span of the reclaimed entry")
    created = _arrived(traced, trace_id, "the OrderPlaced producer span", name="create order-events", kind="PRODUCER")
    assert span["parent_id"] == created["span_id"] and span["attributes"]["shop.order_id"] == order.order_id
    assert span["attributes"]["messaging.redis.stream.delivery_count"] == 2
    assert span["attributes"]["messaging.client.id"] == "payment-takes-over"
    assert [e["name"] for e in span["events"]] == ["reclaimed"]
    [link] = span["links"]
    reclaim = _arrived(traced, link["trace_id"], "the linked reclaim span", span_id=link["span_id"])
    assert reclaim["name"].startswith("reclaim order-events") and reclaim["service"] == "payment"


def test_a_dead_lettered_entry_is_a_span_of_its_producers_trace(traced: Traced) -> None:
    """An OrderPlaced the payment handler refuses (no customer) goes to the dead letters inside
    the consumer span that carries the envelope's trace context."""
    trace_id, caller, traceparent = _caller()
    real_id, _, _ = _caller()
    order = _place(traced, types_pb2.FLOW_MODE_EVENTS, f"00-{real_id}-{secrets.token_hex(8)}-01", "trace-dead-0")
    delivered = wait_until(  # the payment group's delivery itself, not any consumer's: it is what is read next
        lambda: _consumers(traced.collector.spans(real_id), catalogue.ORDER_EVENTS).get(topology.PAYMENT_GROUP), WAIT_S,
        "the payment group's delivery of a real order")
    stream = delivered["attributes"]["messaging.destination.name"]  # its partition's
    refused = events_pb2.OrderPlaced(order=types_pb2.Order(order_id=order.order_id, customer_id="", total=order.total))
    store = redis.Redis.from_url(traced.stack.redis_url)
    try:
        store.xadd(stream, catalogue.entry_fields(catalogue.wrap(refused, "/tests/traces", traceparent=traceparent)))
    finally:
        store.close()

    def dead_letter() -> list[Span]:
        return [s for s in traced.collector.spans(trace_id) if s["name"].startswith("dead-letter")
                and s["service"] == "payment"]

    [dead] = wait_until(dead_letter, WAIT_S, "the payment service's dead-letter span")
    consumer = _arrived(traced, trace_id, "the consumer span around the dead letter", span_id=dead["parent_id"])
    assert consumer["kind"] == "CONSUMER" and consumer["parent_id"] == caller
    assert dead["attributes"]["messaging.consumer.group.name"] == topology.PAYMENT_GROUP
    assert dead["attributes"]["error.message"].startswith("rejected")


def _envelope_of(t: Traced, order_id: str) -> events_pb2.EventEnvelope:
    """The OrderPlaced envelope of `order_id`, from whichever partition of order-events holds it."""
    store = redis.Redis.from_url(t.stack.redis_url)
    try:
        for stream in store.scan_iter(match=f"{catalogue.ORDER_EVENTS}*"):
            for _, fields in store.xrange(stream):
                if fields[b"subject"].decode() == order_id:
                    return catalogue.decode(fields)[0]
    finally:
        store.close()
    raise AssertionError(f"no OrderPlaced of {order_id}")


def test_an_unsampled_order_records_no_span_and_passes_its_trace_on_unsampled(traced: Traced) -> None:
    """The caller did not sample (flags 00): no service records a span, and the event carries the
    caller's trace id, still unsampled, so the trace id travels. (Its span id is that of the gRPC
    instrumentation's unrecorded server span, not the caller's: the SDK gives every span an id.)"""
    trace_id, caller, _ = _caller()
    unsampled = f"00-{trace_id}-{caller}-00"
    order = _place(traced, types_pb2.FLOW_MODE_EVENTS, unsampled, "trace-unsampled-1")
    traced.clients.follow(order.order_id)
    version, carried_trace, _, flags = _envelope_of(traced, order.order_id).traceparent.split("-")
    assert (version, carried_trace, flags) == ("00", trace_id, "00")
    assert traced.collector.spans(trace_id) == []
