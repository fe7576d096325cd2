"""Both modes, through the gateway of a real stack, leave the same end state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from shop.v1 import types_pb2

from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib import catalogue
from tests.events.conftest import running_stack
from tests.events.helpers import (
    DECLINED_LINES,
    PAID_LINES,
    Clients,
    entries,
    ledger_count,
    wait_caught_up,
    wait_until,
)

pytestmark = pytest.mark.e2e

# What every order must end with, whatever the mode: (order status, payment status, kinds sent).
EXPECTED = {
    "paid": (types_pb2.ORDER_STATUS_PAID, types_pb2.PAYMENT_STATUS_SUCCEEDED,
             [types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT]),
    "declined": (types_pb2.ORDER_STATUS_PAYMENT_DECLINED, types_pb2.PAYMENT_STATUS_DECLINED,
                 [types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED]),
}
LINES = {"paid": PAID_LINES, "declined": DECLINED_LINES}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    server = LocalRedis().start()
    try:
        with running_stack(server.url, Path(tmp_path_factory.mktemp("e2e-logs"))) as running:
            yield running
    finally:
        server.close()


@pytest.fixture(scope="module")
def store(stack: Stack) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(stack.redis_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def clients(stack: Stack) -> Iterator[Clients]:
    made = Clients.of(stack)
    yield made
    made.close()


def _final_status(clients: Clients, mode: int, placed: types_pb2.Order) -> int:
    if mode == types_pb2.FLOW_MODE_SYNC:  # the chain ran inside the call: the answer is final
        return placed.status
    assert placed.status == types_pb2.ORDER_STATUS_PENDING  # stored and published, not yet paid
    return clients.follow(placed.order_id)[-1].status


@pytest.mark.parametrize("mode", [types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS], ids=["sync", "events"])
def test_each_mode_reaches_the_same_end_state(mode: int, clients: Clients, store: redis.Redis) -> None:
    """A paid and a declined order: terminal status, one charge, one notification of each kind."""
    placed = {outcome: clients.place(mode, LINES[outcome]) for outcome in EXPECTED}
    statuses = {outcome: _final_status(clients, mode, order) for outcome, order in placed.items()}
    wait_caught_up(store)

    for outcome, order in placed.items():
        order_id = order.order_id
        end_state = (statuses[outcome], clients.payment_of(order_id).status, clients.notification_kinds(order_id))
        assert end_state == EXPECTED[outcome], outcome
        assert clients.get(order_id).status == EXPECTED[outcome][0]
        assert ledger_count(store, order_id) == 1, f"{outcome} order charged {ledger_count(store, order_id)} times"


def test_events_mode_publishes_one_event_per_fact(clients: Clients, store: redis.Redis) -> None:
    """One OrderPlaced, one payment outcome and two NotificationSent per events-mode order."""
    order = clients.place(types_pb2.FLOW_MODE_EVENTS)
    clients.follow(order.order_id)
    wait_caught_up(store)
    wait_until(lambda: len(clients.notification_kinds(order.order_id)) == 2, what="both notifications")

    def types_for(stream: str) -> list[str]:
        return [f[b"type"].decode() for _, f in entries(store, stream) if f[b"subject"].decode() == order.order_id]

    assert types_for(catalogue.ORDER_EVENTS) == ["shop.order.placed.v1"]
    assert types_for(catalogue.PAYMENT_EVENTS) == ["shop.payment.succeeded.v1"]
    assert types_for(catalogue.NOTIFICATION_EVENTS) == ["shop.notification.sent.v1"] * 2
