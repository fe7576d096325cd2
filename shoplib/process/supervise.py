"""Long-running tasks (consumers, listeners, reconcilers) that never end silently.

A task that raises is logged with its traceback and started again after a backoff; one that
returns while the service is not stopping is a bug too, and is treated the same. A task that
keeps failing turns readiness NOT_SERVING (`probe` is a health dependency) until it has run
cleanly for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from shoplib import log

# Backoff between restarts of a failing task: quick at first, then at most this.
RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
# Failures in a row after which the task counts as failing (readiness NOT_SERVING).
FAILING_AFTER = 3
# A task that ran this long since its last start has recovered: its failures are forgotten.
HEALTHY_AFTER_S = 30.0
_logger = log.get("shoplib.process.supervise")


class Consumer(Protocol):
    """A long-running job that can be asked to stop (a stream consumer)."""

    async def run(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class _Task:
    failures: int = 0  # in a row, without a healthy stretch between them
    running_since: float | None = None  # None while waiting to restart


class Supervisor:
    def __init__(self) -> None:
        self._tasks: dict[str, _Task] = {}
        self.stopping = False

    def failing(self) -> list[str]:
        now = time.monotonic()
        return [name for name, task in self._tasks.items() if task.failures >= FAILING_AFTER
                and (task.running_since is None or now - task.running_since < HEALTHY_AFTER_S)]

    async def probe(self) -> None:
        """A health dependency: fails while any task keeps failing."""
        if failing := self.failing():
            raise RuntimeError(f"tasks failing: {failing}")

    async def keep(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run `job` until the service stops, restarting it whenever it ends."""
        task = self._tasks.setdefault(name, _Task())
        while not self.stopping:
            task.running_since = time.monotonic()
            try:
                await job()
                if self.stopping:
                    return
                _logger.error("task.ended", task=name, action="restarting")
            except asyncio.CancelledError:
                raise
            except Exception:
                if self.stopping:
                    return
                _logger.exception("task.crashed", task=name, action="restarting")
            await self._backoff(name, task)

    async def _backoff(self, name: str, task: _Task) -> None:
        ran_s = time.monotonic() - (task.running_since or 0.0)
        task.failures = 1 if ran_s > HEALTHY_AFTER_S else task.failures + 1
        task.running_since = None
        if task.failures == FAILING_AFTER:
            _logger.error("task.failing", task=name, failures=task.failures, readiness="NOT_SERVING")
        await asyncio.sleep(min(RESTART_MIN_S * 2 ** (task.failures - 1), RESTART_MAX_S))


def name_of(job: object) -> str:
    """A readable task name: a bound method's owner and name, or the callable's qualified name."""
    owner = getattr(job, "__self__", None)
    if owner is not None:
        return f"{type(owner).__name__}.{getattr(job, '__name__', 'run')}"
    return str(getattr(job, "__qualname__", repr(job)))
