"""Issue 19, case 1: a wall-clock step of every service, back or forward by an hour, neither
strands an order nor resumes or re-drives one early, in either mode.

Real processes whose wall clocks follow an offset file (libfaketime, shopctl.faketime), a real
Redis whose clock does not move, payment SIGSTOPped while the orders are placed and the clocks
step. The orders' "due" times are written and compared on Redis's clock, so they are due at the
same real moment whatever the services' clocks say. Control: CLOCK_STEP_CONTROL=1 runs the same
test with FAULTS=process_clock (the wall-clock comparison of before issue 19); it must fail (a
back step strands the sync orders for an hour, a forward one resumes them at once).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import redis
from shop.v1 import gateway_service_pb2, types_pb2

from order_svc.adapters import pending_key, redriven_key
from order_svc.reconciler import INTERVAL_S
from shopctl import faketime
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from tests.events.conftest import StackFactory
from tests.events.helpers import PAID_LINES, TERMINAL, Clients, new_id, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_partition")]  # the pending list of partition 0

HOUR_S = 3600
ORDERS = 4  # of each mode, per step
# A sync order is resumed this long after it was placed; events orders are re-driven only after
# REDRIVE_AFTER_MS, far beyond this test: a re-drive here is one made early.
RESUME_AFTER_MS = 12_000
REDRIVE_AFTER_MS = 120_000
PLACE_TIMEOUT_S = 2.0  # sync PlaceOrder with payment stopped: stored PENDING, then the deadline
# Payment stays stopped this long after the step: a reconciler round (INTERVAL_S) then runs on the
# stepped clock while nothing can settle an order, so an early resume or re-drive happens.
AFTER_STEP_S = INTERVAL_S + 1.0
# A resumed order completes within one reconciler round plus the chain's calls after it is due;
# the rest is margin for a loaded 2-core host (measured: about 1 s on a quiet one).
RESUME_SLACK_S = INTERVAL_S + 13.0
# A resume before this is early: due time less a margin for the reconciler reading the order
# a little before the test's clock says it was placed.
EARLY_S = RESUME_AFTER_MS / 1000 - 1.0
CONTROL = os.environ.get("CLOCK_STEP_CONTROL") == "1"


def _place(clients: Clients, mode: int) -> None:
    request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=new_id("key"), customer_id=new_id("cust"),
                                                    lines=PAID_LINES, mode=mode)
    try:
        clients.gateway.PlaceOrder(request, timeout=PLACE_TIMEOUT_S)
    except grpc.RpcError as exc:  # sync, payment stopped: the order is stored PENDING all the same
        assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED), exc


def _pending(client: redis.Redis, mode: int) -> set[str]:
    return {m.decode() for m in client.zrange(pending_key(mode, 0), 0, -1)}


def _settled(clients: Clients, orders: set[str]) -> set[str]:
    return {o for o in orders if clients.get(o).status in TERMINAL}


def _step_with_orders_pending(stack: Stack, clients: Clients, client: redis.Redis, offset: Path,
                              offset_s: int) -> tuple[set[str], set[str], float]:
    """Payment stopped, ORDERS of each mode placed (all PENDING), every service's wall clock stepped
    to real + offset_s, payment continued after a reconciler round: (sync, events orders, placed at)."""
    before = {mode: _pending(client, mode) for mode in (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS)}
    stack.signal_service("payment", signal.SIGSTOP)
    try:
        placed_at = time.monotonic()
        with ThreadPoolExecutor(ORDERS * 2) as pool:
            list(pool.map(lambda mode: _place(clients, mode), [types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS]
                          * ORDERS))
        sync, events = (_pending(client, mode) - before[mode] for mode in before)
        assert len(sync) == len(events) == ORDERS, (sync, events)
        faketime.step(offset, offset_s)
        time.sleep(AFTER_STEP_S)
    finally:
        stack.signal_service("payment", signal.SIGCONT)
    return sync, events, placed_at


def _resumed_on_time(clients: Clients, sync: set[str], placed_at: float) -> None:
    """Not one sync order settled before it was due; all of them within a round of it."""
    while (age := time.monotonic() - placed_at) < EARLY_S:
        early = _settled(clients, sync)
        assert not early, f"{len(early)} of {ORDERS} sync orders resumed {age:.1f}s after placing, before due"
        time.sleep(0.2)
    due_s = RESUME_AFTER_MS / 1000 - (time.monotonic() - placed_at)
    wait_until(lambda: _settled(clients, sync) == sync, within_s=due_s + RESUME_SLACK_S,
               what="the sync orders resumed by the reconciler at their due time")


@pytest.mark.parametrize("offset_s", [-HOUR_S, +HOUR_S], ids=["back", "forward"])
def test_a_wall_clock_step_neither_strands_orders_nor_resumes_them_early(
        offset_s: int, local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients], tmp_path: Path) -> None:
    offset = tmp_path / "clock-offset"
    env = {**faketime.env(offset), "ORDER_RESUME_AFTER_MS": str(RESUME_AFTER_MS),
           "ORDER_REDRIVE_AFTER_MS": str(REDRIVE_AFTER_MS), **({"FAULTS": "process_clock"} if CONTROL else {})}
    with stack_on(local_redis.url, **env) as stack:
        clients = clients_of(stack)
        sync, events, placed_at = _step_with_orders_pending(stack, clients, sync_redis, offset, offset_s)
        _resumed_on_time(clients, sync, placed_at)
        wait_until(lambda: _settled(clients, events) == events, what="the events orders, consumed")
        assert _pending(sync_redis, types_pb2.FLOW_MODE_SYNC) == set()
        assert int(sync_redis.get(redriven_key(0)) or 0) == 0, "events orders re-driven before due"
        assert all(clients.get(o).status == types_pb2.ORDER_STATUS_PAID for o in sync | events)
