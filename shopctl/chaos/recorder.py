"""The history of a run: every PlaceOrder attempt, with invocation, completion, status code and order id.

A client here behaves as a careful one would: an indeterminate answer (UNAVAILABLE, or a timeout)
is retried with the same idempotency key, a bounded number of times; any other answer is final.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

from shopctl.load import DECLINE_EVERY, TERMINAL, Record, order_request

# Outcomes that say nothing about whether the server acted: the order may or may not exist.
INDETERMINATE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
# Retry backoff of the same key after an indeterminate answer: 0.1, 0.2, 0.4 ... capped at 1 s.
RETRY_BASE_S, RETRY_MAX_S = 0.1, 1.0
# While a fault is in progress the load goes on past its count (a fault needs traffic to hit),
# up to this many times the count.
SUSTAIN_FACTOR = 10


@dataclass
class Attempt(Record):
    """One PlaceOrder call; several attempts may share a key (retries)."""

    attempt: int = 0
    details: str = ""
    status: int = 0  # the order status in the answer


@dataclass(frozen=True)
class Workload:
    orders: int
    mode: str = "events"
    concurrency: int = 24
    timeout_s: float = 10.0  # per call: far above a healthy answer, so a hang shows
    attempts: int = 8  # per key
    max_s: float = 240.0  # hard bound of the whole drive
    pause_s: float = 0.0  # a caller whose key failed waits this long before its next key


class Recorder:
    def __init__(self, stub: gw_grpc.GatewayServiceAsyncStub, workload: Workload) -> None:
        self.stub, self.workload = stub, workload
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}"
        self.records: list[Attempt] = []
        self.acked = 0  # keys answered OK
        self.finished = asyncio.Event()
        self._next = itertools.count()
        self._sustained = 0

    def key(self, n: int) -> tuple[str, bool]:
        """The n-th key and whether its order must be declined (one in DECLINE_EVERY is above the limit)."""
        return f"{self.prefix}-{n}", n % DECLINE_EVERY == DECLINE_EVERY - 1

    async def run(self) -> None:
        deadline = time.monotonic() + self.workload.max_s
        try:
            await asyncio.gather(*(self._caller(deadline) for _ in range(self.workload.concurrency)))
        finally:
            self.finished.set()

    async def _caller(self, deadline: float) -> None:
        while time.monotonic() < deadline and self._more(n := next(self._next)):
            if (await self.place(*self.key(n), deadline=deadline)).code != "OK":
                await asyncio.sleep(self.workload.pause_s)

    def _more(self, n: int) -> bool:
        return n < self.workload.orders or (self._sustained > 0 and n < SUSTAIN_FACTOR * self.workload.orders)

    @contextlib.asynccontextmanager
    async def sustained(self) -> AsyncIterator[None]:
        """Keep the load going (new keys past the count) for as long as the body runs."""
        self._sustained += 1
        try:
            yield
        finally:
            self._sustained -= 1

    async def place(self, key: str, declined: bool, attempts: int | None = None,
                    deadline: float | None = None) -> Attempt:
        """Place one key until it gets a final answer, the attempts run out, or the deadline passes."""
        for n in range(attempts or self.workload.attempts):
            record = await self.attempt(key, declined, n)
            if record.code == "OK":
                self.acked += 1
                return record
            if record.code not in INDETERMINATE or (deadline and time.monotonic() > deadline):
                return record
            await asyncio.sleep(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** n))
        return record

    async def attempt(self, key: str, declined: bool, n: int = 0) -> Attempt:
        record = Attempt(key=key, declined=declined, start=time.monotonic(), wall=time.time(), attempt=n)
        self.records.append(record)
        try:
            reply = await self.stub.PlaceOrder(order_request(record, self.workload.mode),
                                               timeout=self.workload.timeout_s)
        except grpc.aio.AioRpcError as exc:
            record.end, record.code, record.details = time.monotonic(), exc.code().name, exc.details() or ""
            return record
        record.end, record.code = time.monotonic(), "OK"
        record.order_id, record.status = reply.order.order_id, reply.order.status
        if reply.order.status in TERMINAL:
            record.settled = record.end
        return record

    async def until(self, acked: float) -> bool:
        """Wait until `acked` keys were answered OK (True) or the drive ended first (False)."""
        while self.acked < acked:
            if self.finished.is_set():
                return False
            await asyncio.sleep(0.02)
        return True
