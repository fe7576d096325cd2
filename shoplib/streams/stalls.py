"""How much time the event loop lost: what a handler's time limit must not charge to its entry.

A tick every TICK_S measures how late it ran; the lateness adds up in `lost_s` (seconds, on the
monotonic clock). A loop runs late when the host starves the process of CPU or when the loop is
saturated by the other entries of a batch: either way an entry whose handler was cut off meanwhile
did not have its time limit to itself, and is not at fault (shoplib.streams.entries).
"""

from __future__ import annotations

import asyncio
import time

# Often enough that a stall of a fraction of the shortest handler limit used (0.33 s) is seen;
# rarely enough to cost nothing (a callback 50 times a second).
TICK_S = 0.02
# Lateness below this is the timer's own resolution (uvloop counts whole milliseconds), not a stall.
TIMER_SLACK_S = 0.002


class LoopStalls:
    def __init__(self) -> None:
        self.lost_s = 0.0
        self._loop: asyncio.AbstractEventLoop | None = None

    def ensure(self) -> None:
        """Tick on the running loop, unless already ticking on a loop that is still open."""
        if self._loop is None or self._loop.is_closed():
            self.watch(asyncio.get_running_loop())

    def watch(self, loop: asyncio.AbstractEventLoop) -> None:
        """Tick on `loop` (again when the worker moved to another loop; a no-op otherwise)."""
        if loop is not self._loop:
            self._loop = loop
            loop.call_later(TICK_S, self._tick, loop, time.monotonic() + TICK_S)

    def _tick(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if loop is not self._loop:
            return  # watching another loop now
        now = time.monotonic()
        if now - due > TIMER_SLACK_S:
            self.lost_s += now - due
        loop.call_later(TICK_S, self._tick, loop, now + TICK_S)
