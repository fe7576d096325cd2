"""Wall-clock steps for real processes: libfaketime (PyPI `libfaketime`, which ships the .so)
preloaded with a runtime offset file, as an NTP step or a resumed VM would move the clock.

Only the wall clock moves (CLOCK_REALTIME: time.time(), timestamps); the monotonic clocks stay
real (FAKETIME_DONT_FAKE_MONOTONIC), as a real step leaves them. The file is re-read on every
clock read (FAKETIME_NO_CACHE), so a step reaches running processes at once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def library() -> Path:
    """The libfaketime shared object the `libfaketime` package ships (found, not imported: its
    module re-executes the interpreter); RuntimeError when absent."""
    spec = importlib.util.find_spec("libfaketime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the libfaketime package is not installed: pip install -e '.[dev]'")
    found = Path(next(iter(spec.submodule_search_locations))) / "vendor" / "libfaketime" / "src" / "libfaketime.so.1"
    if not found.is_file():
        raise RuntimeError(f"the libfaketime package ships no {found}")
    return found


def env(offset_file: Path) -> dict[str, str]:
    """Environment for a process whose wall clock follows `offset_file` (starts at no offset)."""
    step(offset_file, 0)
    return {"LD_PRELOAD": str(library()), "FAKETIME_TIMESTAMP_FILE": str(offset_file),
            "FAKETIME_NO_CACHE": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def step(offset_file: Path, offset_s: int) -> None:
    """Set every such process's wall clock to real time + `offset_s` seconds (negative: back)."""
    temporary = offset_file.with_suffix(".new")
    temporary.write_text(f"{offset_s:+d}\n")
    temporary.replace(offset_file)  # atomic: a reader never sees a half-written offset
