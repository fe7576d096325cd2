"""An open-loop load: one PlaceOrder every 1/rate s, whatever the answers do."""

from __future__ import annotations

import asyncio
import time

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.load import CALL_TIMEOUT_S, Call, Run, gateway_call
from bench.events.sizes import OPEN_LOOP_MAX_IN_FLIGHT


async def open_loop(call: Call, rate: float, duration_s: float) -> Run:
    """Latency counts from the scheduled start, so a client that falls behind cannot hide the
    server's slowness."""
    run, outstanding = Run(started_wall=time.time()), set[asyncio.Task[None]]()
    started = time.perf_counter()
    for i in range(int(rate * duration_s)):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(outstanding) >= OPEN_LOOP_MAX_IN_FLIGHT:
            run.skipped += 1
            continue
        task = asyncio.create_task(_one(call, run, scheduled, run.started_wall - started))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    if outstanding:
        await asyncio.wait(outstanding, timeout=CALL_TIMEOUT_S)
    run.elapsed_s = time.perf_counter() - started
    return run


async def _one(call: Call, run: Run, scheduled: float, wall_of: float) -> None:
    """One call, recorded in `run`; `wall_of` turns perf_counter into time.time()."""
    try:
        reply = await call()
    except grpc.aio.AioRpcError:
        run.errors += 1
        return
    run.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
    run.placed[reply.order.order_id] = wall_of + scheduled


async def open_loop_run(address: str, rate: float, duration_s: float) -> Run:
    """An events-mode open loop against the gateway at `address`."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = gateway_call(gw_grpc.GatewayServiceStub(channel), types_pb2.FLOW_MODE_EVENTS)
        return await open_loop(call, rate, duration_s)
