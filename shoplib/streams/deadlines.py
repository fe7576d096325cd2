"""One time limit for many handlers, with one timer between them.

`asyncio.timeout` around each handler arms and cancels a loop timer per entry (about 17 µs of
CPU per entry under uvloop: most of what a whole timed entry costs beyond its handler). All
handlers of a worker share the same limit, so their deadlines come in the order they start: the
running ones are kept in that order, and one timer, armed for the oldest, cuts off whichever
are overdue when it fires and re-arms itself for the next. An entry then costs a dict insert and
a delete. A handler cut off ends as with `asyncio.timeout`: its task is cancelled, and the
cancellation comes out of `run` as TimeoutError, unless something else cancelled the task too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")
# uvloop's timers count whole milliseconds, so the timer may fire up to this much before the
# oldest deadline: a handler that close to it is cut off then (asyncio.timeout's timer does the
# same), rather than re-arming the timer again and again for the remaining fraction.
TIMER_RESOLUTION_S = 0.001


class Deadlines:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        # Running handlers' tasks -> their deadline (time.monotonic(), s), oldest first: insertion
        # order. The monotonic clock (CLOCK_MONOTONIC, as the loop's) costs a fifth of loop.time().
        self._running: dict[asyncio.Task[object], float] = {}
        # Tasks cut off -> how many cancellations they had before ours (as asyncio.timeout keeps).
        self._cut_off: dict[asyncio.Task[object], int] = {}
        self._timer: asyncio.TimerHandle | None = None
        # The loop it runs on, kept: asking for the running loop costs a getpid system call (3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, call: Awaitable[T]) -> T:
        """Await `call` (in the current task); TimeoutError when it outlives the limit."""
        task = self._current_task()
        self._running[task] = time.monotonic() + self.limit_s
        if self._timer is None:
            self._arm(task.get_loop(), self.limit_s)
        try:
            return await call
        except asyncio.CancelledError:
            if self._was_cut_off(task):
                raise TimeoutError from None
            raise
        finally:
            self._running.pop(task, None)  # gone only if its loop changed under it
            if self._cut_off:  # cut off, yet it finished (it swallowed the cancellation)
                self._was_cut_off(task)

    def _current_task(self) -> asyncio.Task[object]:
        task: asyncio.Task[object] | None = asyncio.current_task(self._loop) if self._loop else None
        if task is None:  # the first run, or on another loop than the last (tests)
            loop = asyncio.get_running_loop()
            if loop is not self._loop:  # what ran on the last one can run no more
                self._running, self._cut_off, self._timer, self._loop = {}, {}, None, loop
            task = asyncio.current_task(loop)
        assert task is not None, "Deadlines.run outside a task"  # a coroutine always runs in a task here
        return task

    def _was_cut_off(self, task: asyncio.Task[object]) -> bool:
        """True when this task was cut off and nothing else cancelled it; forgets the cut."""
        before = self._cut_off.pop(task, None)
        return before is not None and task.uncancel() <= before

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        """Cut off every overdue handler, then arm the timer for the oldest one left, if any."""
        self._timer = None
        now = time.monotonic()
        for task, deadline in self._running.items():
            if deadline > now + TIMER_RESOLUTION_S:
                self._arm(loop, deadline - now)
                return
            if task not in self._cut_off:
                self._cut_off[task] = task.cancelling()
                task.cancel()

    def _arm(self, loop: asyncio.AbstractEventLoop, delay_s: float) -> None:
        self._timer = loop.call_later(delay_s, self._expire, loop)
