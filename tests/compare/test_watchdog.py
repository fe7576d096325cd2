"""The comparison's watchdog: a phase that overstays its bound ends the run with a message naming
it and a non-zero exit, whether the run waits in asyncio or in a blocking call, and cleanup still
runs; a run that will not stop is killed with its child processes. Each case runs in a process of
its own (the watchdog signals its main thread), in a few seconds."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from shopctl.compare.watchdog import EXIT_EXPIRED

# Every case takes under 3 s on an idle host; the bound leaves room for a loaded one.
CASE_BOUND_S = 60
BUDGET_S = 1.0  # the phase bound the cases give themselves

PRELUDE = """
import asyncio, subprocess, sys, time
from shopctl.compare.watchdog import Expired, Watchdog
dog = Watchdog(lambda line: print(line, flush=True), hard_stop_s={hard})
"""


def _run(body: str, hard_stop_s: float = 10.0, sigint_ignored: bool = False) -> subprocess.CompletedProcess[str]:
    """`sigint_ignored`: the run starts with SIGINT ignored, as a job a non-interactive shell put in
    the background inherits it (then Python installs no KeyboardInterrupt handler of its own)."""
    script = PRELUDE.format(hard=hard_stop_s) + textwrap.dedent(body)
    ignore = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=CASE_BOUND_S, check=False, preexec_fn=ignore)


ASYNC_STUCK = f"""
try:
    with dog.watching(), dog.phase("stuck in asyncio", {BUDGET_S}):
        asyncio.run(asyncio.sleep(600))
except Expired as exc:
    print("cleanup ran", flush=True)
    raise SystemExit(str(exc))
"""
BLOCKING_STUCK = f"""
try:
    with dog.watching(), dog.phase("stuck in a blocking call", {BUDGET_S}):
        subprocess.run(["sleep", "600"])
except Expired as exc:
    print("cleanup ran", flush=True)
    raise SystemExit(str(exc))
"""


@pytest.mark.parametrize("sigint_ignored", [False, True], ids=["foreground", "background-job"])
@pytest.mark.parametrize(("body", "phase"), [(ASYNC_STUCK, "stuck in asyncio"),
                                             (BLOCKING_STUCK, "stuck in a blocking call")])
def test_a_phase_over_its_bound_ends_the_run_naming_it_after_cleanup(body: str, phase: str,
                                                                     sigint_ignored: bool) -> None:
    started = time.monotonic()
    done = _run(body, sigint_ignored=sigint_ignored)
    assert done.returncode != 0, done.stdout + done.stderr
    assert f"phase {phase!r} did not finish within its bound of 1 s" in done.stderr
    assert "cleanup ran" in done.stdout
    assert time.monotonic() - started < CASE_BOUND_S / 2


def test_a_phase_within_its_bound_runs_to_the_end_control() -> None:
    done = _run(f"""
    with dog.watching(), dog.phase("short", {BUDGET_S * 10}):
        asyncio.run(asyncio.sleep(0.2))
    print("finished", flush=True)
    """)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout and "phase short:" in done.stdout and "did not finish" not in done.stderr


def test_a_run_that_ignores_the_stop_is_killed_with_its_children() -> None:
    done = _run(f"""
    import signal
    signal.signal(signal.SIGINT, lambda *_: None)  # the program's own handler swallows it: a cleanup that never ends
    child = subprocess.Popen(["sleep", "600"])
    print("child", child.pid, flush=True)
    with dog.watching(), dog.phase("deaf", {BUDGET_S}):
        time.sleep(600)
    """, hard_stop_s=1.0)
    assert done.returncode == EXIT_EXPIRED, done.stdout + done.stderr
    assert "killing it" in done.stderr
    child = int(done.stdout.split("child ", 1)[1].split()[0])
    assert _ends_within(child, KILL_SETTLE_S), "the child process outlived the run"


# SIGKILL is sent before the run exits, but the child is gone only once the kernel has run it to
# its end: on an idle host at once, with both cores kept busy by other processes up to a second.
KILL_SETTLE_S = 10.0


def _ends_within(pid: int, bound_s: float) -> bool:
    """True when `pid` has ended (or is a zombie) within `bound_s` seconds, polled every 50 ms."""
    deadline = time.monotonic() + bound_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie, reaped by nobody yet, counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_budget_must_be_positive() -> None:
    from shopctl.compare.watchdog import Watchdog

    with pytest.raises(ValueError, match="budget must be > 0 s"), Watchdog(print).phase("none", 0):
        pass
