"""Storing an order and publishing its OrderPlaced is one atomic step: the stream is the outbox.

Redis runs a script to the end without interleaving, so "one step" is proved by showing both
writes travel in one script call, then by the property that matters: whatever happens (many
concurrent requests, the order service SIGKILLed under load), the orders stored and the
OrderPlaced events published name exactly the same order ids.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import Callable

import grpc
import pytest
import redis
import redis.asyncio as aioredis
from shop.v1 import order_service_pb2, types_pb2

from order_svc import bootstrap as order_bootstrap
from order_svc import handlers
from order_svc.adapters import OrderUnitOfWork, order_key
from order_svc.bootstrap import SOURCE
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack, wait_serving
from shoplib import catalogue
from shoplib.commit.committers import PipelinedCommitter, RedisCommitter
from shoplib.commit.unit_of_work import StreamPublisher
from shoplib.commit.writes import Committer, Writes
from shoplib.store import connections
from tests.events.conftest import StackFactory
from tests.events.helpers import (
    PAID_LINES,
    TERMINAL,
    WAIT_S,
    Clients,
    Load,
    in_partition,
    ledger_count,
    new_id,
    order_keys,
    subjects,
    wait_caught_up,
    wait_until,
)

# Orders placed around the kill: enough that calls are in flight when it lands.
ORDERS_BEFORE_KILL = 20
ORDERS_AFTER_RESTART = 20


def _request(key: str | None = None) -> order_service_pb2.CreateOrderRequest:
    return order_service_pb2.CreateOrderRequest(idempotency_key=key or new_id("key"), customer_id=new_id("cust"),
                                                lines=PAID_LINES, mode=types_pb2.FLOW_MODE_EVENTS)


def _events_uow(client: aioredis.Redis, committer: Committer) -> OrderUnitOfWork:
    return order_bootstrap.unit_of_work(reader=client, committer=committer, publisher=StreamPublisher(SOURCE))


async def _monitor(url: str, action: Callable[[], object]) -> list[dict[str, str]]:
    """Every command Redis executed while `action` ran, as MONITOR reports them."""
    marker = f"end-{uuid.uuid4().hex}"
    watcher, marker_client = aioredis.Redis.from_url(url), aioredis.Redis.from_url(url)
    seen: list[dict[str, str]] = []
    try:
        async with watcher.monitor() as monitor:
            await action()  # type: ignore[misc]
            await marker_client.echo(marker)
            while not seen or marker not in seen[-1]["command"]:
                seen.append(await asyncio.wait_for(monitor.next_command(), WAIT_S))
    finally:
        await watcher.aclose()
        await marker_client.aclose()
    return seen


@pytest.mark.parametrize("make_committer", [RedisCommitter, PipelinedCommitter])
async def test_order_and_its_event_are_written_by_one_script_call(
        make_committer: Callable[[aioredis.Redis], Committer], local_redis: LocalRedis,
        async_redis: aioredis.Redis) -> None:
    committer = make_committer(async_redis)
    await committer.commit(Writes())  # loads the script, so the call below is a single EVALSHA
    placed: list[types_pb2.Order] = []

    async def place() -> None:
        placed.append(await handlers.place_order(_request(), _events_uow(async_redis, committer)))

    commands = await _monitor(local_redis.url, place)
    order_id = placed[0].order_id
    by_client = [c["command"] for c in commands if c["client_type"] != "lua"]
    by_script = [c["command"] for c in commands if c["client_type"] == "lua"]

    assert [c.split()[0] for c in by_client if c.split()[0] in {"EVALSHA", "EVAL"}] == ["EVALSHA"]
    assert not [c for c in by_client if c.split()[0] in {"SET", "XADD", "MULTI", "EXEC"}], by_client
    assert any(c.startswith(f"SET {order_key(order_id)} ") for c in by_script), by_script
    assert any(c.startswith(f"XADD {in_partition(catalogue.ORDER_EVENTS, order_id)} ") and order_id in c
               for c in by_script), by_script
    evalsha = next(i for i, c in enumerate(commands) if c["command"].startswith("EVALSHA"))
    script_run = commands[evalsha + 1:evalsha + 1 + len(by_script)]
    assert all(c["client_type"] == "lua" for c in script_run), "script writes were interleaved with others"


async def test_concurrent_placements_store_exactly_the_orders_they_publish(
        local_redis: LocalRedis, sync_redis: redis.Redis) -> None:
    """100 keys, each sent twice at once: 100 orders, 100 events, both answers name the same order."""
    client = connections.connect(local_redis.url)  # wired as the order service wires its own
    committer = PipelinedCommitter(client)
    requests = [_request(new_id("key")) for _ in range(100)]
    try:
        replies = await asyncio.gather(*(handlers.place_order(r, _events_uow(client, committer))
                                         for r in requests + requests))
    finally:
        await client.aclose()

    first, second = replies[:100], replies[100:]
    assert [o.order_id for o in first] == [o.order_id for o in second]
    published = subjects(sync_redis, catalogue.ORDER_EVENTS)
    assert len(published) == len(set(published)) == 100
    assert order_keys(sync_redis) == set(published) == {o.order_id for o in first}


@pytest.mark.e2e
def test_order_service_killed_under_load_leaves_no_order_without_its_event(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        with Load(clients) as load:
            wait_until(lambda: len(load.ok) >= ORDERS_BEFORE_KILL, what="orders before the kill")
            order_process = stack.processes["order"]
            stack.signal_service("order", signal.SIGKILL)
            assert order_process.wait(WAIT_S) == -signal.SIGKILL
            wait_until(lambda: load.failed, what="calls failing while the order service is down")
            with load.paused():
                stack.start_service("order", wait=False)
            wait_serving(stack.address("order"))
            after_restart = len(load.ok)
            wait_until(lambda: len(load.ok) >= after_restart + ORDERS_AFTER_RESTART, what="orders after restart")

        published = subjects(sync_redis, catalogue.ORDER_EVENTS)
        stored = order_keys(sync_redis)
        assert len(published) == len(set(published)), "an order was published twice"
        assert stored == set(published), (
            f"stored without event: {stored - set(published)}; event without order: {set(published) - stored}")
        assert set(load.ok) <= stored, "an order acknowledged to the client is missing"
        assert set(load.failed) == {grpc.StatusCode.UNAVAILABLE}, sorted(set(load.failures))

        wait_caught_up(sync_redis)  # and the pipeline went on: every order settled, charged once
        for order_id in stored:
            assert clients.get(order_id).status in TERMINAL
            assert ledger_count(sync_redis, order_id) == 1
        assert stack.processes["order"].poll() is None
