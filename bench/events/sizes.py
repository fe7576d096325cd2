"""How big a run is (full or --quick), and the bounds of its waits."""

from __future__ import annotations

from dataclasses import dataclass

from bench.common.load import LatencySizes

LIGHT_RATE = 100.0  # orders/s of an open-loop run far below capacity, for the unloaded latency
STEADY_SKIP_S = 1.0  # the first second of a saturating run is ramp-up, not steady state
OPEN_LOOP_MAX_IN_FLIGHT = 2000  # an open-loop request past this many outstanding is counted as skipped
POLL_S = 0.01  # how often drain progress is looked at
STALL_S = 5.0  # no progress for this long: a consumer is stuck or dead; stop waiting for it


@dataclass(frozen=True)
class Sizes(LatencySizes):
    rate: float  # open-loop offered rate, orders/s...
    rate_s: float  # ...for this long
    backlog: int  # OrderPlaced entries pre-filled for the consumer-alone measurement
    settle_s: float  # the most we wait for a backlog to be processed


FULL = Sizes(warm_up=100, serial=1000, burst_warm_up=256, burst_max=50_000, burst_s=6.0,
             rate=500.0, rate_s=6.0, backlog=20_000, settle_s=60.0)
QUICK = Sizes(warm_up=20, serial=100, burst_warm_up=64, burst_max=5_000, burst_s=2.0,
              rate=500.0, rate_s=2.0, backlog=3_000, settle_s=20.0)
