"""INSTANCES=2: two of every service as real processes, callers balancing over them (round_robin);
one order instance SIGKILLed under load, and the other carries on."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
import pytest
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

from shopctl import load
from shopctl.instances import ScaledStack
from shopctl.stack import StackError
from shoplib.calls import balancing

pytestmark = pytest.mark.e2e

LOAD_S = 3.0
KILL_AT_S = 1.0  # into the load: both order instances have taken calls by then
FOLLOW_S = 30.0  # an accepted order settles within this, or it was lost


async def drive_and_kill(stack: ScaledStack, victim: str) -> tuple[load.Run, float]:
    """Closed-loop events orders through both gateways; `victim` SIGKILLed KILL_AT_S in."""
    target = balancing.target(stack.addresses("gateway"))
    async with grpc.aio.insecure_channel(target, options=balancing.ROUND_ROBIN_OPTIONS) as channel:
        run = load.Run(load.Workload("events", concurrency=8, duration_s=LOAD_S, follow=True,
                                     follow_timeout_s=FOLLOW_S))
        driving = asyncio.create_task(load.drive(gw_grpc.GatewayServiceStub(channel), run))
        await asyncio.sleep(KILL_AT_S)
        killed_at = time.monotonic()
        stack.processes[victim].send_signal(signal.SIGKILL)
        return await driving, killed_at


async def settle(stack: ScaledStack, run: load.Run) -> None:
    """An order whose WatchOrder stream died with the victim is looked up again (GetOrder) until terminal."""
    target = balancing.target(stack.addresses("gateway"))
    async with grpc.aio.insecure_channel(target, options=balancing.ROUND_ROBIN_OPTIONS) as channel:
        stub, deadline = gw_grpc.GatewayServiceStub(channel), time.monotonic() + FOLLOW_S
        for record in (r for r in run.records if r.code == "OK" and r.settled is None):
            while record.settled is None and time.monotonic() < deadline:
                reply = await stub.GetOrder(gw.GetOrderRequest(order_id=record.order_id), timeout=FOLLOW_S)
                record.settled = time.monotonic() if reply.order.status in load.TERMINAL else None
                await asyncio.sleep(0 if record.settled else 0.1)


def test_killing_one_order_instance_under_load_loses_nothing(tmp_path: Path, redis_url: str) -> None:
    stack = ScaledStack(free_ports=True, log_dir=tmp_path, instances=2)
    stack.redis_url = redis_url
    with stack:
        run, killed_at = asyncio.run(drive_and_kill(stack, "order-2"))
        assert stack.processes["order-2"].poll() == -signal.SIGKILL
        asyncio.run(settle(stack, run))
        stack.check_running("while the stack was up")  # `make up` carries on: order has an instance left
        stack.processes["order"].send_signal(signal.SIGKILL)
        stack.processes["order"].wait()
        with pytest.raises(StackError, match="order"):  # ...and stops once no order instance is left
            stack.check_running("while the stack was up")
    codes = {record.code for record in run.records}
    assert codes <= {"OK", "UNAVAILABLE"}, codes  # a call that died with the victim is retryable
    accepted = [record for record in run.records if record.code == "OK"]
    assert [r.key for r in accepted if r.settled is None] == []  # every accepted order reached its outcome
    after_kill = [r for r in accepted if r.start > killed_at + 0.5]
    assert len(after_kill) >= 10  # the surviving instance carried on
