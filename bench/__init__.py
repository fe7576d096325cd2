"""Speed figures of the two pipelines, each beside a bare baseline measured in the same run.

`python -m bench.sync_chain [--quick]` (make bench) and `python -m bench.events [--quick]`
(make bench-events), run from the repository root. common/ holds what both share: the bare
baseline servers and their processes, the closed-loop load and its percentiles, CPU accounting.
"""
