"""18. The order service partitioned from Redis while PlaceOrder calls arrive (issue 23, third case).

Redis, each service and the load generator on hosts of their own (shopctl.chaos.hosted). Once a
share of the orders is in, the nemesis cuts order <-> redis both ways, silently (SYNs and segments
vanish; nothing tells the order service), for a few seconds under load, then heals it. The calls
carry a deadline shorter than the order service's own Redis timeouts, so only its deadline budget
(shoplib.calls.context) can answer them in time. Claims:
- every call is answered OK or UNAVAILABLE, within its deadline (never DEADLINE_EXCEEDED);
- the order service's readiness says NOT_SERVING during the partition, SERVING again after it;
- nothing half-written: after the drain every order in the store is complete and terminal, none
  duplicated, every accepted one there (the checker over the store and the history).
Control: thin_answer_reserve (each hop keeps 5 ms of its caller's deadline for its answer, as
before issue 19): the order service waits on Redis until 5 ms before the deadline and its
UNAVAILABLE arrives after the caller gave up: DEADLINE_EXCEEDED, caught as `codes`.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl.chaos.harness import Outcome
from shopctl.chaos.hosted import HostedRun
from shopctl.chaos.nemesis import full
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario, during_load
from shopctl.chaos.scenarios.redis_down import not_serving

ORDERS = {"full": 1500, "quick": 300, "control": 200}
# Long enough for the order service to see the partition (a command timeout, 2 s, or its 1 s
# connect timeout) and for its readiness to turn, with calls arriving all along.
PARTITION_S = {"full": 8.0, "quick": 6.0, "control": 6.0}
CUT_AT = 0.3  # of the orders: work before the partition and after it
# Per call: below the order service's Redis connect timeout (1 s) once the gateway's and its own
# answer reserves are taken, so every call that waits on Redis during the partition is answered
# by the deadline budget, not by a Redis timeout.
DEADLINE_S = 1.0
# Callers retry their key through the partition: backoff capped at 1 s, about 10 s in all.
ATTEMPTS = 14
# While cut off a caller may only hear UNAVAILABLE, within its deadline.
CODES = frozenset({"OK", "UNAVAILABLE"})
HEALTH_POLL_S = 0.2
HEALTH_TIMEOUT_S = 1.0


@dataclass
class Window:
    start: float = 0.0
    end: float = 0.0
    readiness: set[str] = field(default_factory=set)  # what the order service said while cut off


async def _watch(run: HostedRun, seen: set[str]) -> None:
    """Poll the order service's readiness (from the client host) until cancelled."""
    async with grpc.aio.insecure_channel(run.worker("order").address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                # types-grpcio-health-checking declares HealthStub without its methods
                reply = await stub.Check(health_pb2.HealthCheckRequest(),  # type: ignore[attr-defined]
                                         timeout=HEALTH_TIMEOUT_S)
                seen.add(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
            except grpc.aio.AioRpcError as exc:
                seen.add(exc.code().name)
            await asyncio.sleep(HEALTH_POLL_S)


async def _partition(run: HostedRun, load: Recorder, orders: int, seconds: float) -> Window:
    window = Window()
    if not await load.until(CUT_AT * orders):
        return window
    watch = asyncio.create_task(_watch(run, window.readiness))
    window.start = time.monotonic()
    try:
        await run.nemesis.hold(run.nemesis.partition(full(["order"], ["redis"])), seconds)
    finally:
        window.end = time.monotonic()
        watch.cancel()
        await asyncio.gather(watch, return_exceptions=True)
    return window


async def order_partitioned(sc: Scenario, env: Env, control: bool) -> Outcome:
    orders, seconds = ORDERS[env.sizes.name], PARTITION_S[env.sizes.name]
    async with HostedRun(env.log_dir, env.seed, {"FAULTS": "thin_answer_reserve"} if control else {}) as run:
        started = dict(run.pids)
        load = run.recorder(Workload(orders, timeout_s=DEADLINE_S, attempts=ATTEMPTS))
        window, _ = await asyncio.gather(during_load(load, _partition(run, load, orders, seconds)), load.run())
        judgement, _ = await run.judge(allowed_codes=CODES)
        judgement.failures += run.restarts(started)
        if late := await not_serving(run):
            run.fail("health", f"not SERVING again after the partition healed: {late}")
        _judge_window(run, load, window)
        return sc.outcome(run, judgement, control)


def _judge_window(run: HostedRun, load: Recorder, window: Window) -> None:
    during = [r for r in load.records if window.start <= r.start <= window.end]
    unavailable = [r.end - r.start for r in during if r.code == "UNAVAILABLE"]
    if window.start and "NOT_SERVING" not in window.readiness:
        run.fail("health", f"order readiness never NOT_SERVING while cut from Redis: {sorted(window.readiness)}")
    if window.start and unavailable:
        run.prove(f"order <-> redis cut for {window.end - window.start:.1f}s: {len(unavailable)} calls answered "
                  f"UNAVAILABLE in at most {max(unavailable):.2f}s of {DEADLINE_S}s, order readiness "
                  f"{sorted(window.readiness)}")
    run.notes.update(calls_during_partition=len(during), unavailable_during_partition=len(unavailable),
                     late_during_partition=sum(1 for r in during if r.code == "DEADLINE_EXCEEDED"),
                     readiness_during_partition=sorted(window.readiness))
