"""A payment worker that dies after its effect and before its ack: a second worker reclaims the
entry, finds the charge done, acknowledges it, and nothing is lost or done twice."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import redis
from shop.v1 import types_pb2

from payment_svc.consumers import GROUP
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib import catalogue
from tests.events.conftest import StackFactory
from tests.events.helpers import (
    ORDER_STREAM,
    PAYMENT_STREAM,
    WAIT_S,
    Clients,
    ledger_count,
    log_events,
    replace_payment,
    s,
    wait_caught_up,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("one_partition")]
CRASH_EXIT_CODE = 137  # shoplib.faults.crash() exits as a SIGKILL would


def _pending(store: redis.Redis) -> list[dict[str, object]]:
    return store.xpending_range(ORDER_STREAM, GROUP, min="-", max="+", count=100)


def test_worker_killed_between_effect_and_ack_is_reclaimed_without_double_charge(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        replace_payment(stack, "a", FAULTS="exit_after_effect=1")
        worker_a = stack.processes["payment"]

        order = clients.place(types_pb2.FLOW_MODE_EVENTS)
        assert worker_a.wait(WAIT_S) == CRASH_EXIT_CODE, "the fault did not fire"

        # The effect is committed, its entry is still pending to the dead worker.
        assert ledger_count(sync_redis, order.order_id) == 1
        [stuck] = _pending(sync_redis)
        assert (s(stuck["consumer"]), stuck["times_delivered"]) == ("payment-a", 1)

        replace_payment(stack, "b")
        wait_until(lambda: not _pending(sync_redis), what="worker b to reclaim and acknowledge the entry")

        assert clients.follow(order.order_id)[-1].status == types_pb2.ORDER_STATUS_PAID
        wait_caught_up(sync_redis)
        assert ledger_count(sync_redis, order.order_id) == 1
        assert clients.notification_kinds(order.order_id) == [
            types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]
        # The redelivery finds the charge done and publishes its first outcome again (in case it
        # never arrived): the same payment, never a second one.
        outcomes = [catalogue.decode(f)[1] for _, f in sync_redis.xrange(PAYMENT_STREAM)
                    if s(f[b"subject"]) == order.order_id]
        assert 1 <= len(outcomes) <= 2
        assert len({outcome.payment.payment_id for outcome in outcomes}) == 1, "a second payment was made"

        reclaimed = [e for e in log_events(stack.log_dir / "payment.log")
                     if e.get("event") == "consumer.reclaimed" and e.get("service") == "payment"]
        assert reclaimed, "worker b never logged consumer.reclaimed"
        assert stack.processes["payment"].poll() is None
