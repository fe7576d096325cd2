"""What a comparison run is given: its sizes, and the stack and clients every scenario needs.

runner.py builds a Bench and hands it to scenarios.py and outage.py; those import it from here,
so they never import the runner that calls them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2_grpc as nt_grpc

from shopctl.compare.progress import Progress
from shopctl.load import Run
from shopctl.stack import Stack


@dataclass(frozen=True)
class Sizes:
    name: str
    warm_up_s: float  # per mode, before anything is measured
    levels: tuple[int, ...]  # requests in flight of the latency scenario
    rounds: int  # per level and mode, alternating which mode goes first
    round_s: float
    rate: float  # orders/s of the open loop (time to outcome, payment slow, payment down)
    outcome_s: float  # per round and mode
    delay_ms: int  # PAYMENT_DELAY_MS of the payment-slow scenario
    down_run_s: float  # the payment-down run, per mode...
    down_at_s: float  # ...payment stopped this far in...
    down_for_s: float  # ...and started again this much later
    drain_timeout_s: float  # the most any backlog may take to clear before it counts as lost


# Each mode gets the same load; the full size fits in about three minutes on 2 cores.
FULL = Sizes("full", warm_up_s=3, levels=(1, 16, 64), rounds=2, round_s=4, rate=40, outcome_s=5, delay_ms=50,
             down_run_s=16, down_at_s=4, down_for_s=5, drain_timeout_s=30)
QUICK = Sizes("quick", warm_up_s=1, levels=(1, 16), rounds=1, round_s=1.5, rate=30, outcome_s=2, delay_ms=50,
              down_run_s=6, down_at_s=1.5, down_for_s=2, drain_timeout_s=15)


@dataclass
class Bench:
    """What every scenario needs: the stack, clients, sizes and the progress line."""

    stack: Stack
    sizes: Sizes
    gateway: gw_grpc.GatewayServiceAsyncStub
    notifier: nt_grpc.NotificationServiceAsyncStub
    redis: aioredis.Redis
    progress: Progress
    journal: list[tuple[str, Run]] = field(default_factory=list)  # every measured run, for records.csv
