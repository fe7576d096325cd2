"""Per-request context that must cross hops: correlation id and the caller's deadline."""

from __future__ import annotations

import time
from contextvars import ContextVar

from shoplib.log import CORRELATION_HEADER, correlation_id

# Budget of an outbound call when the caller set no deadline (a consumer, a client without one).
DEFAULT_CALL_BUDGET_S = 5.0
# Kept back from the caller's remaining time so our answer still reaches it before its deadline.
DEADLINE_MARGIN_S = 0.005

_deadline: ContextVar[float | None] = ContextVar("deadline", default=None)


def set_deadline(time_remaining: float | None) -> None:
    _deadline.set(None if time_remaining is None else time.monotonic() + time_remaining)


def remaining() -> float:
    """Seconds an outbound call may take: what is left of the inbound deadline, minus a margin."""
    deadline = _deadline.get()
    if deadline is None:
        return DEFAULT_CALL_BUDGET_S
    return max(deadline - time.monotonic() - DEADLINE_MARGIN_S, 0.0)


def outbound_metadata() -> tuple[tuple[str, str], ...]:
    cid = correlation_id.get()
    return ((CORRELATION_HEADER, cid),) if cid else ()
