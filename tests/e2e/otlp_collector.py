"""An in-process OTLP collector: a real gRPC TraceService (opentelemetry-proto's) on a free loopback
port, keeping every span the services' real OTLP exporters send it, in the shape of
shoplib.observability.span_file's lines (so tests and `make trace` read spans alike)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.trace.v1 import trace_pb2

KINDS = {trace_pb2.Span.SPAN_KIND_SERVER: "SERVER", trace_pb2.Span.SPAN_KIND_CLIENT: "CLIENT",
         trace_pb2.Span.SPAN_KIND_PRODUCER: "PRODUCER", trace_pb2.Span.SPAN_KIND_CONSUMER: "CONSUMER",
         trace_pb2.Span.SPAN_KIND_INTERNAL: "INTERNAL"}
WORKERS = 4  # the four services export at once


def _value(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in ("string_value", "bool_value", "int_value", "double_value") else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _record(span: trace_pb2.Span, service: str) -> dict[str, Any]:
    return {"trace_id": span.trace_id.hex(), "span_id": span.span_id.hex(), "parent_id": span.parent_span_id.hex(),
            "name": span.name, "kind": KINDS.get(span.kind, "INTERNAL"), "service": service,
            "start_ns": span.start_time_unix_nano, "end_ns": span.end_time_unix_nano,
            "attributes": _attributes(span.attributes),
            "events": [{"name": e.name, "time_ns": e.time_unix_nano, "attributes": _attributes(e.attributes)}
                       for e in span.events],
            "links": [{"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()} for link in span.links]}


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """Answers Export like a collector would, and keeps the spans."""

    def __init__(self) -> None:
        self._spans: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.endpoint = ""

    def Export(self, request: trace_service_pb2.ExportTraceServiceRequest,
               context: grpc.ServicerContext) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            found = [_record(span, service) for scope in resource_spans.scope_spans for span in scope.spans]
            with self._lock:
                self._spans += found
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self, trace_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [span for span in self._spans if trace_id is None or span["trace_id"] == trace_id]


@contextmanager
def running() -> Iterator[Collector]:
    collector = Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=WORKERS))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    collector.endpoint = f"http://127.0.0.1:{port}"
    try:
        yield collector
    finally:
        server.stop(0)
