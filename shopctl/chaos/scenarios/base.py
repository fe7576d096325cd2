"""What every scenario shares: its description, where it runs, and helpers to find, kill and supervise workers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from notification_svc.consumers import GROUP as NOTIFICATION_GROUP
from order_svc.consumers import GROUP as ORDER_GROUP
from payment_svc.consumers import GROUP as PAYMENT_GROUP
from shopctl.chaos import store
from shopctl.chaos.checker import Judgement
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import Worker
from shopctl.chaos.recorder import Recorder
from shopctl.chaos.sizes import Sizes
from shoplib import catalogue

# The group each service consumes with, and the streams it reads.
SUBSCRIPTIONS = {
    "payment": (PAYMENT_GROUP, (catalogue.ORDER_EVENTS,)),
    "notification": (NOTIFICATION_GROUP, (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS)),
    "order": (ORDER_GROUP, (catalogue.PAYMENT_EVENTS,)),
}
# A worker under load holds entries most of the time; we wait this long for one that does.
HOLDING_WAIT_S = 5.0
HOLDING_POLL_S = 0.005
EXIT_POLL_S = 0.02
T = TypeVar("T")


@dataclass
class Env:
    sizes: Sizes
    log_dir: Path
    seed: int

    def run(self, **options: Any) -> Run:
        return Run(self.log_dir, self.seed, **options)


Body = Callable[["Scenario", Env, bool], Awaitable[Outcome]]


@dataclass(frozen=True)
class Scenario:
    number: int
    key: str
    title: str
    control: str  # the protection its control run disables
    expect: str  # the failure kind the checker must report in the control run
    body: Body

    def outcome(self, run: Run, judgement: Judgement, control: bool) -> Outcome:
        return run.outcome(judgement, f"{self.number}. {self.key}", self.title,
                           self.control if control else None, self.expect if control else None)


async def held(run: Run, worker: Worker) -> list[tuple[str, str]]:
    """(stream, entry id) of every entry pending to this worker's consumer."""
    group, streams = SUBSCRIPTIONS[worker.service]
    found: list[tuple[str, str]] = []
    for stream in store.every(streams):
        found += [(stream, i) for i, _, _ in await store.pending_of(run.client, stream, group, worker.consumer)]
    return found


async def count_held(run: Run, worker: Worker) -> int:
    group, streams = SUBSCRIPTIONS[worker.service]
    total = 0
    for stream in store.every(streams):
        for consumer in await run.client.xinfo_consumers(stream, group):
            if store.s(consumer["name"]) == worker.consumer:
                total += int(consumer["pending"])
    return total


async def during_load(load: Recorder, fault: Awaitable[T]) -> T:
    """Run a fault schedule with the load kept going until it is over (a fault needs traffic)."""
    async with load.sustained():
        return await fault


async def until_exit(worker: Worker) -> int:
    while (code := worker.process.poll()) is None:
        await asyncio.sleep(EXIT_POLL_S)
    return code


async def supervise(run: Run, label: str, on_exit: Callable[[Worker, int], Awaitable[dict[str, str]]],
                    ready: asyncio.Event) -> None:
    """Restart `label` each time it exits, for as long as this task runs; `on_exit` says with what
    environment (and may look at what the dead process left behind first)."""
    while True:
        ready.set()
        worker = run.worker(label)
        code = await until_exit(worker)
        ready.clear()
        try:
            await run.restart(label, **await on_exit(worker, code))
        except RuntimeError:  # it died again before it was SERVING: the next round handles that exit
            if run.worker(label).process.poll() is None:
                raise


async def stop_task(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
