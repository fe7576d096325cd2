"""Speed of the events pipeline: the real stack in events mode beside bare hops, end to end, and
the consumer runtime alone.

    .venv/bin/python bench/events.py [--quick]

Four measurements, one run, each with its own private redis-server:

1. Bare hops: a grpc.aio gateway process -> an order process whose handler does one XADD of a
   small payload (redis.asyncio) and answers. What the transport alone costs.
2. The real stack (shopctl.stack.Stack, FLOW_MODE_EVENTS through the gateway), driven by the same
   client: PlaceOrder latency at 1 and 64 in flight, accepted orders/s at 64 in flight.
3. End to end on that stack: time from PlaceOrder to the receipt notification (read from the
   notification-events stream, compared with the client's start time on the same clock) under an
   open-loop load at a fixed rate (and, for comparison, at a light one); receipts per second
   under the saturating 64-in-flight load.
4. The consumer runtime alone: order-events filled with N OrderPlaced envelopes in one MULTI/EXEC
   while only the payment and notification services run; drain speed and CPU per event of each
   (the notification service is SIGSTOPped while the payment service drains, then resumed on a
   backlog of N OrderPlaced + N payment outcomes).

Prints figures and a table against the issue's aims; asserts nothing. Also printed: CPU per order
of every process, and how much CPU other processes of this (shared) machine took meanwhile. A
consumer that stops making progress ends the wait after STALL_S and is reported, not waited for.
Services take STREAM_* and LOG_* settings from this environment (e.g. STREAM_MAINTENANCE_S=600
keeps stream maintenance out of the measured minute).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import grpc
import redis
import redis.asyncio as aioredis
from shop.v1 import events_pb2, types_pb2
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import order_service_pb2 as od
from shop.v1 import order_service_pb2_grpc as od_grpc

from notification_svc.consumers import GROUP as NOTIFICATION_GROUP
from order_svc import domain as order_domain
from payment_svc.consumers import GROUP as PAYMENT_GROUP
from shopctl.load import paid_orders
from shopctl.stack import Stack
from shoplib import events, redis_conn
from shoplib.redis_server import LocalRedis, free_port, python_command

# The aims.
AIM_LATENCY_RATIO = 1.5  # events-mode PlaceOrder latency / bare hops latency
AIM_ACCEPTED_PER_S = 1000.0  # PlaceOrder answered per second at 64 in flight
AIM_COMPLETED_PER_S = 800.0  # receipts sent per second under saturating load
AIM_RECEIPT_P50_MS = 5.0  # time to receipt at the steady rate
AIM_RECEIPT_P99_MS = 20.0
AIM_CPU_MS_PER_EVENT = 0.1  # consumer process CPU per event
AIM_DRAIN_PER_S = 10_000.0  # backlog drained, events per second

IN_FLIGHT = 64
LIGHT_RATE = 100.0  # orders/s of an open-loop run far below capacity, for the unloaded latency
CALL_TIMEOUT_S = 10.0  # one order; far above any healthy latency, so a hang shows as an error
READY_TIMEOUT_S = 20.0  # a bare server process imports grpc and binds within a few seconds
STOP_TIMEOUT_S = 5.0
MAX_LIFETIME_S = 900.0  # a bare server left behind by a crashed bench exits on its own
OPEN_LOOP_MAX_IN_FLIGHT = 2000  # an open-loop request past this many outstanding is counted as skipped
POLL_S = 0.01  # how often drain progress is looked at
STALL_S = 5.0  # no progress for this long: a consumer is stuck or dead; stop waiting for it
STEADY_SKIP_S = 1.0  # the first second of a saturating run is ramp-up, not steady state
BARE_STREAM = "bench-bare-events"
BARE_PAYLOAD = b"x" * 200  # about the size of an OrderPlaced envelope
RECEIPT = types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT
NOTIFICATION_SENT = events_pb2.NotificationSent
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Sizes:
    warm_up: int  # serial calls before measuring (connections open, caches warm)
    serial: int  # measured calls at 1 in flight
    burst_warm_up: int  # calls at 64 in flight before measuring
    burst_max: int  # measured calls at 64 in flight, at most...
    burst_s: float  # ...and for at most this long
    rate: float  # open-loop offered rate, orders/s...
    rate_s: float  # ...for this long
    backlog: int  # OrderPlaced entries pre-filled for the consumer-alone measurement
    settle_s: float  # the most we wait for a backlog to be processed


FULL = Sizes(warm_up=100, serial=1000, burst_warm_up=256, burst_max=50_000, burst_s=6.0,
             rate=500.0, rate_s=6.0, backlog=20_000, settle_s=60.0)
QUICK = Sizes(warm_up=20, serial=100, burst_warm_up=64, burst_max=5_000, burst_s=2.0,
              rate=500.0, rate_s=2.0, backlog=3_000, settle_s=20.0)


# --- small helpers ------------------------------------------------------------------------------

def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of a process so far (/proc/<pid>/stat fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as stat:
        after_comm = stat.read().rsplit(")", 1)[1].split()
    return int(after_comm[11]) / _CLK_TCK, int(after_comm[12]) / _CLK_TCK


def cpu_s(pid: int) -> float:
    return sum(cpu_times(pid))


NOTES: list[str] = []  # what went wrong or looks odd, printed with the report


def note(message: str) -> None:
    NOTES.append(message)
    print(f"  ! {message}", flush=True)


def machine_busy_s() -> float:
    """CPU seconds all processes of this machine have used so far (/proc/stat, first line)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


class Others:
    """How much CPU processes other than ours took while a phase ran: this machine is shared,
    and a busy neighbour changes every figure below."""

    phases: ClassVar[list[tuple[str, float]]] = []  # (phase, cores used by others on average)

    def __init__(self, phase: str, pids: list[int]) -> None:
        self.phase, self.pids = phase, pids

    def __enter__(self) -> Others:
        self._t0, self._all0 = time.monotonic(), machine_busy_s()
        self._ours0 = sum(cpu_s(pid) for pid in self.pids)
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            ours = sum(cpu_s(pid) for pid in self.pids) - self._ours0
            elapsed = time.monotonic() - self._t0
            Others.phases.append((self.phase, max(0.0, machine_busy_s() - self._all0 - ours) / elapsed))


def cpu_all(pids: dict[str, int]) -> dict[str, float]:
    return {name: cpu_s(pid) for name, pid in pids.items()}


def per_call(before: dict[str, float], after: dict[str, float], calls: int) -> dict[str, float]:
    """CPU ms per call of each process between two `cpu_all` snapshots."""
    return {name: (after[name] - before[name]) * 1000 / calls if calls else float("nan") for name in before}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def id_ms(entry_id: bytes | str) -> int:
    raw = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(raw.split("-", 1)[0])


# --- the bare hops: gateway -> order (one XADD), empty otherwise --------------------------------

class BareOrder(od_grpc.OrderServiceServicer):
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def CreateOrder(self, request: od.CreateOrderRequest, context: object) -> od.CreateOrderResponse:
        await self._client.xadd(BARE_STREAM, {"id": request.idempotency_key, "type": "bench.placed",
                                              "envelope": BARE_PAYLOAD})
        return od.CreateOrderResponse()


class BareGateway(gw_grpc.GatewayServiceServicer):
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._orders = od_grpc.OrderServiceStub(channel)

    async def PlaceOrder(self, request: gw.PlaceOrderRequest, context: object) -> gw.PlaceOrderResponse:
        reply = await self._orders.CreateOrder(od.CreateOrderRequest(
            idempotency_key=request.idempotency_key, customer_id=request.customer_id, lines=request.lines,
            mode=request.mode), timeout=CALL_TIMEOUT_S)
        return gw.PlaceOrderResponse(order=reply.order)


async def serve_bare(role: str, port: int, target: str) -> None:
    """Body of a `--bare-server` process: serve until SIGTERM (or MAX_LIFETIME_S)."""
    server = grpc.aio.server()
    closers: list[Callable[[], Awaitable[object]]] = []
    if role == "order":
        client = redis_conn.connect(target)  # the services' own pool settings, nothing else
        od_grpc.add_OrderServiceServicer_to_server(BareOrder(client), server)
        closers.append(client.aclose)
    elif role == "gateway":
        channel = grpc.aio.insecure_channel(target)
        gw_grpc.add_GatewayServiceServicer_to_server(BareGateway(channel), server)
        closers.append(channel.close)
    else:
        raise SystemExit(f"unknown bare role {role!r}")
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), MAX_LIFETIME_S)
    await server.stop(0.5)
    for close in closers:
        await close()


class BareHops:
    """Bare gateway and order processes on a private Redis; `with BareHops() as hops:` stops them."""

    def __init__(self) -> None:
        self.ports = {"gateway": free_port(), "order": free_port()}
        self.redis: LocalRedis | None = None
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def address(self, role: str) -> str:
        return f"127.0.0.1:{self.ports[role]}"

    def pids(self) -> dict[str, int]:
        assert self.redis is not None and self.redis.process is not None
        return {**{role: p.pid for role, p in self.processes.items()}, "redis": self.redis.process.pid,
                "bench client": os.getpid()}

    def __enter__(self) -> BareHops:
        try:
            self.redis = LocalRedis().start()
            for role, target in (("order", self.redis.url), ("gateway", self.address("order"))):
                self.processes[role] = subprocess.Popen(
                    python_command(__file__, "--bare-server", role, str(self.ports[role]), target))
            asyncio.run(self._wait_ready())
        except BaseException:
            self.__exit__()
            raise
        return self

    async def _wait_ready(self) -> None:
        for role in self.ports:
            async with grpc.aio.insecure_channel(self.address(role)) as channel:
                await asyncio.wait_for(channel.channel_ready(), READY_TIMEOUT_S)

    def __exit__(self, *exc: object) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self.redis is not None:
            self.redis.close()
            self.redis = None


# --- the load -----------------------------------------------------------------------------------

@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    placed: dict[str, float] = field(default_factory=dict)  # order id -> client start, time.time()
    errors: int = 0
    skipped: int = 0  # open loop only: requests not sent because too many were outstanding
    started_wall: float = 0.0
    elapsed_s: float = 0.0
    cpu_ms_per_call: dict[str, float] = field(default_factory=dict)  # by process, over the run

    def p(self, q: float) -> float:
        return pct(self.latencies_ms, q)

    @property
    def per_s(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s else float("nan")


Call = Callable[[], Awaitable[gw.PlaceOrderResponse]]


async def closed_loop(call: Call, in_flight: int, count: int, max_s: float) -> Run:
    """`count` calls (fewer if `max_s` runs out) by `in_flight` workers sharing one budget."""
    budget, run = iter(range(count)), Run(started_wall=time.time())
    started = time.perf_counter()
    deadline = started + max_s

    async def worker() -> None:
        for _ in budget:
            if time.perf_counter() > deadline:
                return
            wall, t0 = time.time(), time.perf_counter()
            try:
                reply = await call()
            except grpc.aio.AioRpcError:
                run.errors += 1
                continue
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
            if reply.order.order_id:
                run.placed[reply.order.order_id] = wall

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    run.elapsed_s = time.perf_counter() - started
    return run


async def open_loop(call: Call, rate: float, duration_s: float) -> Run:
    """One call every 1/rate s whatever the answers do; latency counts from the scheduled start,
    so a client that falls behind cannot hide the server's slowness."""
    run, outstanding = Run(started_wall=time.time()), set[asyncio.Task[None]]()
    started = time.perf_counter()
    wall_of = run.started_wall - started

    async def one(scheduled: float) -> None:
        try:
            reply = await call()
        except grpc.aio.AioRpcError:
            run.errors += 1
            return
        run.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        run.placed[reply.order.order_id] = wall_of + scheduled

    for i in range(int(rate * duration_s)):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(outstanding) >= OPEN_LOOP_MAX_IN_FLIGHT:
            run.skipped += 1
            continue
        task = asyncio.create_task(one(scheduled))
        outstanding.add(task)
        task.add_done_callback(outstanding.discard)
    if outstanding:
        await asyncio.wait(outstanding, timeout=CALL_TIMEOUT_S)
    run.elapsed_s = time.perf_counter() - started
    return run



def gateway_call(stub: gw_grpc.GatewayServiceStub) -> Call:
    request = paid_orders(f"bench-{uuid.uuid4().hex[:8]}", types_pb2.FLOW_MODE_EVENTS)
    return lambda: stub.PlaceOrder(request(), timeout=CALL_TIMEOUT_S)


async def latency_runs(address: str, sizes: Sizes, pids: dict[str, int]) -> tuple[Run, Run]:
    """(1 in flight, 64 in flight) runs against the gateway at `address`, after warm-ups; the
    64-in-flight run also records the CPU each process spent per call."""
    async with grpc.aio.insecure_channel(address) as channel:
        call = gateway_call(gw_grpc.GatewayServiceStub(channel))
        await closed_loop(call, 1, sizes.warm_up, CALL_TIMEOUT_S * sizes.warm_up)
        serial = await closed_loop(call, 1, sizes.serial, CALL_TIMEOUT_S * sizes.serial)
        await closed_loop(call, IN_FLIGHT, sizes.burst_warm_up, sizes.burst_s)
        cpu0 = cpu_all(pids)
        burst = await closed_loop(call, IN_FLIGHT, sizes.burst_max, sizes.burst_s)
        burst.cpu_ms_per_call = per_call(cpu0, cpu_all(pids), len(burst.latencies_ms))
    return serial, burst


# --- end to end: receipts read back from notification-events ----------------------------------

class Receipts:
    """Every receipt notification sent so far: order id -> envelope time (the sender's clock,
    which is this machine's clock). Reads notification-events incrementally from its start."""

    def __init__(self, client: redis.Redis) -> None:
        self._client, self._cursor = client, "0-0"
        self.at: dict[str, float] = {}

    def poll(self, max_batches: int = 1000) -> None:
        for _ in range(max_batches):
            reply = self._client.xread({events.NOTIFICATION_EVENTS: self._cursor}, count=5000)
            if not reply:
                return
            for entry_id, fields in reply[0][1]:
                self._cursor = entry_id.decode()
                if fields.get(b"type") != b"shop.notification.sent.v1":
                    continue
                envelope, payload = events.decode(fields)
                if isinstance(payload, NOTIFICATION_SENT) and payload.notification.kind == RECEIPT:
                    self.at[envelope.subject] = envelope.time.seconds + envelope.time.nanos / 1e9

    def wait_for(self, order_ids: list[str], timeout_s: float) -> int:
        """Polls until every order has its receipt, the time is up, or no receipt came for
        STALL_S; returns how many are missing."""
        deadline = time.monotonic() + timeout_s
        last_missing, last_change = -1, time.monotonic()
        while True:
            self.poll()
            missing = sum(1 for order_id in order_ids if order_id not in self.at)
            now = time.monotonic()
            if missing != last_missing:
                last_missing, last_change = missing, now
            if not missing:
                return 0
            if now > deadline or now - last_change > STALL_S:
                why = f"no progress for {STALL_S:.0f} s" if now <= deadline else "time limit"
                note(f"{missing} of {len(order_ids)} receipts never came ({why})")
                return missing
            time.sleep(0.05)


@dataclass(frozen=True)
class GroupRow:
    stream: str
    group: str
    pending: int
    read: int  # entries-read
    behind: int  # lag: entries not yet delivered to the group (1 when unknown but behind)

    @property
    def idle(self) -> bool:
        return not self.pending and not self.behind


def group_rows(client: redis.Redis, streams: tuple[str, ...], group: str | None = None) -> list[GroupRow]:
    rows = []
    for stream in streams:
        try:
            info = client.xinfo_groups(stream)
            last = client.xinfo_stream(stream)["last-generated-id"]
        except redis.ResponseError:  # no such stream (yet)
            continue
        for row in info:
            name = row["name"].decode() if isinstance(row["name"], bytes) else row["name"]
            if group is None or name == group:
                lag = row.get("lag")
                behind = int(lag) if lag is not None else int(row["last-delivered-id"] != last)
                rows.append(GroupRow(stream, name, int(row["pending"]), int(row.get("entries-read") or 0), behind))
    return rows


def wait_groups(client: redis.Redis, streams: tuple[str, ...], timeout_s: float, group: str | None = None,
                expected: int = 0) -> bool:
    """Until the groups (or the one named) on `streams` have read at least `expected` entries and
    have nothing pending or lagging; False (with a note) on time limit or STALL_S without progress."""
    deadline = time.monotonic() + timeout_s
    last: list[GroupRow] = []
    last_change = time.monotonic()
    while True:
        rows = group_rows(client, streams, group)
        if rows and sum(r.read for r in rows) >= expected and all(r.idle for r in rows):
            return True
        now = time.monotonic()
        if rows != last:
            last, last_change = rows, now
        if now > deadline or now - last_change > STALL_S:
            stuck = ", ".join(f"{r.group} on {r.stream}: {r.behind} undelivered, {r.pending} pending"
                              for r in rows if not r.idle)
            why = f"no progress for {STALL_S:.0f} s" if now <= deadline else "time limit"
            note(f"consumers did not catch up ({why}): {stuck or 'streams missing'}")
            return False
        time.sleep(POLL_S)


def wait_idle(client: redis.Redis, timeout_s: float) -> bool:
    return wait_groups(client, (events.ORDER_EVENTS, events.PAYMENT_EVENTS), timeout_s)


@dataclass
class EndToEnd:
    steady: Run  # open loop at the fixed rate
    to_receipt_ms: list[float]
    steady_missing: int
    cpu_ms_per_order: dict[str, float]  # per process, over the steady run
    saturated: Run  # the 64-in-flight run
    completed_per_s: float  # receipts per second in the steady part of the saturated run
    saturated_missing: int
    drained_after_s: float  # how long after the saturated load the last receipt came
    light: Run  # open loop at LIGHT_RATE: the pipeline's own latency, without queueing
    light_to_receipt_ms: list[float]


@dataclass
class StackResult:
    serial: Run
    burst: Run
    e2e: EndToEnd


async def _open_loop_run(address: str, rate: float, duration_s: float) -> Run:
    async with grpc.aio.insecure_channel(address) as channel:
        return await open_loop(gateway_call(gw_grpc.GatewayServiceStub(channel)), rate, duration_s)


def measure_stack(stack: Stack, sizes: Sizes) -> StackResult:
    assert stack.redis is not None and stack.redis.process is not None
    client = redis.Redis(port=stack.redis.port)
    pids = {name: p.pid for name, p in stack.processes.items()}
    pids |= {"redis": stack.redis.process.pid, "bench client": os.getpid()}
    try:
        with Others("events stack", list(pids.values())):
            return _stack_runs(stack.address("gateway"), client, pids, sizes)
    finally:
        client.close()


def _stack_runs(gateway: str, client: redis.Redis, pids: dict[str, int], sizes: Sizes) -> StackResult:
    receipts = Receipts(client)
    serial, burst = asyncio.run(latency_runs(gateway, sizes, pids))
    print(f"  PlaceOrder: {len(serial.latencies_ms)} at 1 in flight, {len(burst.latencies_ms)} at "
          f"{IN_FLIGHT} in flight ({burst.per_s:.0f}/s); waiting for the consumers to catch up...", flush=True)
    wait_idle(client, sizes.settle_s)
    receipts.wait_for(list(burst.placed), sizes.settle_s)

    print(f"  open loop, light: {LIGHT_RATE:.0f} orders/s for {sizes.rate_s:.0f} s...", flush=True)
    light = asyncio.run(_open_loop_run(gateway, LIGHT_RATE, sizes.rate_s))
    receipts.wait_for(list(light.placed), sizes.settle_s)
    wait_idle(client, sizes.settle_s)
    light_to_receipt = [(receipts.at[o] - t) * 1000 for o, t in light.placed.items() if o in receipts.at]

    print(f"  open loop: {sizes.rate:.0f} orders/s for {sizes.rate_s:.0f} s...", flush=True)
    cpu0 = cpu_all(pids)
    steady = asyncio.run(_open_loop_run(gateway, sizes.rate, sizes.rate_s))
    steady_missing = receipts.wait_for(list(steady.placed), sizes.settle_s)
    wait_idle(client, sizes.settle_s)
    cpu_per_order = per_call(cpu0, cpu_all(pids), len(steady.placed) - steady_missing)
    to_receipt = [(receipts.at[o] - t) * 1000 for o, t in steady.placed.items() if o in receipts.at]

    print(f"  saturating: {IN_FLIGHT} in flight for {sizes.burst_s:.0f} s...", flush=True)

    async def saturate() -> Run:
        async with grpc.aio.insecure_channel(gateway) as channel:
            call = gateway_call(gw_grpc.GatewayServiceStub(channel))
            return await closed_loop(call, IN_FLIGHT, sizes.burst_max, sizes.burst_s)

    saturated = asyncio.run(saturate())
    saturated_missing = receipts.wait_for(list(saturated.placed), sizes.settle_s)
    wait_idle(client, sizes.settle_s)
    start, end = saturated.started_wall + STEADY_SKIP_S, saturated.started_wall + saturated.elapsed_s
    times = [receipts.at[o] for o in saturated.placed if o in receipts.at]
    in_window = sum(1 for t in times if start <= t <= end)
    completed_per_s = in_window / (end - start) if end > start else float("nan")
    drained_after = (max(times) - end) if times else float("nan")
    e2e = EndToEnd(steady, to_receipt, steady_missing, cpu_per_order, saturated, completed_per_s,
                   saturated_missing, drained_after, light, light_to_receipt)
    return StackResult(serial, burst, e2e)


# --- the consumer runtime alone -----------------------------------------------------------------

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


def _placed_envelopes(count: int) -> list[dict[str, str | bytes]]:
    line = types_pb2.OrderLine(product_id="book-42", quantity=2,
                               unit_price=types_pb2.Money(currency_code="EUR", amount_minor=1999))
    prefix = uuid.uuid4().hex[:8]
    return [events.entry_fields(events.wrap(events_pb2.OrderPlaced(order=order_domain.new_order(
        f"bench-{prefix}-{i}", "cust-bench", [line], types_pb2.FLOW_MODE_EVENTS)), "/bench/events"))
        for i in range(count)]


def _last_ms(client: redis.Redis, stream: str) -> int | None:
    last = client.xrevrange(stream, count=1)
    return id_ms(last[0][0]) if last else None


def measure_consumers(sizes: Sizes, log_dir: Path) -> tuple[Drain, Drain]:
    """Payment, then notification, each alone on a backlog; see the module docstring."""
    # Entries the stopped notification service holds would otherwise look stale and be
    # reclaimed (redelivered) when it resumes: a bench artefact, not what we measure.
    stack = Stack(free_ports=True, log_dir=log_dir, env={"STREAM_CLAIM_IDLE_MS": "120000"})
    try:
        stack.redis = LocalRedis().start()
        assert stack.redis.process is not None
        stack.redis_url, redis_pid = stack.redis.url, stack.redis.process.pid
        print(f"  building {sizes.backlog:,} OrderPlaced envelopes...", flush=True)
        entries = _placed_envelopes(sizes.backlog)
        stack.start_service("notification")
        stack.start_service("payment")  # its start waits for the notification service to serve
        time.sleep(0.5)  # both consumers are now blocked in XREADGROUP on empty streams
        notification, payment = stack.processes["notification"], stack.processes["payment"]
        with contextlib.closing(redis.Redis(port=stack.redis.port)) as client, \
                Others("consumers alone", [notification.pid, payment.pid, redis_pid, os.getpid()]):
            notification.send_signal(signal.SIGSTOP)
            try:
                paid = _drain_payment(client, payment.pid, redis_pid, entries, sizes.settle_s)
                print(f"  payment drained {paid.events:,} in {paid.seconds:.2f} s", flush=True)
                backlog = sizes.backlog + int(client.xlen(events.PAYMENT_EVENTS))
                ntf_cpu0, redis_cpu0 = cpu_times(notification.pid), cpu_s(redis_pid)
                started = time.time()
            finally:
                notification.send_signal(signal.SIGCONT)
            done = wait_groups(client, (events.ORDER_EVENTS, events.PAYMENT_EVENTS), sizes.settle_s,
                               NOTIFICATION_GROUP, backlog)
            ntf_cpu1, redis_cpu1 = cpu_times(notification.pid), cpu_s(redis_pid)
            last_ms = _last_ms(client, events.NOTIFICATION_EVENTS) or int(time.time() * 1000)
            notified = Drain("notification", backlog, last_ms / 1000 - started,
                             cpu_ms=(sum(ntf_cpu1) - sum(ntf_cpu0)) * 1000, sys_ms=(ntf_cpu1[1] - ntf_cpu0[1]) * 1000,
                             redis_cpu_ms=(redis_cpu1 - redis_cpu0) * 1000, complete=done)
            print(f"  notification drained {notified.events:,} in {notified.seconds:.2f} s", flush=True)
    finally:
        stack.stop()
    return paid, notified


def _drain_payment(client: redis.Redis, pid: int, redis_pid: int, entries: list[dict[str, str | bytes]],
                   timeout_s: float) -> Drain:
    """Fill order-events in one MULTI/EXEC (the consumer sees the whole backlog at once); the drain
    runs from the first entry's id (EXEC time) to the last payment event's id (last commit)."""
    cpu0, redis_cpu0 = cpu_times(pid), cpu_s(redis_pid)
    pipe = client.pipeline(transaction=True)
    for fields in entries:
        pipe.xadd(events.ORDER_EVENTS, fields)  # type: ignore[arg-type]
    first_ms = id_ms(pipe.execute()[0])
    done = wait_groups(client, (events.ORDER_EVENTS,), timeout_s, PAYMENT_GROUP, len(entries))
    cpu1, redis_cpu1 = cpu_times(pid), cpu_s(redis_pid)
    last_ms = _last_ms(client, events.PAYMENT_EVENTS) or int(time.time() * 1000)
    return Drain("payment", len(entries), (last_ms - first_ms) / 1000, cpu_ms=(sum(cpu1) - sum(cpu0)) * 1000,
                 sys_ms=(cpu1[1] - cpu0[1]) * 1000, redis_cpu_ms=(redis_cpu1 - redis_cpu0) * 1000, complete=done)


# --- the report ---------------------------------------------------------------------------------

def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def report(bare: tuple[Run, Run], real: StackResult, drains: tuple[Drain, Drain], sizes: Sizes) -> None:
    e2e = real.e2e
    print("\nPlaceOrder latency, ms (client -> gateway -> order -> Redis -> back)")
    print(f"{'':<22} {'bare hops':>10} {'events':>10} {'ratio':>7}")
    rows: list[tuple[str, str, str, bool]] = []
    for label, index, q in (("p50, 1 in flight", 0, 0.50), ("p99, 1 in flight", 0, 0.99),
                            ("p50, 64 in flight", 1, 0.50), ("p99, 64 in flight", 1, 0.99)):
        b, r = bare[index].p(q), (real.serial, real.burst)[index].p(q)
        print(f"{label:<22} {b:>10.2f} {r:>10.2f} {r / b:>6.2f}x")
        rows.append((f"PlaceOrder {label}", f"{r:.2f} ms = {r / b:.2f}x bare ({b:.2f})",
                     f"<= {AIM_LATENCY_RATIO}x bare", r / b <= AIM_LATENCY_RATIO))
    b, r = bare[1].per_s, real.burst.per_s
    print(f"{'orders/s, 64 in flight':<22} {b:>10.0f} {r:>10.0f} {r / b:>6.0%}")
    rows.append(("accepted orders/s, 64 in flight", f"{r:,.0f} (bare {b:,.0f})", f">= {AIM_ACCEPTED_PER_S:,.0f}",
                 r >= AIM_ACCEPTED_PER_S))
    rows.append(("completed orders/s (receipt sent)", f"{e2e.completed_per_s:,.0f}",
                 f">= {AIM_COMPLETED_PER_S:,.0f}", e2e.completed_per_s >= AIM_COMPLETED_PER_S))
    rate = f"at {sizes.rate:.0f}/s"
    p50, p99 = pct(e2e.to_receipt_ms, 0.5), pct(e2e.to_receipt_ms, 0.99)
    rows.append((f"PlaceOrder -> receipt p50 {rate}", f"{p50:.2f} ms", f"< {AIM_RECEIPT_P50_MS:.0f} ms",
                 p50 < AIM_RECEIPT_P50_MS))
    rows.append((f"PlaceOrder -> receipt p99 {rate}", f"{p99:.2f} ms", f"< {AIM_RECEIPT_P99_MS:.0f} ms",
                 p99 < AIM_RECEIPT_P99_MS))
    for drain in drains:
        rows.append((f"{drain.service} backlog drained", f"{drain.per_s:,.0f} events/s",
                     f">= {AIM_DRAIN_PER_S:,.0f}/s", drain.per_s >= AIM_DRAIN_PER_S and drain.complete))
        rows.append((f"{drain.service} CPU per event", f"{drain.cpu_ms_per_event:.3f} ms",
                     f"<= {AIM_CPU_MS_PER_EVENT} ms", drain.cpu_ms_per_event <= AIM_CPU_MS_PER_EVENT))

    steady = e2e.steady
    print(f"\nEnd to end, open loop at {sizes.rate:.0f}/s for {sizes.rate_s:.0f} s: {len(steady.latencies_ms)} "
          f"accepted ({len(steady.latencies_ms) / steady.elapsed_s:.0f}/s), {steady.errors} errors, "
          f"{steady.skipped} skipped, {e2e.steady_missing} receipts missing")
    print(f"  PlaceOrder p50 {steady.p(0.5):.2f} ms, p99 {steady.p(0.99):.2f} ms; to receipt p50 {p50:.2f} ms, "
          f"p90 {pct(e2e.to_receipt_ms, 0.9):.2f} ms, p99 {p99:.2f} ms, max {max(e2e.to_receipt_ms, default=0):.1f} ms")
    print("  CPU ms per completed order: " + ", ".join(f"{name} {ms:.3f}" for name, ms in e2e.cpu_ms_per_order.items())
          + f" (total {sum(e2e.cpu_ms_per_order.values()):.3f})")
    lt = e2e.light_to_receipt_ms
    print(f"  for comparison at {LIGHT_RATE:.0f}/s: PlaceOrder p50 {e2e.light.p(0.5):.2f} ms, p99 "
          f"{e2e.light.p(0.99):.2f} ms; to receipt p50 {pct(lt, 0.5):.2f} ms, p99 {pct(lt, 0.99):.2f} ms "
          f"({len(lt)} of {len(e2e.light.placed)} receipts)")
    sat = e2e.saturated
    print(f"Saturating, {IN_FLIGHT} in flight for {sat.elapsed_s:.1f} s: {len(sat.latencies_ms)} accepted "
          f"({sat.per_s:.0f}/s), {sat.errors} errors; {e2e.completed_per_s:.0f} receipts/s from "
          f"{STEADY_SKIP_S:.0f} s in to the end of the load; last receipt {e2e.drained_after_s:.1f} s after "
          f"the load stopped; {e2e.saturated_missing} receipts missing")
    for name, run in (("bare hops", bare[1]), ("events stack", real.burst)):
        print(f"CPU ms per accepted order at {IN_FLIGHT} in flight, {name}: "
              + ", ".join(f"{proc} {ms:.3f}" for proc, ms in run.cpu_ms_per_call.items())
              + f" (total {sum(run.cpu_ms_per_call.values()):.3f})")
    print(f"Real stack: {len(real.serial.latencies_ms)} + {len(real.burst.latencies_ms)} calls measured, "
          f"{real.serial.errors + real.burst.errors} errors; bare: {len(bare[0].latencies_ms)} + "
          f"{len(bare[1].latencies_ms)}, {bare[0].errors + bare[1].errors} errors")
    for drain in drains:
        print(f"Consumer alone, {drain.service}: {drain.events:,} events in {drain.seconds:.2f} s "
              f"({drain.per_s:,.0f}/s), process CPU {drain.cpu_ms:,.0f} ms ({drain.cpu_ms_per_event:.3f} ms/event, "
              f"{drain.sys_ms / max(drain.cpu_ms, 1e-9):.0%} of it in the kernel), "
              f"redis-server CPU {drain.redis_cpu_ms / drain.events:.3f} ms/event"
              + ("" if drain.complete else " -- NOT fully drained before the time limit"))

    for message in NOTES:
        print(f"NOTE: {message}")
    for phase, cores in Others.phases:
        flag = "  <- a busy neighbour: figures of this phase are disturbed" if cores > 0.15 else ""
        print(f"Other processes on this machine during '{phase}': {cores:.2f} of {os.cpu_count()} cores{flag}")

    width = max(len(r[0]) for r in rows)
    mwidth = max(len(r[1]) for r in rows)
    print(f"\n{'figure':<{width}} | {'measured':<{mwidth}} | {'aim':<14} | met?")
    print(f"{'-' * width}-+-{'-' * mwidth}-+-{'-' * 14}-+-----")
    for figure, measured, aim, ok in rows:
        verdict = "n/a (see NOTE)" if "nan" in measured else _met(ok)
        print(f"{figure:<{width}} | {measured:<{mwidth}} | {aim:<14} | {verdict}")
    busy = [phase for phase, cores in Others.phases if cores > 0.15]
    if busy:
        print(f"(other processes took CPU during: {', '.join(busy)}; their figures are disturbed, either way)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about 30 s), for a smoke test")
    parser.add_argument("--bare-server", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_server:
        role, port, target = args.bare_server
        asyncio.run(serve_bare(role, int(port), target))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` below runs
    if os.environ.pop("REDIS_URL", None):
        print("REDIS_URL ignored: every part of this bench runs on its own private redis-server")
    sizes = QUICK if args.quick else FULL
    began = time.monotonic()
    overrides = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(("STREAM_", "LOG_")))
    if overrides:
        print(f"service settings from this environment: {' '.join(overrides)}")
    print(f"events bench ({'quick' if args.quick else 'full'}): {sizes.serial} orders at 1 in flight, "
          f"{sizes.burst_s:.0f} s at {IN_FLIGHT}, {sizes.rate:.0f}/s open loop for {sizes.rate_s:.0f} s, "
          f"backlog of {sizes.backlog:,}", flush=True)
    logs = Path(tempfile.mkdtemp(prefix="bench-events-"))  # service logs; kept when something went wrong
    try:
        with BareHops() as hops:
            print("bare hops up (gateway -> order -> XADD); measuring...", flush=True)
            with Others("bare hops", list(hops.pids().values())):
                bare = asyncio.run(latency_runs(hops.address("gateway"), sizes, hops.pids()))
        with Stack(free_ports=True, log_dir=logs / "stack") as stack:
            print("real stack up (events mode, private Redis); measuring...", flush=True)
            real = measure_stack(stack, sizes)
        print("consumer runtime alone (payment, then notification, private Redis)...", flush=True)
        drains = measure_consumers(sizes, logs / "consumers")
        report(bare, real, drains, sizes)
    finally:
        if NOTES or sys.exc_info()[0] is not None:
            print(f"service logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
