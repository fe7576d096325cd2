"""Issue 19, case 5: work done for an order later than its request keeps the order's trace. Real
service processes export their spans to an in-process OTLP collector and to TRACE_DIR files (what
`make trace ORDER=...` reads); the test is the caller and sends its own `traceparent`.

- a sync order left PENDING (payment stopped) and resumed by the reconciler: the resumed Charge and
  receipt are in the order's trace, under a `resume order` span, a child of the order's CreateOrder;
- an events order whose event was lost and re-driven: the re-driven OrderPlaced and its consumers
  are in the order's trace;
- a retried PlaceOrder (same key, the caller's new trace) following the pending order up: its
  `resend order` span links to the order's trace, and `make trace` shows that linked trace;
- an events order whose OrderPlaced the payment consumer gave up on (a provider slower than the
  handler's limit on every delivery) and the operator re-drove from the dead letters once payment
  was fixed: the failed deliveries, the dead-lettering, the re-driven delivery and all that follows
  are in the order's trace; the operator's `redrive` span links to it, and `make trace` shows both;
- an entry redelivered to its own consumer, restarted after a crash while it held it: the
  redelivery and what follows are in the order's trace.
(A delivery reclaimed from a consumer that crashed is in tests/e2e/test_traces.py; the dead-letter
case here has reclaimed deliveries too: each failed one is taken over past the claim idle time.)
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
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
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.observability.later_work import DEAD_LETTER
from shoplib.store import partitions
from shoplib.streams import topology
from shoplib.streams.settings import DEAD_LETTERS
from shoplib.streams.trace_context import DELIVERY_COUNT, ENTRY_ID
from tests.e2e import otlp_collector
from tests.e2e.otlp_collector import Collector
from tests.events.helpers import (
    CALL_TIMEOUT_S,
    FAST,
    FAST_ENV,
    PAID_LINES,
    TERMINAL,
    WAIT_S,
    Clients,
    new_id,
    replace_payment,
    wait_until,
)

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
        lost = [(stream, entry_id) for stream in client.scan_iter(match=f"{catalogue.ORDER_EVENTS}*")
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


# Payment's provider answers after this on every delivery: past the handler's limit (claim idle / 3)
# and the limit of a held-up entry's retry (the claim idle time), so each delivery fails.
SLOW_PROVIDER_MS = 2_000
# The reconciler leaves a PENDING events order this long (for the test: for ever) before it
# re-drives it itself: the dead letter is the operator's to re-drive.
OPERATORS_ORDER_MS = 600_000
# Dead-lettered after FAST.max_deliveries failed deliveries, each a handler limit plus a reclaim
# (claim idle time and a maintenance round); measured ~3 s on a quiet host, x3 for a loaded one.
DEAD_LETTERED_WITHIN_S = WAIT_S + 3 * (FAST.max_deliveries + 1) * (
    FAST.claim_idle_ms / 1000 + FAST.maintenance_interval_s + FAST.handler_timeout_s)
REDRIVE_TIMEOUT_S = 30.0  # the operator's command: a Python start (~1 s, more on a loaded host) and a few reads


@contextlib.contextmanager
def _restarted(t: Traced, name: str, **env: str) -> Iterator[None]:
    """The service `name` restarted with `env` for the body, then as the fixture started it."""
    def restart(extra: dict[str, str]) -> None:
        t.stack.stop_service(name)
        saved = dict(t.stack.env)
        t.stack.env.update(extra)
        try:
            t.stack.start_service(name)
        finally:
            t.stack.env = saved

    restart(env)
    try:
        yield
    finally:
        restart({})


def _dead_letter_of(t: Traced, order_id: str, group: str) -> tuple[str, dict[bytes, bytes]] | None:
    """The dead letter `group` made of an event about `order_id`, as `make dead-letters` names it
    ("<partition>/<id>"), with its fields."""
    client = redis.Redis.from_url(t.stack.redis_url)
    try:
        for p in partitions.every():
            for letter_id, fields in client.xrange(partitions.stream(DEAD_LETTERS, p)):
                envelope = catalogue.decode({b"envelope": fields[b"original"]})[0]
                if envelope.subject == order_id and fields[b"group"].decode() == group:
                    return f"{p}/{letter_id.decode()}", fields
    finally:
        client.close()
    return None


def _redrive(t: Traced, ref: str) -> str:
    """`make dead-letters ARGS='redrive <ref>'`, as an operator runs it: the new entry's id."""
    env = {**os.environ, **t.stack.env, "REDIS_URL": t.stack.redis_url}
    done = subprocess.run([sys.executable, "-m", "shopctl.streams_ops", "dead-letters", "redrive", ref], env=env,
                          capture_output=True, text=True, timeout=REDRIVE_TIMEOUT_S, check=True)
    [said] = [line for line in done.stdout.splitlines() if line.startswith(f"{ref} re-driven as ")]  # and tracing.on
    return said.rpartition(" ")[2]


def _failed_deliveries(spans: list[Span], stream: str, entry_id: str) -> list[Span]:
    """Payment's deliveries of the entry `entry_id` of `stream` whose handler failed."""
    return [s for s in spans if s["kind"] == "CONSUMER" and s["service"] == "payment"
            and s["attributes"]["messaging.destination.name"] == stream and s["attributes"][ENTRY_ID] == entry_id
            and any(e["name"] == "handler.failed" for e in s["events"])]


def _groups_under(spans: list[Span], producer: Span) -> set[str]:
    """The consumer groups whose deliveries are children of `producer`."""
    return {s["attributes"]["messaging.consumer.group.name"] for s in spans
            if s["kind"] == "CONSUMER" and s["parent_id"] == producer["span_id"]}


def _redrive_span(t: Traced, ref: str) -> Span | None:
    """The operator's `redrive` span of the dead letter `ref` (in a trace of its own)."""
    return next((s for s in t.collector.spans() if s["name"].startswith("redrive ")
                 and s["attributes"].get(DEAD_LETTER) == ref), None)


def test_an_events_order_redriven_from_the_dead_letters_stays_in_its_trace(traced: Traced) -> None:
    trace_id, traceparent = _caller()
    with _restarted(traced, "order", ORDER_REDRIVE_AFTER_MS=str(OPERATORS_ORDER_MS)):
        replace_payment(traced.stack, "slow", PAYMENT_DELAY_MS=str(SLOW_PROVIDER_MS))
        try:
            order_id = _placed_pending(traced, types_pb2.FLOW_MODE_EVENTS, traceparent, new_id("key"))
            ref, letter = wait_until(lambda: _dead_letter_of(traced, order_id, topology.PAYMENT_GROUP),
                                     DEAD_LETTERED_WITHIN_S, "payment's dead letter of the order's OrderPlaced")
        finally:
            replace_payment(traced.stack, "fixed")  # the cause fixed, then the dead letter re-driven
        assert "handler took longer than" in letter[b"error"].decode()
        redriven_id = _redrive(traced, ref)
        assert traced.clients.follow(order_id, timeout=RESUMED_WITHIN_S)[-1].status == types_pb2.ORDER_STATUS_PAID
    assert _dead_letter_of(traced, order_id, topology.PAYMENT_GROUP) is None, "the re-driven dead letter is still there"
    stream, dead_entry = letter[b"stream"].decode(), letter[b"entry_id"].decode()

    # The dead-lettering, in the order's trace: failed deliveries, then the one that gave up.
    created = _arrived(traced, trace_id, "the OrderPlaced producer span", name="create order-events", kind="PRODUCER")
    dead = _arrived(traced, trace_id, "the payment consumer's dead-letter span", name=f"dead-letter {stream}")
    gave_up = _arrived(traced, trace_id, "the delivery that gave up", span_id=dead["parent_id"])
    assert dead["attributes"]["error.message"] == letter[b"error"].decode()
    assert gave_up["attributes"][ENTRY_ID] == dead_entry and gave_up["parent_id"] == created["span_id"]
    failed = wait_until(lambda: _failed_deliveries(traced.collector.spans(trace_id), stream, dead_entry),
                        WAIT_S, "the failed deliveries before the dead letter")
    assert all(s["parent_id"] == created["span_id"] for s in failed)
    reclaimed = [s for s in [*failed, gave_up] if s["attributes"][DELIVERY_COUNT] > 1]
    assert reclaimed and all([e["name"] for e in s["events"] if e["name"] == "reclaimed"] and s["links"]
                             for s in reclaimed), "a failed entry's later deliveries are reclaims, linked as such"

    # The operator's re-drive: a send in its own trace, linked to the message's creation context.
    redrive = wait_until(lambda: _redrive_span(traced, ref), WAIT_S, "the operator's redrive span")
    assert (redrive["kind"], redrive["service"], redrive["parent_id"]) == ("PRODUCER", "streams-ops", "")
    assert redrive["links"] == [{"trace_id": trace_id, "span_id": created["span_id"]}]
    assert redrive["attributes"][ENTRY_ID] == redriven_id and redrive["attributes"]["shop.order_id"] == order_id
    assert redrive["attributes"]["messaging.operation.type"] == "send"

    # The re-driven delivery continues the order's trace, linked to the re-drive; so does what follows.
    redelivered = _arrived(traced, trace_id, "the re-driven entry's delivery to payment", **{ENTRY_ID: redriven_id},
                           kind="CONSUMER", service="payment")
    assert redelivered["parent_id"] == created["span_id"] and redelivered["attributes"][DELIVERY_COUNT] == 1
    assert redelivered["links"] == [{"trace_id": redrive["trace_id"], "span_id": redrive["span_id"]}]
    assert [e["name"] for e in redelivered["events"]] == ["redriven"]
    outcome = _arrived(traced, trace_id, "the payment outcome of the re-driven delivery", name="create payment-events")
    assert outcome["parent_id"] == redelivered["span_id"]
    settling = {topology.ORDER_GROUP, topology.NOTIFICATION_GROUP}
    wait_until(lambda: _groups_under(traced.collector.spans(trace_id), outcome) >= settling, RESUMED_WITHIN_S,
               "the outcome's consumers (order, receipt)")

    shown = _shown(traced, order_id, f"dead-letter {stream}", "create payment-events",
                   f"linked trace {redrive['trace_id']}", f"redrive {stream}")
    assert f"trace {trace_id}" in shown.splitlines()[0]


CRASH_EXIT_CODE = 137  # shoplib.faults.crash() exits as a SIGKILL would


def test_an_entry_redelivered_to_its_restarted_consumer_stays_in_its_trace(traced: Traced) -> None:
    """Payment crashes after its effect, before its acknowledgement (exit_after_effect); restarted
    under the same name, it reads its own pending entry again, first thing."""
    trace_id, traceparent = _caller()
    replace_payment(traced.stack, "restarts", FAULTS="exit_after_effect=1")
    try:
        request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                        lines=PAID_LINES, mode=types_pb2.FLOW_MODE_EVENTS)
        order_id = traced.clients.gateway.PlaceOrder(request, timeout=CALL_TIMEOUT_S,
                                                     metadata=(("traceparent", traceparent),)).order.order_id
        assert traced.stack.processes["payment"].wait(WAIT_S) == CRASH_EXIT_CODE, "the fault did not fire"
    finally:
        replace_payment(traced.stack, "restarts")  # the same consumer, the fault off
    assert traced.clients.follow(order_id, timeout=RESUMED_WITHIN_S)[-1].status == types_pb2.ORDER_STATUS_PAID

    created = _arrived(traced, trace_id, "the OrderPlaced producer span", name="create order-events", kind="PRODUCER")
    again = _arrived(traced, trace_id, "payment's redelivery of the entry", kind="CONSUMER", service="payment",
                     **{DELIVERY_COUNT: 2})
    assert again["parent_id"] == created["span_id"] and again["attributes"]["messaging.client.id"] == "payment-restarts"
    assert again["links"] == [] and again["events"] == []  # its own pending entry: no reclaim
    outcome = _arrived(traced, trace_id, "the outcome published again by the redelivery", name="create payment-events")
    assert outcome["parent_id"] == again["span_id"]
    shown = _shown(traced, order_id, "create payment-events")
    assert f"trace {trace_id}" in shown.splitlines()[0]
