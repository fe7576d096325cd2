"""The deadline budget of one hop (shoplib.calls.context): the answer reserve, the outbound budget and
the interceptor's own answer before the caller's deadline."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import time
from collections.abc import Awaitable

import pytest
import redis.asyncio as aioredis

from shoplib import errors
from shoplib.calls import context, interceptors

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


async def _hung() -> None:
    await asyncio.sleep(60)


async def _cut_at_answer_by(call: Awaitable[object]) -> tuple[errors.Unavailable, float, float]:
    context.set_deadline(1.0)
    cut = context.answer_by()
    assert cut is not None and cut < 1.0
    started = time.monotonic()
    with pytest.raises(errors.Unavailable) as raised:
        await interceptors._in_time(call)
    return raised.value, time.monotonic() - started, cut


async def test_a_handler_that_cannot_finish_is_answered_unavailable_at_the_reserve_before_the_deadline() -> None:
    error, elapsed, cut = await _cut_at_answer_by(_hung())
    assert cut * 0.9 <= elapsed < cut + LATE_S
    assert error.metadata == {"reason": "DEADLINE_NEAR"}
    assert [type(d).__name__ for d in error.details()] == ["ErrorInfo", "RetryInfo"]


async def test_a_handler_cut_off_in_a_store_call_is_answered_naming_the_data_store() -> None:
    """A 'Redis' that accepts and never answers (as a SIGSTOPped one does): the cut lands in redis-py."""
    hung = socket.create_server(("127.0.0.1", 0))
    client = aioredis.Redis(port=hung.getsockname()[1], socket_timeout=60)
    try:
        error, _, _ = await _cut_at_answer_by(client.ping())
    finally:
        await client.aclose()
        hung.close()
    assert error.message == interceptors.STORE_NOT_IN_TIME
    assert error.metadata == {"dependency": "redis", "reason": "DEADLINE_NEAR"}


async def test_a_handler_within_its_time_returns_and_leaves_no_cancellation_behind() -> None:
    context.set_deadline(1.0)
    assert await interceptors._in_time(asyncio.sleep(0.01, "done")) == "done"
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0.01)  # no cut arrives later


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    context.set_deadline(1.0)
    running = asyncio.create_task(interceptors._in_time(_hung()))
    await asyncio.sleep(0.01)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
