"""Issue 19, case 5: work done for an order later than its request keeps the order's trace. Real
service processes export their spans to an in-process OTLP collector and to TRACE_DIR files (what
`make trace ORDER=...` reads); the test is the caller and sends its own `traceparent`.

- a sync order left PENDING (payment stopped) and resumed by the reconciler: the resumed Charge and
  receipt are in the order's trace, under a `resume order` span, a child of the order's CreateOrder;
- an events order whose event was lost and re-driven: the re-driven OrderPlaced and its consumers
  are in the order's trace;
- a retried PlaceOrder (same key, the caller's new trace) following the pending order up: its
  `resend order` span links to the order's trace, and `make trace` shows that linked trace.
"""

from __future__ import annotations

import secrets
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis
from shop.v1 import gateway_service_pb2, types_pb2

from order_svc.adapters import pending_key
from shopctl import trace_cmd
from shopctl.stack import Stack
from shoplib import events, partitions
from shoplib.redis_server import LocalRedis
from tests.e2e import otlp_collector
from tests.e2e.otlp_collector import Collector
from tests.events.helpers import FAST_ENV, PAID_LINES, TERMINAL, WAIT_S, Clients, new_id, wait_until

pytestmark = pytest.mark.e2e

BATCH_DELAY_MS = 50  # OTEL_BSP_SCHEDULE_DELAY: spans reach the collector and the files within a few of these
RESUME_AFTER_MS = 1_500  # the reconciler resumes / re-drives orders this old (it looks every 2 s)
PLACE_TIMEOUT_S = 2.0  # a sync PlaceOrder with payment stopped: stored PENDING, then the deadline
# Resumed within a reconciler round or two of RESUME_AFTER_MS, plus a margin for a loaded host.
RESUMED_WITHIN_S = WAIT_S + 10.0
Span = dict[str, Any]


@dataclass
class Traced:
    stack: Stack
    collector: Collector
    clients: Clients
    trace_dir: Path


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    server = LocalRedis().start()
    trace_dir = tmp_path_factory.mktemp("traces")
    try:
        with otlp_collector.running() as collector, pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", server.url)
            env = {**FAST_ENV, "FAULTS": "", "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
                   "OTEL_BSP_SCHEDULE_DELAY": str(BATCH_DELAY_MS), "TRACE_DIR": str(trace_dir),
                   "ORDER_RESUME_AFTER_MS": str(RESUME_AFTER_MS), "ORDER_REDRIVE_AFTER_MS": str(RESUME_AFTER_MS)}
            with Stack(free_ports=True, log_dir=Path(tmp_path_factory.mktemp("logs")), env=env) as stack:
                clients = Clients.of(stack)
                yield Traced(stack, collector, clients, trace_dir)
                clients.close()
    finally:
        server.close()


def _caller() -> tuple[str, str]:
    trace_id = secrets.token_hex(16)
    return trace_id, f"00-{trace_id}-{secrets.token_hex(8)}-01"


def _place(t: Traced, mode: int, traceparent: str, key: str) -> None:
    request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=key, customer_id=f"cust-of-{key}",
                                                    lines=PAID_LINES, mode=mode)
    try:
        t.clients.gateway.PlaceOrder(request, timeout=PLACE_TIMEOUT_S, metadata=(("traceparent", traceparent),))
    except grpc.RpcError as exc:  # payment stopped: stored PENDING all the same
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc


def _pending(t: Traced, mode: int) -> set[str]:
    client = redis.Redis.from_url(t.stack.redis_url)
    try:
        return {m.decode() for p in partitions.every() for m in client.zrange(pending_key(mode, p), 0, -1)}
    finally:
        client.close()


def _placed_pending(t: Traced, mode: int, traceparent: str, key: str) -> str:
    before = _pending(t, mode)
    _place(t, mode, traceparent, key)
    [order_id] = _pending(t, mode) - before
    return order_id


def _span(spans: list[Span], **match: Any) -> Span | None:
    """The first span with `match` (a reconciler round while payment was still stopped resumes twice)."""
    return next((s for s in spans if all(s.get(k) == v or s["attributes"].get(k) == v for k, v in match.items())),
                None)


def _arrived(t: Traced, trace_id: str, what: str, **match: Any) -> Span:
    span: Span = wait_until(lambda: _span(t.collector.spans(trace_id), **match), RESUMED_WITHIN_S, what)
    return span


def _ancestors(span: Span, spans: list[Span]) -> list[str]:
    """Names of the span's ancestors within `spans`, nearest first."""
    by_id, names = {s["span_id"]: s for s in spans}, []
    while (parent := by_id.get(span["parent_id"])) is not None:
        names.append(parent["name"])
        span = parent
    return names


def _shown(t: Traced, order_id: str, *names: str) -> str:
    """`make trace ORDER=...`'s text, once it shows every one of `names` (the files are batched too)."""
    def text() -> str | None:
        shown = trace_cmd.show(order_id, t.trace_dir, t.trace_dir / f"{order_id}.png")
        return shown if all(name in shown for name in names) else None

    found: str = wait_until(text, WAIT_S, f"make trace showing {names}")
    return found


def test_a_sync_order_resumed_by_the_reconciler_stays_in_its_trace(traced: Traced) -> None:
    trace_id, traceparent = _caller()
    traced.stack.signal_service("payment", signal.SIGSTOP)
    try:
        order_id = _placed_pending(traced, types_pb2.FLOW_MODE_SYNC, traceparent, new_id("key"))
    finally:
        traced.stack.signal_service("payment", signal.SIGCONT)
    resume = _arrived(traced, trace_id, "the reconciler's resume span in the order's trace", name="resume order")
    created = _arrived(traced, trace_id, "the order's CreateOrder", name="/shop.v1.OrderService/CreateOrder",
                       kind="SERVER")
    assert resume["parent_id"] == created["span_id"] and resume["service"] == "order"
    assert resume["attributes"]["shop.order_id"] == order_id

    def resumed_receipt() -> Span | None:
        spans = traced.collector.spans(trace_id)
        return next((s for s in spans if s["service"] == "notification" and s["kind"] == "SERVER"
                     and "resume order" in _ancestors(s, spans) and "/shop.v1.PaymentService/Charge" in
                     _ancestors(s, spans)), None)

    wait_until(resumed_receipt, RESUMED_WITHIN_S, "the receipt sent by the resumed Charge, in the order's trace")
    assert traced.clients.get(order_id).status in TERMINAL
    shown = _shown(traced, order_id, "resume order", "shop.v1.PaymentService/Charge")
    assert f"trace {trace_id}" in shown.splitlines()[0]


def _lose_placed_event(t: Traced, order_id: str) -> None:
    client = redis.Redis.from_url(t.stack.redis_url)
    try:
        lost = [(stream, entry_id) for stream in client.scan_iter(match=f"{events.ORDER_EVENTS}*")
                for entry_id, fields in client.xrange(stream) if fields[b"subject"].decode() == order_id]
        assert len(lost) == 1, lost
        assert client.xdel(*lost[0]) == 1  # lost, as a trim by hand would lose it
    finally:
        client.close()


def test_an_events_order_re_driven_after_its_event_was_lost_stays_in_its_trace(traced: Traced) -> None:
    trace_id, traceparent = _caller()
    traced.stack.stop_service("payment")  # stopped, not paused: a paused reader still receives entries
    try:
        order_id = _placed_pending(traced, types_pb2.FLOW_MODE_EVENTS, traceparent, new_id("key"))
        _lose_placed_event(traced, order_id)
    finally:
        traced.stack.start_service("payment")
    assert traced.clients.follow(order_id, timeout=RESUMED_WITHIN_S)[-1].status == types_pb2.ORDER_STATUS_PAID

    def re_driven_delivery() -> Span | None:
        spans = traced.collector.spans(trace_id)
        return next((s for s in spans if s["service"] == "payment" and s["kind"] == "CONSUMER"
                     and _ancestors(s, spans)[:2] == ["create order-events", "resume order"]), None)

    delivery = wait_until(re_driven_delivery, RESUMED_WITHIN_S, "payment's delivery of the re-driven OrderPlaced")
    assert delivery["attributes"]["shop.order_id"] == order_id
    assert _ancestors(delivery, traced.collector.spans(trace_id))[-1] == "/shop.v1.GatewayService/PlaceOrder"


def test_a_retried_place_order_following_the_order_up_links_to_its_trace(traced: Traced) -> None:
    trace_id, traceparent = _caller()
    retry_id, retry_traceparent = _caller()
    key = new_id("key")
    traced.stack.signal_service("payment", signal.SIGSTOP)
    try:
        order_id = _placed_pending(traced, types_pb2.FLOW_MODE_SYNC, traceparent, key)
        _place(traced, types_pb2.FLOW_MODE_SYNC, retry_traceparent, key)  # the caller retries, in a new trace
    finally:
        traced.stack.signal_service("payment", signal.SIGCONT)
    resend = _arrived(traced, retry_id, "the retry's resend span", name="resend order")
    created = _arrived(traced, trace_id, "the order's CreateOrder", name="/shop.v1.OrderService/CreateOrder",
                       kind="SERVER")
    assert resend["links"] == [{"trace_id": trace_id, "span_id": created["span_id"]}]
    assert resend["attributes"]["shop.order_id"] == order_id
    shown = _shown(traced, order_id, f"linked trace {retry_id}", "resend order")
    assert f"trace {trace_id}" in shown.splitlines()[0]
