"""How long each phase of a comparison may take: the time its sizes plan for, with room for a busy host.

A phase's bound is SLACK times what it plans (the load's own seconds, from the sizes) plus FLOOR_S
for what does not scale with them (connections, drains, restarts). Measured on 2 shared cores
(full size, load average ~5): the latency phase took 67 s of its 48 planned (1.4x), payment down
35 s of 92, the whole run 178 s against the 1218 s that the bounds add up to.
"""

from __future__ import annotations

from shopctl.compare.bench import Sizes
from shopctl.stack import READY_TIMEOUT_S

SLACK = 3.0  # a 2-core host shared with other work ran phases up to 1.4x their plan
FLOOR_S = 60.0  # connections, drains, service restarts: seconds each phase needs at any size
MODES = 2


def planned_s(phase: str, sizes: Sizes) -> float:
    """The seconds of load `phase` drives at these sizes (0 for a phase that drives none)."""
    outcome = sizes.rounds * MODES * sizes.outcome_s
    return {
        "stack start": 0.0,
        "mode check": 0.0,
        "warm-up": MODES * sizes.warm_up_s,
        "latency": len(sizes.levels) * sizes.rounds * MODES * sizes.round_s,
        "time to outcome": outcome,
        "payment slow": outcome,
        "payment down": MODES * (sizes.down_run_s + sizes.drain_timeout_s),
        "dead letters": 0.0,
        "breakdown": 0.0,
        "report": 0.0,
    }[phase]


def bound_s(phase: str, sizes: Sizes) -> float:
    """The most `phase` may take before the run is stopped; a stack start waits up to READY_TIMEOUT_S."""
    floor = FLOOR_S + READY_TIMEOUT_S if phase in ("stack start", "breakdown") else FLOOR_S
    return SLACK * planned_s(phase, sizes) + floor
