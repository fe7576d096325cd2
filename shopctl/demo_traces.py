"""Trace ids in the demos (TRACE=1): the demo is the caller of each order, so it starts the trace
itself, with a `traceparent` whose trace id is derived from the order's correlation id, and can
print it beside the order. Nothing is sent or printed when tracing is off."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

from shopctl import trace_cmd
from shoplib.observability import tracing

TRACE_ID_HEX = 32  # W3C trace ids: 16 bytes
SPAN_ID_BYTES = 8


def trace_id(correlation_id: str) -> str:
    return hashlib.sha256(correlation_id.encode()).hexdigest()[:TRACE_ID_HEX]


def metadata(correlation_id: str) -> tuple[tuple[str, str], ...]:
    """The `traceparent` of the demo's call (sampled), or nothing with tracing off."""
    if not tracing.wanted():
        return ()
    return (("traceparent", f"00-{trace_id(correlation_id)}-{secrets.token_hex(SPAN_ID_BYTES)}-01"),)


def print_trace_id(correlation_id: str) -> None:
    if tracing.wanted():
        print(f"  trace id {trace_id(correlation_id)}")


def print_hint(order_ids: Sequence[str]) -> None:
    """How to see the waterfalls, once the services are stopped (their spans are written then)."""
    shown = [order_id for order_id in order_ids if order_id]
    if tracing.wanted() and shown:
        print(f"\nWaterfalls (spans in {trace_cmd.trace_dir()}/): make trace ORDER={shown[0]}")
