"""Tracing setup: OpenTelemetry's SDK, off unless asked for.

On when OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, spans then go
there by OTLP gRPC; or when TRACE_DIR is set, spans then also go to `TRACE_DIR/<service>-<pid>.jsonl`
(shoplib.observability.span_file, read by `make trace`). OTEL_SDK_DISABLED=true wins over both. Sampling
(OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG), batching (OTEL_BSP_*) and the OTLP exporter
(OTEL_EXPORTER_OTLP_*) read their standard variables themselves.

Off, nothing of the SDK is imported, no interceptor is installed, and `active()` is False: the
hooks in the hot paths cost one boolean test each.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from opentelemetry import trace

from shoplib import log

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

INSTRUMENTATION = "shop"
_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None
_parent_based = False  # the sampler honours the caller's decision (see `dropped`)
_logger = log.get("shoplib.observability.tracing")


def _endpoint() -> str:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "")


def wanted() -> bool:
    """Whether the environment asks for traces (an OTLP endpoint or a TRACE_DIR, and the SDK not disabled)."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(_endpoint() or os.environ.get("TRACE_DIR"))


def active() -> bool:
    """True once `configure` installed a tracer provider in this process."""
    return _provider is not None


def configure(service: str) -> bool:
    """Install the SDK's tracer provider for `service` when `wanted()`; True when it did."""
    global _provider, _parent_based
    if _provider is not None or not wanted():
        return _provider is not None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    # service.name is always the service's own (one OTEL_SERVICE_NAME for a whole stack would merge
    # four services into one); OTEL_RESOURCE_ATTRIBUTES adds the rest. Sampler: OTEL_TRACES_SAMPLER.
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    _parent_based = isinstance(provider.sampler, ParentBased)
    if _endpoint():
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_dir := os.environ.get("TRACE_DIR"):
        from shoplib.observability.span_file import JsonLinesExporter

        path = Path(trace_dir) / f"{service}-{os.getpid()}.jsonl"
        provider.add_span_processor(BatchSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(provider)
    _provider = provider
    _logger.info("tracing.on", otlp=bool(_endpoint()), trace_dir=trace_dir or None)
    return True


def shutdown() -> None:
    """Export what is still batched (at a service's stop)."""
    global _provider, _tracer
    if _provider is not None:
        _provider.shutdown()
        _provider, _tracer = None, None


def dropped(parent: trace.SpanContext) -> bool:
    """True under a parent that was not sampled, with a parent-based sampler (the default), which
    would drop its children: ours then make no span at all and pass the parent's context on as it
    is (the trace id still travels; a 10 % sampled stack costs little more than one untraced)."""
    return _parent_based and parent.is_valid and not parent.trace_flags.sampled


def current_dropped() -> bool:
    return dropped(trace.get_current_span().get_span_context())


@contextlib.contextmanager
def on(service: str) -> Iterator[None]:
    """`configure(service)` for the body; at its end, what is still batched is exported."""
    configure(service)
    try:
        yield
    finally:
        shutdown()


def tracer() -> trace.Tracer:
    """The tracer of our spans; made once (the SDK's get_tracer costs ~20 µs a call)."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(INSTRUMENTATION)
    return _tracer
