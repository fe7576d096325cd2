"""Where each service's CPU goes under load, per mode: flame graphs and a table of shares.

    .venv/bin/python -m bench.profile [--seconds S] [--modes sync events]     (make profile)

For each mode, the real stack (shopctl.stack.Stack, private Redis, free ports) is driven by the
benches' own load generator (sync: IN_FLIGHT requests in flight, closed loop; events: an open loop
at a rate the stack carries, so that the consumers keep up and every service's CPU belongs to the
orders of the same window). py-spy (`--native`, so gRPC's C core and protobuf's upb show as
themselves) is attached to the four service processes twice, S seconds each: once for raw
collapsed stacks, bucketed into gRPC, protobuf, our handlers, commit, logging, metrics, event loop,
interceptors and other (buckets.py), once for an SVG flame graph. /proc gives each service's CPU
per order over the raw window; the shares split it.

Writes results/profile/<mode>/<service>.svg, <service>.txt (collapsed stacks and the hottest
frames) and results/profile/<mode>/shares.md (the table); prints the tables.

Where: __main__.py drives; sampling.py runs py-spy beside the load; buckets.py classifies frames;
report.py writes the tables and summaries.
"""
