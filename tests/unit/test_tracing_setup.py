"""Tracing is off unless the environment asks for it, and the wait of an entry is read from its id."""

from __future__ import annotations

import pytest

from shoplib.calls import traced
from shoplib.observability import tracing
from shoplib.streams import trace_context


@pytest.mark.parametrize(("env", "wanted"), [
    ({}, False),
    ({"TRACE_DIR": "/tmp/spans"}, True),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, True),
    ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, True),
    ({"TRACE_DIR": "/tmp/spans", "OTEL_SDK_DISABLED": "true"}, False),
])
def test_tracing_is_wanted_only_with_an_endpoint_or_a_trace_dir(monkeypatch: pytest.MonkeyPatch,
                                                                 env: dict[str, str], wanted: bool) -> None:
    for name in ("TRACE_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert tracing.wanted() is wanted


def test_with_tracing_off_nothing_is_installed_and_envelopes_carry_no_traceparent() -> None:
    """The test process never configures tracing (only service processes do)."""
    assert not tracing.active()
    assert traced.server_interceptors() == [] and traced.client_interceptors() == []
    from shop.v1 import events_pb2, types_pb2

    from shoplib import catalogue

    envelope = catalogue.wrap(events_pb2.OrderPlaced(order=types_pb2.Order(order_id="ord_p1_abc")), "/tests")
    trace_context.inject(envelope)
    assert envelope.traceparent == ""


def test_an_entry_waited_from_its_id_timestamp_to_the_read() -> None:
    assert trace_context.wait_ms("1700000000000-7", now_ms=1700000000250.5) == 250.5
    assert trace_context.wait_ms("1700000000000-0", now_ms=1699999999999.0) == 0.0  # clocks a hair apart
