"""log.bind: fields bound once per RPC or message reach every line of that task, and no other."""

from __future__ import annotations

import asyncio

from shoplib import log


def _line(**fields: object) -> dict[str, object]:
    """A line as it leaves the processor that adds the bound fields."""
    return dict(log._merge_bound(None, "info", {"event": "e", **fields}))


def test_fields_bound_in_a_task_reach_its_lines_and_later_binds_add_or_replace() -> None:
    async def message() -> dict[str, object]:
        log.bind(stream="order-events", order_id="ord_1")
        log.bind(order_id="ord_2", event_id="ev")
        return _line()

    assert asyncio.run(message()) == {"stream": "order-events", "order_id": "ord_2", "event_id": "ev", "event": "e"}


def test_a_line_s_own_fields_win_over_bound_ones() -> None:
    async def message() -> dict[str, object]:
        log.bind(order_id="ord_1")
        return _line(order_id="ord_own")

    assert asyncio.run(message())["order_id"] == "ord_own"


def test_tasks_do_not_see_each_other_s_fields() -> None:
    async def one(order_id: str) -> dict[str, object]:
        log.bind(order_id=order_id)
        await asyncio.sleep(0)
        return _line()

    async def both() -> list[dict[str, object]]:
        return list(await asyncio.gather(one("ord_a"), one("ord_b")))

    assert [line["order_id"] for line in asyncio.run(both())] == ["ord_a", "ord_b"]
    assert _line() == {"event": "e"}
