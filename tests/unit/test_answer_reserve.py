"""The deadline budget of one hop (shoplib.context): the answer reserve, the store-call bound and
the interceptor's own answer before the caller's deadline."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest

from shoplib import context, errors, interceptors, outage

# Scheduling slack allowed for a cut-off to land after its bound (a loaded host delays timers).
LATE_S = 0.25


def test_the_reserve_is_a_share_of_the_deadline_between_a_floor_and_a_cap() -> None:
    assert context.answer_reserve(2.0) == pytest.approx(2.0 * context.ANSWER_RESERVE_SHARE)
    assert context.answer_reserve(1.0) == context.ANSWER_RESERVE_FLOOR_S
    assert context.answer_reserve(3600.0) == context.ANSWER_RESERVE_CAP_S


def test_a_short_deadline_keeps_at_most_a_quarter_back_so_its_call_is_still_tried() -> None:
    assert context.answer_reserve(0.2) == pytest.approx(0.2 * context.ANSWER_RESERVE_MAX_SHARE)
    assert context.answer_reserve(0.0) == 0.0


def test_a_downstream_call_gets_the_deadline_less_two_reserves_never_all_that_is_left() -> None:
    def inside() -> tuple[float, float | None]:
        context.set_deadline(2.0)
        return context.remaining(), context.answer_by()

    budget, answer_by = contextvars.copy_context().run(inside)
    reserve = context.answer_reserve(2.0)
    assert budget == pytest.approx(2.0 - 2 * reserve, abs=0.01)
    assert answer_by == pytest.approx(2.0 - reserve, abs=0.01)


def test_without_a_deadline_calls_get_the_default_budget_and_no_cut_off() -> None:
    def inside() -> tuple[float, float | None]:
        context.set_deadline(None)
        return context.remaining(), context.answer_by()

    assert contextvars.copy_context().run(inside) == (context.DEFAULT_CALL_BUDGET_S, None)


async def _deaf() -> None:
    """A call that never ends and swallows its cancellation (as redis-py 8.1 can), then ends later."""
    try:
        await asyncio.sleep(60)
    except asyncio.CancelledError:
        await asyncio.sleep(1.0)


async def test_a_store_call_past_the_budget_is_an_outage_raised_without_waiting_for_a_deaf_call() -> None:
    context.set_deadline(1.0)
    bound = context.remaining()
    started = time.monotonic()
    with pytest.raises(Exception) as raised:
        await context.store_call(_deaf())
    assert outage.is_outage(raised.value), raised.value  # hence UNAVAILABLE with RetryInfo
    assert bound * 0.9 <= time.monotonic() - started < bound + LATE_S


async def test_a_store_call_outside_a_request_is_not_bounded() -> None:
    context.set_deadline(None)
    assert await context.store_call(asyncio.sleep(0.01, "done")) == "done"


async def test_a_timeout_of_the_call_itself_is_not_taken_for_the_cut_off() -> None:
    async def times_out() -> None:
        raise TimeoutError("its own")

    with pytest.raises(TimeoutError, match="its own"):
        await context.within(times_out(), 1.0)


async def test_a_handler_that_cannot_finish_is_answered_unavailable_at_the_reserve_before_the_deadline() -> None:
    context.set_deadline(1.0)
    cut = context.answer_by()
    assert cut is not None and cut < 1.0
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as raised:
        await interceptors._in_time(_deaf())
    assert cut * 0.9 <= time.monotonic() - started < cut + LATE_S
    assert raised.value.metadata == {"reason": "DEADLINE_NEAR"}
    assert [type(d).__name__ for d in raised.value.details()] == ["ErrorInfo", "RetryInfo"]
