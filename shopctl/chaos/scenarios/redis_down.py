"""5. Redis SIGKILLed and restarted (AOF on) several times while orders flow."""

from __future__ import annotations

import asyncio
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario, during_load

EARLIEST, LATEST = 0.15, 0.75
# While Redis is down a caller may only hear UNAVAILABLE: never UNKNOWN, INTERNAL or a timeout.
CODES = frozenset({"OK", "UNAVAILABLE"})
# After the last restart every service must report SERVING again within this (probe interval 1 s).
RECOVERY_S = 20.0
# Callers keep retrying their key through an outage: 10 attempts back off over about 6 s.
ATTEMPTS = 10
AOF_FIELDS = ("aof_enabled", "aof_delayed_fsync", "aof_last_write_status", "aof_last_bgrewrite_status")


async def _outages(run: Run, load: Recorder, orders: int, kills: int, down_s: float) -> list[tuple[float, float]]:
    windows = []
    for mark in sorted(run.rng.uniform(EARLIEST, LATEST) * orders for _ in range(kills)):
        if not await load.until(mark):
            break
        down = time.monotonic()
        await asyncio.to_thread(run.redis.kill)
        run.fault("redis_kill")
        await asyncio.sleep(down_s)
        await asyncio.to_thread(run.redis.start)
        windows.append((down, time.monotonic()))
    return windows


async def not_serving(run: Run) -> list[str]:
    """Workers that do not report SERVING within RECOVERY_S."""
    deadline, late = time.monotonic() + RECOVERY_S, []
    for label, worker in run.stack.workers.items():
        async with grpc.aio.insecure_channel(worker.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            while True:
                try:
                    # types-grpcio-health-checking declares HealthStub without its methods
                    reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=1)  # type: ignore[attr-defined]
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        break
                except grpc.aio.AioRpcError:
                    pass
                if time.monotonic() > deadline:
                    late.append(label)
                    break
                await asyncio.sleep(0.2)
    return late


async def redis_restarts(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: Redis without persistence (AOF off), so each restart comes back empty."""
    sizes = env.sizes
    async with env.run(aof=not control) as run:
        started = dict(run.pids)
        load = run.recorder(Workload(sizes.redis_orders, attempts=ATTEMPTS))
        outages = _outages(run, load, sizes.redis_orders, sizes.redis_kills, sizes.redis_down_s)
        windows, _ = await asyncio.gather(during_load(load, outages), load.run())
        judgement, _ = await run.judge(allowed_codes=CODES)
        judgement.failures += run.restarts(started)
        if late := await not_serving(run):
            run.fail("health", f"not SERVING again after Redis came back: {late}")
        felt = sum(1 for r in load.records if r.code == "UNAVAILABLE" and any(a <= r.start <= b for a, b in windows))
        if windows and felt:
            run.prove(f"Redis SIGKILLed {len(windows)}x for {sizes.redis_down_s}s; {felt} calls answered "
                      f"UNAVAILABLE meanwhile")
        persistence = await run.client.info("persistence")
        run.notes.update(outages=len(windows), unavailable_during_outages=felt,
                         aof={k: persistence.get(k) for k in AOF_FIELDS})
        return sc.outcome(run, judgement, control)
