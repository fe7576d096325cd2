"""The sync/events comparison: one stack, identical workloads through both modes, interleaved.

`python -m shopctl compare [--quick]` (make compare). runner.py starts the stack and hands a
Bench (bench.py: the sizes, the stack and its clients) to the scenarios: scenarios.py (mode
check, latency by requests in flight, time to outcome, payment slow) and outage.py (payment
down), helped by probes.py (CPU, stream backlog), restart.py (restarting a service mid-run) and
accounting.py (every order checked). report.py, tables.py and charts.py write
results/compare-<timestamp>/ (with records.csv and the service logs) and copy the summary to
results/latest/; progress.py keeps the terminal informed meanwhile.
"""
