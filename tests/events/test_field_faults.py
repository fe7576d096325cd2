"""Issue 8's field faults, each as its input was tried on a running stack: real processes, a real
redis-server, and the behaviour the issue says must hold.

1. poison inside a valid envelope   2. Redis refuses writes   3. a group missing while others trim,
and an events order whose event is lost   4. a bad message on the live-update channel
7. Redis set up to lose data (an evicting policy, no AOF).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator

import grpc
import pytest
import redis
from google.protobuf import any_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from shop.v1 import events_pb2, gateway_service_pb2, types_pb2

from shopctl.local_redis.server import LocalRedis, python_module_command
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.streams import topology
from tests.events.conftest import StackFactory
from tests.events.helpers import (
    DEAD_STREAM,
    FAST,
    ORDER_STREAM,
    PAID_LINES,
    TERMINAL,
    Clients,
    log_events,
    new_id,
    s,
    wait_caught_up,
    wait_until,
)

REDIS_SERVICES = ("order", "payment", "notification")

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _health(stack: Stack, name: str) -> int:
    with grpc.insecure_channel(stack.address(name)) as channel:
        return int(health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2).status)


def _serving(stack: Stack, name: str) -> bool:
    return _health(stack, name) == health_pb2.HealthCheckResponse.SERVING


def _terminal(clients: Clients, order_ids: list[str]) -> bool:
    return all(clients.get(order_id).status in TERMINAL for order_id in order_ids)


def _dead_letters(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(DEAD_STREAM)]


def _crashes(stack: Stack) -> list[str]:
    assert stack.log_dir is not None
    found = []
    for name in REDIS_SERVICES:
        found += [f"{name}: {e['event']}" for e in log_events(stack.log_dir / f"{name}.log")
                  if e.get("event") in ("consumer.crashed", "task.crashed", "consumer.entry_crashed")]
    return found


@pytest.fixture
def paused() -> Iterator[Callable[[Stack, str], None]]:
    """pause(stack, name): SIGSTOP a service; it is always continued at the end of the test."""
    stopped: list[tuple[Stack, str]] = []

    def pause(stack: Stack, name: str) -> None:
        stack.signal_service(name, signal.SIGSTOP)
        stopped.append((stack, name))

    yield pause
    for stack, name in stopped:
        if name in stack.processes:
            stack.signal_service(name, signal.SIGCONT)


# --- 1. Poison inside a valid envelope -------------------------------------------------------

def _poison_envelopes() -> dict[str, bytes]:
    """One member of each kind of entry that parses as an envelope but cannot become a handler call."""
    def placed(order_id: str = "ord_x") -> events_pb2.EventEnvelope:
        return catalogue.wrap(events_pb2.OrderPlaced(order=types_pb2.Order(order_id=order_id, customer_id="c")),
                           "/tests/poison")

    made = {}
    bad_bytes = placed()  # the input: a valid envelope, payload bytes ff ff
    bad_bytes.data.CopyFrom(any_pb2.Any(type_url="type.googleapis.com/shop.v1.OrderPlaced", value=b"\xff\xff"))
    made["payload_bytes"] = bad_bytes
    unknown_url = placed()
    unknown_url.data.type_url = "type.googleapis.com/shop.v1.NoSuchEvent"
    made["unknown_type_url"] = unknown_url
    wrong_subject = placed()
    wrong_subject.subject = "ord_someone_else"
    made["wrong_subject"] = wrong_subject
    made["no_order_id"] = placed(order_id="")
    no_id = placed()
    no_id.id = ""
    made["no_event_id"] = no_id
    return {kind: envelope.SerializeToString() for kind, envelope in made.items()}


@pytest.mark.e2e
def test_poison_inside_a_valid_envelope_is_dead_lettered_once_per_group_and_orders_complete(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        poison = {sync_redis.xadd(ORDER_STREAM, {"id": kind, "type": "shop.order.placed.v1",
                                                        "subject": "ord_x", "envelope": raw}).decode(): kind
                  for kind, raw in _poison_envelopes().items()}
        orders = [clients.place(types_pb2.FLOW_MODE_EVENTS).order_id for _ in range(3)]

        wait_until(lambda: _terminal(clients, orders), what="the three orders behind the poison to complete")
        wait_caught_up(sync_redis)
        letters = _dead_letters(sync_redis)
        seen = Counter((s(f[b"entry_id"]), s(f[b"group"])) for f in letters)
        expected = {(entry_id, group) for entry_id in poison for group in topology.GROUPS[catalogue.ORDER_EVENTS]}
        assert set(seen) == expected and set(seen.values()) == {1}, f"not once per group: {seen}"
        for fields in letters:
            assert s(fields[b"error"]).startswith("undecodable: "), s(fields[b"error"])
        assert all(_serving(stack, name) for name in REDIS_SERVICES)
        assert _crashes(stack) == []


# --- 2. Redis refuses writes -----------------------------------------------------------------

def _code_and_retry(clients: Clients, mode: int) -> tuple[grpc.StatusCode, bool]:
    try:
        clients.place(mode)
    except grpc.RpcError as exc:
        status = rpc_status.from_call(exc)  # type: ignore[arg-type]
        retry = any(d.type_url.endswith("google.rpc.RetryInfo") for d in (status.details if status else []))
        return exc.code(), retry
    return grpc.StatusCode.OK, False


@pytest.mark.e2e
def test_redis_refusing_writes_is_an_outage_waited_out_without_spending_deliveries(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients], paused: Callable[[Stack, str], None]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        paused(stack, "payment")
        in_flight = clients.place(types_pb2.FLOW_MODE_EVENTS).order_id
        sync_redis.config_set("maxmemory", 1)
        try:
            stack.signal_service("payment", signal.SIGCONT)  # it reads the entry; its commit is refused
            wait_until(lambda: not any(_serving(stack, n) for n in REDIS_SERVICES), within_s=5,
                       what="readiness NOT_SERVING on every Redis-backed service")
            for mode in (types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS):
                assert _code_and_retry(clients, mode) == (grpc.StatusCode.UNAVAILABLE, True)
            time.sleep(FAST.claim_idle_ms / 1000 * (FAST.max_deliveries + 2))  # long past the delivery budget
            assert _dead_letters(sync_redis) == []
        finally:
            sync_redis.config_set("maxmemory", 0)

        wait_until(lambda: all(_serving(stack, n) for n in REDIS_SERVICES), what="readiness SERVING again")
        assert clients.follow(in_flight)[-1].status == types_pb2.ORDER_STATUS_PAID
        after = clients.place(types_pb2.FLOW_MODE_SYNC)
        assert after.status == types_pb2.ORDER_STATUS_PAID
        wait_caught_up(sync_redis)
        assert _dead_letters(sync_redis) == []


# --- 3. A group missing while others trim; an events order whose event is lost ---------------

@pytest.mark.e2e
def test_a_group_destroyed_while_others_trim_loses_no_entry(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients], paused: Callable[[Stack, str], None]) -> None:
    retain_ms = 300
    with stack_on(local_redis.url, STREAM_RETAIN_MS=str(retain_ms)) as stack:
        clients = clients_of(stack)
        clients.place(types_pb2.FLOW_MODE_EVENTS)  # groups exist and have read something
        wait_caught_up(sync_redis)
        paused(stack, "payment")
        sync_redis.xgroup_destroy(ORDER_STREAM, topology.PAYMENT_GROUP)
        orders = [clients.place(types_pb2.FLOW_MODE_EVENTS).order_id for _ in range(3)]
        time.sleep(retain_ms / 1000 + 10 * FAST.maintenance_interval_s)  # the others trim meanwhile
        stack.signal_service("payment", signal.SIGCONT)

        wait_until(lambda: _terminal(clients, orders), what="the orders placed while the group was missing")
        assert all(clients.get(o).status == types_pb2.ORDER_STATUS_PAID for o in orders)


@pytest.mark.e2e
def test_an_events_order_whose_event_was_lost_is_re_driven_and_counted(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients]) -> None:
    with stack_on(local_redis.url, ORDER_REDRIVE_AFTER_MS="1000") as stack:
        clients = clients_of(stack)
        stack.stop_service("payment")  # stopped, not paused: a paused reader still receives entries
        order = clients.place(types_pb2.FLOW_MODE_EVENTS)
        [entry_id] = [i for i, f in sync_redis.xrange(ORDER_STREAM) if s(f[b"subject"]) == order.order_id]
        sync_redis.xdel(ORDER_STREAM, entry_id)  # lost, as a trim by hand would lose it
        stack.start_service("payment")

        assert clients.follow(order.order_id, timeout=15)[-1].status == types_pb2.ORDER_STATUS_PAID
        status = subprocess.run(python_module_command("shopctl.streams_ops", "status"), capture_output=True, text=True,
                                env={**os.environ, "REDIS_URL": local_redis.url}, timeout=30, check=True)
        assert "Events orders re-driven so far: 1" in status.stdout, status.stdout


# --- 4. A bad message on the live-update channel ---------------------------------------------

@pytest.mark.e2e
def test_bad_messages_on_the_update_channel_leave_live_updates_working(
        local_redis: LocalRedis, sync_redis: redis.Redis, stack_on: StackFactory,
        clients_of: Callable[[Stack], Clients], paused: Callable[[Stack, str], None]) -> None:
    with stack_on(local_redis.url) as stack:
        clients = clients_of(stack)
        paused(stack, "payment")
        order = clients.place(types_pb2.FLOW_MODE_EVENTS)
        watch = clients.gateway.WatchOrder(gateway_service_pb2.WatchOrderRequest(order_id=order.order_id),
                                           timeout=15)
        assert next(watch).order.status == types_pb2.ORDER_STATUS_PENDING
        for junk in (b"\xff\xfe", b"", order.order_id.encode() + b" \xff\xff", b"no-space-at-all"):
            sync_redis.publish("order:updates", junk)
        assert sync_redis.pubsub_numsub("order:updates")[0][1] == 1
        stack.signal_service("payment", signal.SIGCONT)
        started = time.monotonic()
        final = next(watch).order
        assert final.status == types_pb2.ORDER_STATUS_PAID
        assert time.monotonic() - started < 2.5, "the update came by the 5 s resync, not by push"
        assert sync_redis.pubsub_numsub("order:updates")[0][1] == 1
        assert _crashes(stack) == []


# --- 7. Redis set up to lose data ------------------------------------------------------------

@pytest.mark.e2e
def test_a_service_refuses_to_start_on_an_evicting_redis_naming_the_setting(local_redis: LocalRedis,
                                                                            sync_redis: redis.Redis) -> None:
    sync_redis.config_set("maxmemory-policy", "allkeys-lru")
    env = {**os.environ, "REDIS_URL": local_redis.url, "NOTIFICATION_PORT": "0", "FAULTS": ""}
    started = time.monotonic()
    done = subprocess.run(python_module_command("notification_svc"), env=env, capture_output=True, text=True,
                          timeout=30)
    assert done.returncode != 0
    assert "maxmemory-policy" in done.stderr and "allkeys-lru" in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert time.monotonic() - started < 15


@pytest.mark.e2e
def test_a_redis_without_aof_is_warned_about_once(stack_on: StackFactory, clients_of: Callable[[Stack], Clients]
                                                  ) -> None:
    server = LocalRedis()
    server.arguments = lambda aof=True: LocalRedis.arguments(server, aof=False)  # type: ignore[method-assign]
    server.start()
    try:
        with stack_on(server.url) as stack:
            clients_of(stack).place(types_pb2.FLOW_MODE_SYNC, PAID_LINES, new_id("key"))
            assert stack.log_dir is not None
            lines = log_events(stack.log_dir / "payment.log")
            warned = [e for e in lines if e.get("event") == "store.weak_persistence"]
            assert [e["setting"] for e in warned] == ["appendonly no"]
    finally:
        server.close()

