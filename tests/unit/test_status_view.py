"""The operations view shows the partition streams worth a look and counts the quiet ones."""

from __future__ import annotations

from shoplib.streams.status import GroupView, StreamView, render


def _group(pending: int) -> GroupView:
    return GroupView("payment-service-group", [("payment-1", pending, 10)], pending, 0, 5 if pending else None)


def test_quiet_partitions_are_counted_not_listed_and_busy_ones_are_listed() -> None:
    views = [StreamView("order-events:{p0}", 0, "0-0", [_group(0)]),
             StreamView("order-events:{p1}", 3, "1-0", [_group(0)]),
             StreamView("order-events:{p2}", 0, "0-0", [_group(2)]),
             StreamView("order-events:{p3}", 0, "-", missing=["payment-service-group"])]
    text = render(views, dead=0)
    assert "order-events:{p0}" not in text
    assert "order-events:{p1}" in text and "order-events:{p2}" in text and "order-events:{p3}" in text
    assert "MISSING" in text
    assert "(1 of 4 partition streams are empty with nothing pending: not shown)" in text


def test_a_lag_that_redis_cannot_say_is_shown_as_unknown_not_as_zero() -> None:
    """Redis 6.2 reports no lag (7+ none after deletions): the view says so."""
    unknown = GroupView("payment-service-group", [], 0, None, None)
    text = render([StreamView("order-events:{p1}", 3, "1-0", [unknown])], dead=0)
    assert "lag unknown" in text and "lag 0" not in text
    known = render([StreamView("order-events:{p1}", 3, "1-0", [_group(0)])], dead=0)
    assert "lag 0" in known
