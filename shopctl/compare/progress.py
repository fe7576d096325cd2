"""The progress display: one live line per step on a terminal, one line per step elsewhere (CI logs)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from shopctl.load import Run

REFRESH_S = 0.5  # how often the live line is redrawn


class Progress:
    def __init__(self) -> None:
        self._origin = time.monotonic()
        self._live = sys.stdout.isatty()

    def _stamp(self) -> str:
        return f"[{time.monotonic() - self._origin:5.0f}s]"

    def say(self, text: str) -> None:
        print(f"{self._stamp()} {text}", flush=True)

    def _line(self, label: str, run: Run) -> str:
        errors = sum(1 for r in run.records if r.code not in ("", "OK"))
        answered = sum(1 for r in run.records if r.code)
        return f"{self._stamp()} {label:<44} {answered:>6} answered {errors:>5} errors"

    @asynccontextmanager
    async def step(self, label: str, run: Run) -> AsyncIterator[None]:
        """Show `run`'s counts while the body runs, then its final line."""
        task = asyncio.create_task(self._redraw(label, run)) if self._live else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            line = self._line(label, run)
            print(f"\r{line}\033[K" if self._live else line, flush=True)

    async def _redraw(self, label: str, run: Run) -> None:
        while True:
            print(f"\r{self._line(label, run)}\033[K", end="", flush=True)
            await asyncio.sleep(REFRESH_S)

    def done(self) -> None:
        self.say("done")
