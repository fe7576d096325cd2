"""py-spy beside the load: one sampler per service process for a window, while the bench's load
generator keeps the stack busy, and the CPU each process spent meanwhile (from /proc)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.common.cpu import cpu_all
from bench.common.load import Run

PY_SPY = str(Path(sys.executable).with_name("py-spy"))
# 100 samples/s per process: enough for stable shares over 10 s, and py-spy stays a few % of a core.
RATE_HZ = 100
# py-spy needs a moment after its window to write its output and exit.
SAMPLER_EXIT_S = 30.0

Load = Callable[[float], Awaitable[Run]]  # drives the stack for that many seconds


@dataclass
class Window:
    """One sampled window: what the load did, and each process's CPU seconds over it."""

    run: Run
    cpu_s: dict[str, float]


def _sampler(pid: int, seconds: float, fmt: str, output: Path) -> subprocess.Popen[bytes]:
    command = [PY_SPY, "record", "--pid", str(pid), "--duration", str(round(seconds)), "--rate", str(RATE_HZ),
               "--native", "--format", fmt, "--output", str(output)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _finish(samplers: Mapping[str, subprocess.Popen[bytes]]) -> None:
    for name, sampler in samplers.items():
        _, err = sampler.communicate(timeout=SAMPLER_EXIT_S)
        if sampler.returncode != 0:
            raise RuntimeError(f"py-spy on {name} failed: {err.decode(errors='replace')[-500:]}")


async def measured(load: Load, pids: Mapping[str, int], seconds: float) -> Window:
    """Run `load` for `seconds` unsampled: CPU per order as the stack spends it (py-spy pauses
    a process at each sample, which slows the load and skews a sampled window's CPU per order)."""
    before = cpu_all(pids)
    run = await load(seconds)
    after = cpu_all(pids)
    return Window(run, {name: after[name] - before[name] for name in pids})


async def sampled(load: Load, pids: Mapping[str, int], seconds: float, outputs: Mapping[str, Path],
                  fmt: str) -> Window:
    """Run `load` for `seconds` while py-spy samples each process of `pids` into outputs[name]
    in `fmt` ("raw" or "flamegraph"); the processes' CPU seconds over the window."""
    before = cpu_all(pids)
    samplers = {name: _sampler(pid, seconds, fmt, outputs[name]) for name, pid in pids.items()}
    try:
        run = await load(seconds)
        after = cpu_all(pids)
        await asyncio.to_thread(_finish, samplers)
    finally:
        for sampler in samplers.values():
            if sampler.poll() is None:
                sampler.kill()
    return Window(run, {name: after[name] - before[name] for name in pids})
