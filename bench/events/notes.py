"""What went wrong or looks odd during a run: said at once, and again with the report, beside how
much CPU other processes of this shared machine took in each phase."""

from __future__ import annotations

import os

from bench.common.cpu import Others

NOTES: list[str] = []
BUSY_CORES = 0.15  # others took more than this many cores on average: the phase's figures are disturbed


def note(message: str) -> None:
    NOTES.append(message)
    print(f"  ! {message}", flush=True)


def busy_phases() -> list[str]:
    return [phase for phase, cores in Others.phases if cores > BUSY_CORES]


def print_notes() -> None:
    for message in NOTES:
        print(f"NOTE: {message}")
    for phase, cores in Others.phases:
        flag = "  <- a busy neighbour: figures of this phase are disturbed" if cores > BUSY_CORES else ""
        print(f"Other processes on this machine during '{phase}': {cores:.2f} of {os.cpu_count()} cores{flag}")
