"""Metrics and traces: Prometheus families, the OpenTelemetry set-up, the span file, and the spans
of work done for an order after its request. May import shoplib's root, shoplib.store (partitions,
the outage gate) and shoplib.streams (the ops view's figures, trace context names)."""
