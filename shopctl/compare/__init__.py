"""The sync/events comparison: one stack, identical workloads through both modes, interleaved.

`python -m shopctl compare [--quick] [--save]` (make compare [SAVE=1]). runner.py starts the stack and hands a
Bench (bench.py: the sizes, the stack and its clients) to the scenarios: scenarios.py (mode
check, latency by requests in flight, time to outcome, payment slow) and outage.py (payment
down), helped by probes.py (CPU, stream backlog), restart.py (restarting a service mid-run) and
accounting.py (every order checked). watchdog.py bounds every phase (budgets.py says how long
each may take) and ends an overstaying run with a message and a non-zero exit. report.py,
tables.py and charts.py write results/runs/compare-<timestamp>/ (with records.csv and the
service logs; untracked) and, with --save, copy the summary to results/latest/; progress.py keeps
the terminal informed meanwhile.
"""
