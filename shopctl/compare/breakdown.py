"""Where the time of one order goes, per mode, from its trace: each gRPC hop (the caller's client
span less the callee's server span: network, queues, (de)serialisation), each wait in a stream
(entry added to entry read), the atomic commits, and the totals. A small traced stack of its own,
started after the measured one (so tracing costs the measurements nothing), places ORDERS orders
per mode one at a time, each followed to its outcome; the table gives each part's median."""

from __future__ import annotations

import secrets
import statistics
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import grpc
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from shopctl.load import paid_orders
from shopctl.stack import Stack
from shoplib.observability import span_file
from shoplib.store import partitions
from shoplib.streams.trace_context import WAIT_MS

MODES = {"sync": types_pb2.FLOW_MODE_SYNC, "events": types_pb2.FLOW_MODE_EVENTS}
ORDERS = {"full": 40, "quick": 10}  # traced orders per mode, by the comparison's size
WARM_UP = 5  # orders per mode first, not counted: connections opened, code paths warm
CALL_TIMEOUT_S = 10.0
ENV = {"LOG_LEVEL": "WARNING", "OTEL_TRACES_SAMPLER": "always_on"}
TOTAL, TO_OUTCOME = "total: PlaceOrder at the gateway", "total: to the order's outcome (order settled)"
Span = dict[str, Any]


def _place(stub: gw_grpc.GatewayServiceStub, mode: str, request: gw.PlaceOrderRequest) -> str:
    """Place one order as the root of a new trace, follow it to its outcome; its trace id."""
    trace_id = secrets.token_hex(16)
    metadata = (("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01"),)
    order = stub.PlaceOrder(request, timeout=CALL_TIMEOUT_S, metadata=metadata).order
    if mode == "events":
        for _ in stub.WatchOrder(gw.WatchOrderRequest(order_id=order.order_id), timeout=CALL_TIMEOUT_S):
            pass  # the stream ends at the terminal status
    return trace_id


def _traces(orders: int, spans: Path, logs: Path) -> dict[str, list[str]]:
    placed: dict[str, list[str]] = {mode: [] for mode in MODES}
    with Stack(free_ports=True, log_dir=logs, env={**ENV, "TRACE_DIR": str(spans)}) as stack, \
            grpc.insecure_channel(stack.address("gateway")) as channel:
        stub = gw_grpc.GatewayServiceStub(channel)
        for mode, flow in MODES.items():
            request = paid_orders(f"breakdown-{secrets.token_hex(4)}", flow)
            for i in range(WARM_UP + orders):
                trace_id = _place(stub, mode, request())
                placed[mode] += [trace_id] if i >= WARM_UP else []
    return placed  # the services have stopped: every span is in its file


def _ms(span: Span) -> float:
    return float(span["end_ns"] - span["start_ns"]) / 1e6


def parts(spans: list[Span]) -> dict[str, float]:
    """One trace's parts, in ms: hops, stream waits, commits (summed per service), totals."""
    by_id = {s["span_id"]: s for s in spans}
    found: dict[str, float] = defaultdict(float)
    for span in spans:
        parent = by_id.get(span["parent_id"])
        if span["kind"] == "SERVER" and parent is not None and parent["kind"] == "CLIENT":
            found[f"hop {parent['service']} -> {span['service']}"] += _ms(parent) - _ms(span)
        elif span["kind"] == "CONSUMER":
            stream = partitions.base(span["attributes"]["messaging.destination.name"])
            found[f"wait in {stream} ({span['service']})"] += span["attributes"][WAIT_MS]
        elif span["name"] == "commit":
            found[f"commit ({span['service']})"] += _ms(span)
    roots = [s for s in spans if s["parent_id"] not in by_id]
    if roots:
        start = min(s["start_ns"] for s in roots)
        found[TOTAL] = _ms(min(roots, key=lambda s: s["start_ns"]))
        found[TO_OUTCOME] = (max(s["end_ns"] for s in spans if s["service"] == "order") - start) / 1e6
    return dict(found)


def medians(traces: list[list[Span]]) -> dict[str, float]:
    """Each part's median over the traces (a part missing from a trace counts as 0 there)."""
    found = [parts(spans) for spans in traces]
    names = sorted({name for f in found for name in f})
    return {name: round(statistics.median(f.get(name, 0.0) for f in found), 3) for name in names}


def measure(orders: int, logs: Path) -> dict[str, Any]:
    """{"orders": n, "ms": {mode: {part: median ms}}} from `orders` traced orders per mode."""
    with tempfile.TemporaryDirectory(prefix="compare-traces-") as folder:
        placed = _traces(orders, Path(folder), logs)
        spans = span_file.read(Path(folder))
    by_trace: dict[str, list[Span]] = defaultdict(list)
    for span in spans:
        by_trace[span["trace_id"]].append(span)
    return {"orders": orders, "ms": {mode: medians([by_trace[t] for t in ids if by_trace[t]])
                                     for mode, ids in placed.items()}}
