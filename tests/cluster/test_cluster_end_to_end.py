"""The same stack on a real 3-master Redis Cluster (REDIS_CLUSTER=1): both modes reach the same end
state as on one Redis, every key of an order lives in one slot, and the orders spread over all
three masters."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from shop.v1 import types_pb2

from notification_svc.adapters import notes_key
from order_svc.adapters import PENDING, order_key, pending_key, redriven_key
from payment_svc.adapters import ledger_key, payment_key
from shopctl.local_redis.cluster import LocalCluster
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.store import outage, partitions
from shoplib.streams import failures
from shoplib.streams.settings import DEAD_LETTERS
from tests.events.conftest import running_stack
from tests.events.helpers import Clients, ledger_count, wait_caught_up
from tests.events.test_end_to_end import EXPECTED, LINES, _final_status

pytestmark = [pytest.mark.e2e]
# Orders placed to see the spread: with 16 partitions over 3 masters, 30 random keys miss a
# master with a probability far below one in a million.
SPREAD_ORDERS = 30


@pytest.fixture(scope="module")
def stack(redis_cluster_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(redis_cluster_url, tmp_path_factory.mktemp("cluster-stack"), REDIS_CLUSTER="1") as running:
        yield running


@pytest.fixture(scope="module")
def store(redis_cluster_url: str) -> Iterator[RedisCluster]:
    client = RedisCluster.from_url(redis_cluster_url)
    yield client
    client.close()


@pytest.fixture(scope="module")
def clients(stack: Stack) -> Iterator[Clients]:
    with contextlib.closing(Clients.of(stack)) as made:
        yield made


def order_keys(order_id: str) -> list[str]:
    """Every key and stream one order touches, by the services' own key functions."""
    p = partitions.partition_of_order(order_id)
    streams = [partitions.stream(name, p) for name in
               (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS, catalogue.NOTIFICATION_EVENTS, DEAD_LETTERS)]
    return [order_key(order_id), payment_key(order_id), ledger_key(p), notes_key(order_id), notes_key(order_id, "1"),
            *[pending_key(mode, p) for mode in PENDING], redriven_key(p), failures.key("any-group", p), *streams]


@pytest.mark.parametrize("mode", [types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS], ids=["sync", "events"])
def test_each_mode_reaches_the_same_end_state_on_a_cluster(mode: int, clients: Clients, store: RedisCluster) -> None:
    """A paid and a declined order: terminal status, one charge, one notification of each kind."""
    placed = {outcome: clients.place(mode, LINES[outcome]) for outcome in EXPECTED}
    statuses = {outcome: _final_status(clients, mode, order) for outcome, order in placed.items()}
    wait_caught_up(store)  # type: ignore[arg-type]  # RedisCluster serves the same single-key commands
    for outcome, order in placed.items():
        end_state = (statuses[outcome], clients.payment_of(order.order_id).status,
                     clients.notification_kinds(order.order_id))
        assert end_state == EXPECTED[outcome], outcome
        assert clients.get(order.order_id).status == EXPECTED[outcome][0]
        assert ledger_count(store, order.order_id) == 1  # type: ignore[arg-type]


def test_every_key_of_an_order_is_in_one_slot(clients: Clients, store: RedisCluster) -> None:
    order = clients.place(types_pb2.FLOW_MODE_EVENTS)
    clients.follow(order.order_id)
    slots = {key: store.cluster_keyslot(key) for key in order_keys(order.order_id)}
    assert len(set(slots.values())) == 1, slots
    assert store.exists(order_key(order.order_id), payment_key(order.order_id)) == 2


def test_orders_spread_over_all_three_masters(clients: Clients, store: RedisCluster,
                                              redis_cluster: LocalCluster) -> None:
    orders = [clients.place(types_pb2.FLOW_MODE_SYNC).order_id for _ in range(SPREAD_ORDERS)]
    owners = {store.get_node_from_key(order_key(order_id)).port for order_id in orders}
    assert owners == set(redis_cluster.masters())
    assert all(store.get(order_key(order_id)) is not None for order_id in orders)


def test_the_stack_log_shows_no_cross_slot_refusal(stack: Stack) -> None:
    logs = "".join(path.read_text(errors="replace") for path in Path(stack.log_dir).glob("*.log"))
    assert "CROSSSLOT" not in logs and "non local key" not in logs


async def test_the_write_probe_writes_on_every_master(redis_cluster_url: str, store: RedisCluster,
                                                      redis_cluster: LocalCluster) -> None:
    """So a failed master closes the gate (NOT_SERVING, consumers hold), as a failed Redis does."""
    client = AsyncRedisCluster.from_url(redis_cluster_url)
    try:
        await outage.write_probe(cast(aioredis.Redis, client), "health:probe-test")()
    finally:
        await client.aclose()
    written = [partitions.key("health:probe-test", p) for p in partitions.every()]
    assert all(store.exists(key) for key in written)
    assert {store.get_node_from_key(key).port for key in written} == set(redis_cluster.masters())
