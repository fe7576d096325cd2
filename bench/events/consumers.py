"""The consumer runtime alone: order-events pre-filled with OrderPlaced envelopes while only the
payment and notification services run; each drains its backlog with the other out of the way. The
same with the durable lean consumers (bench.events.lean) in their place: the drain to compare with."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import redis
from shop.v1 import events_pb2, types_pb2

from bench.common.cpu import Others, cpu_s, cpu_times
from bench.events.bare import LeanConsumers
from bench.events.groups import wait_groups
from bench.events.sizes import Sizes
from notification_svc.consumers import GROUP as NOTIFICATION_GROUP
from order_svc import domain as order_domain
from payment_svc.consumers import GROUP as PAYMENT_GROUP
from shopctl.local_redis.server import LocalRedis
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.store import partitions

# Entries the stopped notification service holds would otherwise look stale and be reclaimed
# (redelivered) when it resumes: a bench artefact, not what we measure.
CONSUMERS_ENV = {"STREAM_CLAIM_IDLE_MS": "120000"}
BLOCKED_S = 0.5  # after this, both consumers are blocked in XREADGROUP on empty streams
Fields = dict[str, str | bytes]


@dataclass
class Drain:
    service: str
    events: int
    seconds: float
    cpu_ms: float
    sys_ms: float  # the part of cpu_ms spent in the kernel (socket I/O, wake-ups)
    redis_cpu_ms: float
    complete: bool

    @property
    def per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("nan")

    @property
    def cpu_ms_per_event(self) -> float:
        return self.cpu_ms / self.events if self.events else float("nan")


@dataclass(frozen=True)
class _CpuMark:
    """CPU so far of a consumer process (user, system) and of redis-server."""

    process: tuple[float, float]
    redis: float

    @classmethod
    def take(cls, pid: int, redis_pid: int) -> _CpuMark:
        return cls(cpu_times(pid), cpu_s(redis_pid))


def _drain(service: str, count: int, seconds: float, before: _CpuMark, after: _CpuMark, complete: bool) -> Drain:
    return Drain(service, count, seconds, cpu_ms=(sum(after.process) - sum(before.process)) * 1000,
                 sys_ms=(after.process[1] - before.process[1]) * 1000,
                 redis_cpu_ms=(after.redis - before.redis) * 1000, complete=complete)


def id_ms(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


def _last_ms(client: redis.Redis, stream: str) -> int:
    """The time of the last entry of the stream (any partition) in ms (now if it has none)."""
    last = [entry[0][0] for one in partitions.streams(stream) if (entry := client.xrevrange(one, count=1))]
    return max(id_ms(entry_id) for entry_id in last if entry_id is not None) if last else int(time.time() * 1000)


def _placed_envelopes(count: int) -> list[Fields]:
    line = types_pb2.OrderLine(product_id="book-42", quantity=2,
                               unit_price=types_pb2.Money(currency_code="EUR", amount_minor=1999))
    prefix = uuid.uuid4().hex[:8]
    return [catalogue.entry_fields(catalogue.wrap(events_pb2.OrderPlaced(order=order_domain.new_order(
        f"bench-{prefix}-{i}", "cust-bench", [line], types_pb2.FLOW_MODE_EVENTS)), "/bench/events"))
        for i in range(count)]


def measure_consumers(sizes: Sizes, log_dir: Path) -> tuple[Drain, Drain]:
    """Payment, then notification, each alone on a backlog; see the package docstring."""
    stack = Stack(free_ports=True, log_dir=log_dir, env=dict(CONSUMERS_ENV))
    try:
        server = stack.redis = LocalRedis().start()
        stack.redis_url = server.url
        print(f"  building {sizes.backlog:,} OrderPlaced envelopes...", flush=True)
        entries = _placed_envelopes(sizes.backlog)
        stack.start_service("notification")
        stack.start_service("payment")  # its start waits for the notification service to serve
        return _drain_on(server, stack.processes, entries, sizes, "consumers alone")
    finally:
        stack.stop()


def measure_lean_consumers(sizes: Sizes) -> tuple[Drain, Drain]:
    """The same backlog and the same two drains, with the durable lean consumers (bench.events.lean)
    in place of the services: the same commits, and nothing else."""
    entries = _placed_envelopes(sizes.backlog)
    with LeanConsumers() as lean:
        assert lean.redis is not None
        return _drain_on(lean.redis, lean.processes, entries, sizes, "lean consumers alone")


def _drain_on(server: LocalRedis, processes: Mapping[str, subprocess.Popen[bytes]], entries: list[Fields],
              sizes: Sizes, phase: str) -> tuple[Drain, Drain]:
    """Once both consumers are blocked on empty streams: payment drains, then notification."""
    assert server.process is not None
    time.sleep(BLOCKED_S)
    notification, payment = processes["notification"], processes["payment"]
    with contextlib.closing(redis.Redis(port=server.port)) as client, \
            Others(phase, [notification.pid, payment.pid, server.process.pid, os.getpid()]):
        return _drain_both(client, notification, payment.pid, server.process.pid, entries, sizes)


def _drain_both(client: redis.Redis, notification: subprocess.Popen[bytes], payment_pid: int, redis_pid: int,
                entries: list[Fields], sizes: Sizes) -> tuple[Drain, Drain]:
    """The payment service drains while the notification service is stopped, then the latter
    drains what both left: the OrderPlaced entries and the payment outcomes."""
    notification.send_signal(signal.SIGSTOP)
    try:
        paid = _drain_payment(client, payment_pid, redis_pid, entries, sizes.settle_s)
        print(f"  payment drained {paid.events:,} in {paid.seconds:.2f} s", flush=True)
        backlog = sizes.backlog + sum(int(client.xlen(one)) for one in partitions.streams(catalogue.PAYMENT_EVENTS))
        before, started = _CpuMark.take(notification.pid, redis_pid), time.time()
    finally:
        notification.send_signal(signal.SIGCONT)
    done = wait_groups(client, (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS), sizes.settle_s,
                       NOTIFICATION_GROUP, backlog)
    after = _CpuMark.take(notification.pid, redis_pid)
    seconds = _last_ms(client, catalogue.NOTIFICATION_EVENTS) / 1000 - started
    notified = _drain("notification", backlog, seconds, before, after, done)
    print(f"  notification drained {notified.events:,} in {notified.seconds:.2f} s", flush=True)
    return paid, notified


def _drain_payment(client: redis.Redis, pid: int, redis_pid: int, entries: list[Fields], timeout_s: float) -> Drain:
    """Fill order-events in one MULTI/EXEC (the consumer sees the whole backlog at once); the drain
    runs from the first entry's id (EXEC time) to the last payment event's id (last commit)."""
    before = _CpuMark.take(pid, redis_pid)
    pipe = client.pipeline(transaction=True)
    for fields in entries:
        # redis-py wants dict[FieldT, EncodableT]; ours is one, but dict is invariant.
        stream = partitions.stream(catalogue.ORDER_EVENTS, partitions.partition_of_order(str(fields["subject"])))
        pipe.xadd(stream, fields)  # type: ignore[arg-type]
    first_ms = id_ms(pipe.execute()[0])
    done = wait_groups(client, (catalogue.ORDER_EVENTS,), timeout_s, PAYMENT_GROUP, len(entries))
    after = _CpuMark.take(pid, redis_pid)
    last_ms = _last_ms(client, catalogue.PAYMENT_EVENTS)
    return _drain("payment", len(entries), (last_ms - first_ms) / 1000, before, after, done)
