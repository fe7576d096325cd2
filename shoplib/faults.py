"""Fault points for the crash tests: armed only by the FAULTS variable, inert otherwise.

FAULTS="exit_after_effect=0.2" makes a consumer, for about one entry in five, commit its effect
WITHOUT the acknowledgement and exit at once, as a crash between the two would in a design
where they are separate steps. It proves that redelivery then finds the effect done.
"""

from __future__ import annotations

import os
import random


def _armed() -> dict[str, float]:
    found = {}
    for item in filter(None, os.environ.get("FAULTS", "").split(",")):
        name, _, rate = item.partition("=")
        found[name.strip()] = float(rate or 1)
    return found


ARMED = _armed()


def fires(name: str) -> bool:
    rate = ARMED.get(name)
    return rate is not None and random.random() < rate


def crash() -> None:
    """Exit as a SIGKILL would: no cleanup, no flush."""
    os._exit(137)
