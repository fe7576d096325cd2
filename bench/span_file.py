"""`python -m bench.span_file`: what writing finished spans to a local file costs, per span, with
ours (shoplib.observability.span_file.JsonLinesExporter: orjson, one line a span, the fields `make trace` reads)
beside the SDK's ConsoleSpanExporter writing to a file (its `to_json`, one line a span through its
`formatter`), in one run, on the same real spans (a gRPC SERVER span's attributes, an event, a link).
Each exporter gets BATCH spans a call, as the BatchSpanProcessor hands them; ROUNDS alternate."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shoplib.observability.span_file import JsonLinesExporter

BATCH = 512  # the BatchSpanProcessor's default export batch (OTEL_BSP_MAX_EXPORT_BATCH_SIZE)
BATCHES = 40  # per round and exporter: ~20 000 spans, enough for a stable µs figure
ROUNDS = 3


def _spans() -> list[ReadableSpan]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "bench"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("bench")
    with tracer.start_as_current_span("/shop.v1.GatewayService/PlaceOrder", kind=trace.SpanKind.SERVER, attributes={
            "rpc.system": "grpc", "rpc.service": "shop.v1.GatewayService", "rpc.method": "PlaceOrder",
            "rpc.grpc.status_code": 0, "shop.correlation_id": "c0ffee", "shop.order_id": "ord_p1_x"}) as parent:
        for _ in range(BATCH - 1):
            with tracer.start_as_current_span("process order-events:{p1}", kind=trace.SpanKind.CONSUMER,
                                              links=[trace.Link(parent.get_span_context())]) as span:
                span.add_event("reclaimed", {"messaging.redis.stream.delivery_count": 2})
    return list(memory.get_finished_spans())


def _us_per_span(exporter: SpanExporter, spans: Sequence[ReadableSpan]) -> float:
    started = time.perf_counter()
    for _ in range(BATCHES):
        exporter.export(spans)
    return (time.perf_counter() - started) / (BATCHES * len(spans)) * 1e6


def main() -> None:
    spans = _spans()
    with tempfile.TemporaryDirectory(prefix="bench-span-file-") as work:
        sdk_file = open(Path(work) / "sdk.jsonl", "w")  # closed below, after every round
        exporters: dict[str, SpanExporter] = {
            "ours (JsonLinesExporter, orjson)": JsonLinesExporter(Path(work) / "ours.jsonl"),
            "SDK ConsoleSpanExporter to a file": ConsoleSpanExporter(
                out=sdk_file, formatter=lambda span: span.to_json(indent=None) + "\n"),
        }
        found: dict[str, list[float]] = {name: [] for name in exporters}
        for turn in range(ROUNDS):
            for name in (list(exporters) if turn % 2 == 0 else list(reversed(exporters))):
                found[name].append(_us_per_span(exporters[name], spans))
        sdk_file.close()
    print(f"Writing finished spans to a file, µs per span (median of {ROUNDS} rounds of {BATCHES * len(spans)}):")
    for name, runs in found.items():
        print(f"  {name:<36} {sorted(runs)[len(runs) // 2]:6.1f}")


if __name__ == "__main__":
    main()
