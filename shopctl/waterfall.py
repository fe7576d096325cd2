"""One order's trace as a waterfall: every span of it, in start order and nested under its parent,
with its service, start offset and duration in ms, and for a consumer span the time its entry
waited in the stream before it was read. Spans are shoplib.observability.span_file's records (dicts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shoplib.streams.trace_context import ORDER_ID, WAIT_MS

NS_PER_MS = 1_000_000
BAR_WIDTH = 32  # characters of the terminal bar: the whole trace spans this many
INDENT = "  "

Span = dict[str, Any]


@dataclass(frozen=True)
class Row:
    service: str
    name: str
    kind: str
    depth: int
    start_ms: float  # from the trace's first span
    duration_ms: float
    wait_ms: float | None  # consumer spans: how long the entry waited in its stream
    failed: bool


def trace_of_order(spans: Sequence[Span], order_id: str) -> str | None:
    """The trace id of the earliest span about `order_id` (attribute shop.order_id), or None."""
    about = [s for s in spans if s["attributes"].get(ORDER_ID) == order_id]
    return min(about, key=lambda s: s["start_ns"])["trace_id"] if about else None


def linked_traces(spans: Sequence[Span], trace_id: str) -> list[str]:
    """The other traces a span link joins to `trace_id`, either way (a reclaim that took an entry
    over, a retried call that followed the order up), earliest first."""
    found: dict[str, int] = {}
    for span in spans:
        for link in span.get("links", ()):
            if span["trace_id"] == trace_id and link["trace_id"] != trace_id:
                found.setdefault(link["trace_id"], 0)
            elif span["trace_id"] != trace_id and link["trace_id"] == trace_id:
                found.setdefault(span["trace_id"], 0)
    starts = {t: min(s["start_ns"] for s in spans if s["trace_id"] == t) for t in found
              if any(s["trace_id"] == t for s in spans)}
    return sorted(found, key=lambda t: starts.get(t, 0))


def _depths(spans: Sequence[Span]) -> dict[str, int]:
    by_id = {s["span_id"]: s for s in spans}
    depths: dict[str, int] = {}

    def depth(span: Span) -> int:
        if span["span_id"] not in depths:
            parent = by_id.get(span["parent_id"])
            depths[span["span_id"]] = 0 if parent is None else depth(parent) + 1
        return depths[span["span_id"]]

    for span in spans:
        depth(span)
    return depths


def _tree_order(spans: Sequence[Span]) -> list[Span]:
    """Depth first, children by start time: each span right under its parent."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[Span]] = {}
    for span in sorted(spans, key=lambda s: s["start_ns"]):
        children.setdefault(span["parent_id"] if span["parent_id"] in ids else "", []).append(span)
    ordered: list[Span] = []
    stack = list(reversed(children.get("", [])))
    while stack:
        span = stack.pop()
        ordered.append(span)
        stack += reversed(children.get(span["span_id"], []))
    return ordered


def label(name: str) -> str:
    """A span's name as shown: a gRPC span's `/shop.v1.Service/Method` (the instrumentation's
    spelling) without its leading slash; other names as they are."""
    return name.removeprefix("/")


def rows(spans: Sequence[Span]) -> list[Row]:
    """The waterfall's rows for the spans of one trace."""
    if not spans:
        return []
    t0 = min(s["start_ns"] for s in spans)
    depths = _depths(spans)
    return [Row(s["service"], label(s["name"]), s["kind"], depths[s["span_id"]], (s["start_ns"] - t0) / NS_PER_MS,
                (s["end_ns"] - s["start_ns"]) / NS_PER_MS, s["attributes"].get(WAIT_MS), s.get("status") == "ERROR")
            for s in _tree_order(spans)]


def _bar(row: Row, total_ms: float) -> str:
    scale = BAR_WIDTH / total_ms if total_ms > 0 else 0.0
    waited = row.wait_ms or 0.0
    lead = max(int((row.start_ms - waited) * scale), 0)
    wait = int(row.start_ms * scale) - lead
    run = max(int(row.duration_ms * scale), 1)
    return (" " * lead + "." * wait + "#" * run)[:BAR_WIDTH + 1]


def render(spans: Sequence[Span], title: str = "") -> str:
    """The waterfall as text: one line a span; `.` is time waited in a stream, `#` the span itself."""
    table = rows(spans)
    if not table:
        return f"{title}\n  (no spans)"
    total = max(r.start_ms + r.duration_ms for r in table)
    name_width = max(len(INDENT * r.depth + r.name) for r in table) + 2
    lines = [title, f"  {'service':<13}{'span':<{name_width}}{'kind':<10}{'start ms':>9}{'dur ms':>9}"
                    f"{'waited ms':>11}  timeline ({total:.1f} ms)"]
    for r in table:
        waited = f"{r.wait_ms:.2f}" if r.wait_ms is not None else ""
        name = INDENT * r.depth + r.name + (" !" if r.failed else "")
        lines.append(f"  {r.service:<13}{name:<{name_width}}{r.kind:<10}{r.start_ms:>9.2f}{r.duration_ms:>9.2f}"
                     f"{waited:>11}  {_bar(r, total)}")
    return "\n".join(lines)
