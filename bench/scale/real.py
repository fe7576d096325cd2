"""The real stack of a setup: shopctl.instances.ScaledStack in events mode, on a private Redis or
cluster of its own, measured by bench.scale.run."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.scale.run import Result, Setup, Sizes, Target, measure, server_pids
from shopctl.instances import ScaledStack


def measure_real(setup: Setup, sizes: Sizes) -> Result:
    env = {"REDIS_CLUSTER": "1" if setup.clustered else "0", "REDIS_WAIT_REPLICAS": str(setup.wait_replicas)}
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as logs:
        stack = ScaledStack(free_ports=True, log_dir=Path(logs), env=env, instances=setup.instances)
        stack.redis_url = ""  # a private Redis or cluster per setup, whatever REDIS_URL says
        with stack:
            servers = list(stack.cluster.nodes) if stack.cluster else [stack.redis] if stack.redis else []
            pids = {name: process.pid for name, process in stack.processes.items()} | server_pids(servers)
            return measure(setup, "real", Target(stack.addresses("gateway"), pids, servers), sizes)
