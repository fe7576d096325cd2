"""Per-request context that must cross hops: correlation id and the caller's deadline.

The deadline budget of one hop, for an inbound call with T seconds left when it arrived:

    |<------------------------------- T -------------------------------->|
    |  downstream and store calls  |  turn their failure  |  the answer  |
    |  (`remaining()`)             |  into our answer     |  travels     |
    0                           T - 2R                   T - R           T

R, the answer reserve, is `answer_reserve(T)`. Outbound gRPC calls get T - 2R as their timeout.
At T - R (`answer_by()`) the server interceptor cuts the handler off (cancels it) and answers
UNAVAILABLE with RetryInfo itself, naming the data store when the cut landed in a store call, so
a caller whose deadline we cannot meet hears so before its deadline, whatever we waited for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar

from shoplib.log import CORRELATION_HEADER, correlation_id

# Budget of an outbound call when the caller set no deadline (a consumer, a client without one).
DEFAULT_CALL_BUDGET_S = 5.0
# The answer reserve R of one hop: a share of the inbound deadline, with a floor and a cap.
# Measured (tests/e2e/test_deadline_budget.py -s, real processes on this 2-core host, itself shared
# with other work at a load average of 14-16; 20 PlaceOrder at once with a 2 s deadline): the
# answer cost, from the order service giving up on a hung payment or notification to the client
# holding its UNAVAILABLE (two hops), was max 70 ms quiet, 79 ms with 2 CPU burners, 130 ms with 6
# (the first try, a task per call, 139 ms); a hung or paused Redis, cut at the order hop's T - R,
# was answered at most 100 ms after it. The old 5 ms per hop: 14 to 20 of 20 callers got
# DEADLINE_EXCEEDED with 2 burners (the test's control). Beyond that, with the quick chaos suite
# running beside 2 burners (load average 19), answers came up to 1 s late and some callers got
# DEADLINE_EXCEEDED: no reserve that leaves a 2 s call its work covers that.
# So: the floor is above the worst two-hop cost seen (139 ms), kept by each hop; 10 % grows it with
# the work a long deadline lets pile up; the cap keeps a long deadline mostly for the work.
ANSWER_RESERVE_SHARE = 0.10
ANSWER_RESERVE_FLOOR_S = 0.15
ANSWER_RESERVE_CAP_S = 1.0
# Never more than this share of the deadline is kept back: a caller with a very short deadline
# still gets its call tried (and, failing, answered in the rest).
ANSWER_RESERVE_MAX_SHARE = 0.25

_deadline: ContextVar[tuple[float, float] | None] = ContextVar("deadline", default=None)


def answer_reserve(time_remaining: float) -> float:
    """R (seconds) for an inbound deadline `time_remaining` seconds away (see module docstring)."""
    share = min(max(time_remaining * ANSWER_RESERVE_SHARE, ANSWER_RESERVE_FLOOR_S), ANSWER_RESERVE_CAP_S)
    return min(share, max(time_remaining, 0.0) * ANSWER_RESERVE_MAX_SHARE)


_reserve: Callable[[float], float] = answer_reserve


def use_reserve(policy: Callable[[float], float]) -> None:
    """Replace `answer_reserve` for this process (bootstrap: shoplib.faults.answer_reserve)."""
    global _reserve
    _reserve = policy


def set_deadline(time_remaining: float | None) -> None:
    """Bind the inbound call's deadline (`time_remaining` seconds from now; None: no deadline)."""
    if time_remaining is None:
        _deadline.set(None)
    else:
        _deadline.set((time.monotonic() + time_remaining, _reserve(time_remaining)))


def answer_by() -> float | None:
    """Seconds from now until this hop must have answered (T - R), or None without a deadline."""
    bound = _deadline.get()
    return None if bound is None else max(bound[0] - bound[1] - time.monotonic(), 0.0)


def remaining() -> float:
    """Seconds an outbound call may take: up to T - 2R (see module docstring), so that its failure
    is still turned into our own answer in time; DEFAULT_CALL_BUDGET_S without a deadline."""
    bound = _deadline.get()
    if bound is None:
        return DEFAULT_CALL_BUDGET_S
    deadline, reserve = bound
    return max(deadline - 2 * reserve - time.monotonic(), 0.0)


def outbound_metadata() -> tuple[tuple[str, str], ...]:
    cid = correlation_id.get()
    return ((CORRELATION_HEADER, cid),) if cid else ()
