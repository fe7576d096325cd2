"""Bounds on a comparison run: every phase gets a time budget, and a run that overstays one ends
with a message naming the phase and a non-zero exit, instead of hanging silently.

A thread watches the clock (monotonic). When the current phase overstays, it prints why and
sends SIGINT to the main thread, as Ctrl-C would (asyncio.run cancels its task; a blocking call
is woken and raises KeyboardInterrupt), so the `with Stack(...)` blocks still stop every process they started. If the
process is still alive HARD_STOP_S later (a cleanup that hangs too), the thread kills the child
processes of this one (the services and Redis it started, found by parent id) and ends the process
with EXIT_EXPIRED.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_EXPIRED = 3  # the exit status of a run ended by its watchdog
# How long the orderly stop may take (each service gets the stack's 10 s stop timeout in turn,
# usually well under a second) before the processes are killed outright.
HARD_STOP_S = 45.0
TICK_S = 0.5  # how often the watching thread looks at the clock


class Expired(Exception):
    """A phase overstayed its budget; says which and by how much."""


class Watchdog:
    """`with watchdog.phase("latency", 120):` around each phase; `watching()` around the run."""

    def __init__(self, say: Callable[[str], None], hard_stop_s: float = HARD_STOP_S) -> None:
        self._say, self._hard_stop_s = say, hard_stop_s
        self._phase, self._deadline, self._budget = "", float("inf"), 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.expired: Expired | None = None

    @contextmanager
    def watching(self) -> Iterator[None]:
        """Run the watching thread for the body; an interrupt it caused becomes `Expired`."""
        thread = threading.Thread(target=self._watch, name="compare-watchdog", daemon=True)
        thread.start()
        try:
            with _hearing_sigint():
                yield
        except KeyboardInterrupt:
            if self.expired is None:  # a person's Ctrl-C, not ours
                raise
            raise self.expired from None
        finally:
            self._stop.set()
            thread.join()
        if self.expired is not None:  # interrupted code that swallowed the interrupt
            raise self.expired

    @contextmanager
    def phase(self, name: str, budget_s: float) -> Iterator[None]:
        """Bound the body to `budget_s` seconds (monotonic); says how long it took."""
        if budget_s <= 0:
            raise ValueError(f"phase {name!r}: budget must be > 0 s, got {budget_s}")
        started = time.monotonic()
        with self._lock:
            self._phase, self._budget, self._deadline = name, budget_s, started + budget_s
        try:
            yield
        finally:
            with self._lock:
                self._phase, self._deadline = "", float("inf")
        self._say(f"phase {name}: {time.monotonic() - started:.1f} s (bound {budget_s:.0f} s)")

    def _watch(self) -> None:
        while not self._stop.wait(TICK_S):
            with self._lock:
                late = self.expired is None and time.monotonic() > self._deadline
                phase, budget = self._phase, self._budget
            if late:
                self._expire(phase, budget)
                return

    def _expire(self, phase: str, budget: float) -> None:
        self.expired = Expired(f"compare: phase {phase!r} did not finish within its bound of {budget:.0f} s; "
                               f"run stopped (see the service logs of this run)")
        print(f"\n{self.expired}; stopping the stack", file=sys.stderr, flush=True)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        if self._stop.wait(self._hard_stop_s):
            return
        print(f"compare: the stack did not stop within {self._hard_stop_s:.0f} s; killing it",
              file=sys.stderr, flush=True)
        try:
            kill_children()
        finally:
            os._exit(EXIT_EXPIRED)


@contextmanager
def _hearing_sigint() -> Iterator[None]:
    """SIGINT raises KeyboardInterrupt in the main thread for the body, whatever was inherited. A
    job started in the background by a non-interactive shell (`make compare &`, a runner's step)
    inherits SIGINT ignored, and Python then installs no handler: the watchdog's interrupt would do
    nothing and every overstay would end in the hard stop, without cleanup (seen: a newcomer's
    `make test` started so failed both watchdog cases). A handler of the program's own is kept."""
    before = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    deaf = before in (signal.SIG_IGN, signal.SIG_DFL)
    if deaf:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        if deaf:
            signal.signal(signal.SIGINT, before)


def kill_children() -> None:
    """SIGKILL every live process whose parent is this one (found in /proc by parent id)."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if fields[1] == me:  # fields after the command: state, ppid, ...
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)
