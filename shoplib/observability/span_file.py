"""Spans kept in a local file, one JSON object a line, so a trace can be seen without a tracing
server (`make trace`). One file per service process; the line's fields:

    trace_id, span_id, parent_id (hex, "" for a root), name, kind (SERVER, CLIENT, PRODUCER,
    CONSUMER, INTERNAL), service, start_ns, end_ns (Unix epoch ns), status (UNSET, OK, ERROR),
    attributes {key: value}, events [{name, time_ns, attributes}], links [{trace_id, span_id}]
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import format_span_id, format_trace_id


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """The line written for one finished span."""
    context, parent = span.context, span.parent
    return {
        "trace_id": format_trace_id(context.trace_id) if context else "",
        "span_id": format_span_id(context.span_id) if context else "",
        "parent_id": format_span_id(parent.span_id) if parent else "",
        "name": span.name, "kind": span.kind.name,
        "service": str(span.resource.attributes.get("service.name", "")),
        "start_ns": span.start_time or 0, "end_ns": span.end_time or 0, "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "time_ns": e.timestamp, "attributes": dict(e.attributes or {})}
                   for e in span.events],
        "links": [{"trace_id": format_trace_id(link.context.trace_id), "span_id": format_span_id(link.context.span_id)}
                  for link in span.links],
    }


class JsonLinesExporter(SpanExporter):
    """Appends each batch of finished spans to `path` (its folder is created)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("ab")
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = b"".join(orjson.dumps(span_record(span)) + b"\n" for span in spans)
        with self._lock:
            self._file.write(lines)
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def read(folder: Path) -> list[dict[str, Any]]:
    """Every span recorded under `folder` (*.jsonl), in no particular order; a torn last line is skipped."""
    spans: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            try:
                spans.append(orjson.loads(line))
            except orjson.JSONDecodeError:
                continue
    return spans
