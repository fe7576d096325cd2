"""One scenario run: its own Redis and stack, the recorder, fault bookkeeping, the drain and the verdict."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2_grpc as gw_grpc

from order_svc.reconciler import INTERVAL_S
from shopctl.chaos import checker, store
from shopctl.chaos.checker import Counts, Failure, Judgement
from shopctl.chaos.procs import ChaosRedis, ChaosStack, Worker, until_serving
from shopctl.chaos.recorder import Attempt, Recorder, Workload

# Fast fault timings: reclaim after 1 s idle, maintenance 5x a second, 3 deliveries before the
# dead letters, sync orders resumed after 1 s (claim idle must stay >= 3x the block).
FAST_ENV = {"STREAM_BLOCK_MS": "100", "STREAM_CLAIM_IDLE_MS": "1000", "STREAM_MAINTENANCE_S": "0.2",
            "STREAM_MAX_DELIVERIES": "3", "ORDER_RESUME_AFTER_MS": "1000"}
# The most a backlog may take to clear after the faults stop (2 busy cores, thousands of orders).
DRAIN_TIMEOUT_S = 120.0
# Nothing moved for this long: what is left will not finish by itself. Above the claim idle time
# plus a maintenance round (reclaim) and a reconciler round (2 s) plus its resume delay (1 s), and
# plus the re-drive delay of the scenarios that shorten it (REDRIVE_AFTER_MS of scenario 14: 1.5 s).
# A run that sets a longer resume or re-drive delay waits that delay and a round more (`settle_s`).
SETTLE_S = 6.0
SETTLE_MARGIN_S = 3.0  # beyond a configured delay and a reconciler round: a loaded 2-core host
DRAIN_POLL_S = 0.1
# The codes a valid PlaceOrder may get while faults are injected: an answer, or an indeterminate one.
LOAD_CODES = frozenset({"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"})


@dataclass
class Outcome:
    scenario: str
    title: str
    control: str | None  # the protection disabled, for a control run
    expect: str | None  # the failure kind a control run must report
    counts: Counts
    failures: list[Failure]
    proof: list[str]  # what shows the fault fired; empty: inconclusive
    notes: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    log_dir: str = ""

    @property
    def verdict(self) -> str:
        return "FAIL" if self.failures else ("PASS" if self.proof else "INCONCLUSIVE")

    @property
    def caught(self) -> bool:
        """A control run counts only when its fault fired and the checker reported the expected loss."""
        return bool(self.proof) and any(f.kind == self.expect for f in self.failures)

    @property
    def ok(self) -> bool:
        return self.caught if self.control else self.verdict == "PASS"

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "title": self.title, "control": self.control, "expect": self.expect,
                "verdict": self.verdict, "caught": self.caught if self.control else None, "ok": self.ok,
                "counts": vars(self.counts), "failures": [vars(f) for f in self.failures], "proof": self.proof,
                "notes": self.notes, "seconds": round(self.seconds, 1), "log_dir": self.log_dir}


def settle_s(order_env: dict[str, str]) -> float:
    """How long the drain waits with nothing moving (seconds): SETTLE_S, or longer when the order
    service's environment delays its resumes or re-drives past it (a PENDING order that is not due
    yet still finishes by itself: the drain must not give up on it)."""
    delays = [int(order_env[name]) / 1000 for name in ("ORDER_RESUME_AFTER_MS", "ORDER_REDRIVE_AFTER_MS")
              if name in order_env]
    return max([SETTLE_S] + [delay + INTERVAL_S + SETTLE_MARGIN_S for delay in delays])


class Run:
    """`async with Run(...) as run:` starts a private Redis and the stack; everything stops on exit."""

    def __init__(self, log_dir: Path, seed: int, env: dict[str, str] | None = None,
                 per_service: dict[str, dict[str, str]] | None = None, aof: bool = True) -> None:
        self.log_dir, self.rng = log_dir, random.Random(seed)
        self.redis = ChaosRedis(log_dir / "redis", aof=aof)  # (creates log_dir)
        self.stack = ChaosStack(log_dir, self.redis.url, {**FAST_ENV, **(env or {})}, per_service)
        self.settle_s = settle_s({**FAST_ENV, **(env or {}), **(per_service or {}).get("order", {})})
        self.faults: Counter[str] = Counter()
        self.proof: list[str] = []
        self.failures: list[Failure] = []
        self.notes: dict[str, Any] = {}
        self.started = time.monotonic()

    async def __aenter__(self) -> Run:
        await self.start_store()
        try:
            await asyncio.to_thread(self.stack.start)
        except BaseException:
            await self._close_processes()
            raise
        self.client = self.store_client()
        self.channel = grpc.aio.insecure_channel(self.stack.reach("gateway"))
        self.gateway = gw_grpc.GatewayServiceStub(self.channel)
        self.pids = {label: w.process.pid for label, w in self.stack.workers.items()}
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.channel.close()
        await self.client.aclose()
        await self._close_processes()

    async def _close_processes(self) -> None:
        await asyncio.to_thread(self.stack.stop)
        await self.close_store()

    # The store: one redis-server here; a Redis Cluster in shopctl/chaos/cluster.py.
    async def start_store(self) -> None:
        await asyncio.to_thread(self.redis.start)

    def store_client(self) -> aioredis.Redis:
        return aioredis.Redis.from_url(self.redis.url, socket_timeout=10)

    async def close_store(self) -> None:
        await asyncio.to_thread(self.redis.close)

    # --- processes ---------------------------------------------------------------------------

    def worker(self, label: str) -> Worker:
        return self.stack.workers[label]

    async def add_worker(self, label: str, service: str, instance: str) -> Worker:
        worker = self.stack.add_worker(label, service, instance)
        await until_serving(worker)
        self.pids[label] = worker.process.pid
        return worker

    async def restart(self, label: str, instance: str | None = None, **env: str) -> Worker:
        """Start `label` again (its process has exited) with a new instance name and environment."""
        old = self.worker(label)
        assert old.process.poll() is not None, f"{label} is still running"
        worker = self.stack.launch(label, old.service, instance or old.instance, old.port, **env)
        await until_serving(worker)
        self.pids[label] = worker.process.pid
        return worker

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] += n

    def prove(self, claim: str) -> None:
        self.proof.append(claim)

    def fail(self, kind: str, detail: str) -> None:
        self.failures.append(Failure(kind, detail))

    def recorder(self, workload: Workload, stub: gw_grpc.GatewayServiceAsyncStub | None = None) -> Recorder:
        self.load = Recorder(stub or self.gateway, workload)
        return self.load

    # --- the end of a run --------------------------------------------------------------------

    async def drain(self, timeout_s: float = DRAIN_TIMEOUT_S) -> bool:
        """Wait until every group is done (True) or nothing has moved for `settle_s` (False)."""
        deadline, last, since = time.monotonic() + timeout_s, None, time.monotonic()
        while time.monotonic() < deadline:
            if await store.drained(self.client):
                return True
            mark = await store.progress(self.client)
            if mark != last:
                last, since = mark, time.monotonic()
            elif time.monotonic() - since > self.settle_s:
                return False
            await asyncio.sleep(DRAIN_POLL_S)
        return False

    def logged(self, *names: str) -> list[tuple[str, dict[str, Any]]]:
        """(process log, line) of every log line of these events, as the services wrote them."""
        found = []
        for log in sorted(self.log_dir.glob("*.log")):
            for line in log.read_text(errors="replace").splitlines():
                if any(f'"{name}"' in line for name in names):
                    with contextlib.suppress(ValueError):  # a line cut short by a SIGKILL
                        event = json.loads(line)
                        if event.get("event") in names:
                            found.append((log.stem, event))
        return found

    def reclaimed(self) -> int:
        """Entries taken over from other consumers (XAUTOCLAIM), as the services logged them."""
        return sum(int(event.get("entries", 0)) for _, event in self.logged("consumer.reclaimed"))

    def unexpected_exits(self) -> list[Failure]:
        exited = {label: w.process.poll() for label, w in self.stack.workers.items() if w.process.poll() is not None}
        return [Failure("exits", f"processes exited during the run: {exited}")] if exited else []

    def restarts(self, since: dict[str, int]) -> list[Failure]:
        """Processes that are not the ones `since` named (a run without planned restarts)."""
        now = {label: w.process.pid for label, w in self.stack.workers.items() if w.process.poll() is None}
        changed = sorted(label for label, pid in since.items() if now.get(label) != pid)
        return [Failure("restarts", f"processes restarted or gone: {changed}")] if changed else []

    async def judge(self, records: list[Attempt] | None = None, allowed_codes: Iterable[str] = LOAD_CODES,
                    placed: bool = False, poison: bool = False, phantoms: bool = True
                    ) -> tuple[Judgement, store.Snapshot]:
        """Drain, read everything once, classify (the recorder's history unless `records` is given)."""
        self.notes["drained"] = await self.drain()
        snap = await store.read(self.client, with_placed=placed)
        records = self.load.records if records is None else records
        judgement = checker.classify(records, snap, allowed_codes)
        judgement.failures += self.unexpected_exits()
        judgement.failures += [] if poison else checker.no_dead_letters(snap)
        judgement.failures += checker.phantom_charges(snap) if phantoms else []
        judgement.counts.reclaimed = self.reclaimed()
        return judgement, snap

    def outcome(self, judgement: Judgement, scenario: str, title: str, control: str | None,
                expect: str | None) -> Outcome:
        self.notes["faults"] = dict(self.faults)
        judgement.counts.faults = sum(self.faults.values())
        return Outcome(scenario, title, control, expect, judgement.counts, judgement.failures + self.failures,
                       self.proof, self.notes, time.monotonic() - self.started, str(self.log_dir))
