"""The consumer's shared handler time limit: what `asyncio.timeout` did per entry, with one timer."""

from __future__ import annotations

import asyncio

import pytest

from shoplib.streams.deadlines import Deadlines

LIMIT_S = 0.1


async def _sleep_then(seconds: float, result: str = "done") -> str:
    await asyncio.sleep(seconds)
    return result


async def test_a_handler_within_the_limit_returns_its_result() -> None:
    assert await Deadlines(LIMIT_S).run(_sleep_then(0)) == "done"


async def test_a_handler_past_the_limit_is_cut_off_as_a_timeout_near_the_limit() -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await Deadlines(LIMIT_S).run(_sleep_then(10))
    assert LIMIT_S * 0.9 <= loop.time() - started < LIMIT_S * 4


async def test_only_the_overdue_handlers_are_cut_off_the_others_finish() -> None:
    deadlines = Deadlines(LIMIT_S)
    slow = asyncio.create_task(deadlines.run(_sleep_then(10)))
    await asyncio.sleep(LIMIT_S / 2)
    # these outlive the slow one's deadline, not their own: the timer re-arms for them
    later = [asyncio.create_task(deadlines.run(_sleep_then(LIMIT_S * 0.75, str(i)))) for i in range(3)]
    with pytest.raises(TimeoutError):
        await slow
    assert await asyncio.gather(*later) == ["0", "1", "2"]
    with pytest.raises(TimeoutError):  # the timer goes on after a quiet spell
        await deadlines.run(_sleep_then(10))


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    task = asyncio.create_task(Deadlines(LIMIT_S).run(_sleep_then(10)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_task_cut_off_and_cancelled_from_elsewhere_too_is_cancelled_not_timed_out() -> None:
    cut = asyncio.Event()

    async def stopped_after_its_cut() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cut.set()
            await asyncio.sleep(10)  # the other cancellation arrives here

    task = asyncio.create_task(Deadlines(LIMIT_S).run(stopped_after_its_cut()))
    await cut.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_handler_that_swallows_its_cut_finishes_with_no_cancellation_left() -> None:
    async def stubborn() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "kept going"
        return "never"

    async def twice(deadlines: Deadlines) -> tuple[str, int]:
        result = await deadlines.run(stubborn())
        current = asyncio.current_task()
        assert current is not None
        return result, current.cancelling()

    assert await asyncio.create_task(twice(Deadlines(LIMIT_S))) == ("kept going", 0)


def test_a_worker_moved_to_another_loop_still_cuts_off_its_handlers() -> None:
    deadlines = Deadlines(LIMIT_S)
    assert asyncio.run(deadlines.run(_sleep_then(0))) == "done"  # leaves its timer on the first loop
    with pytest.raises(TimeoutError):
        asyncio.run(deadlines.run(_sleep_then(10)))
