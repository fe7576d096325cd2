"""The sampled group gauges: a lag Redis cannot say is NaN (unknown), never 0 ("caught up")."""

from __future__ import annotations

import math
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shoplib.observability import metrics
from shoplib.streams import status
from shoplib.streams.status import GroupView, StreamView

STREAM, GROUP = "test-gauge-events", "test-gauge-group"


def _views(*lags: int | None) -> list[StreamView]:
    """One partition stream per lag, each with the group and 1 pending entry."""
    return [StreamView(f"{STREAM}:{{p{index}}}", 5, "1-0", [GroupView(GROUP, [], 1, lag, 2000)])
            for index, lag in enumerate(lags)]


async def _sample(monkeypatch: pytest.MonkeyPatch, views: list[StreamView]) -> dict[str, float | None]:
    async def collect(client: Any, streams: tuple[str, ...]) -> tuple[list[StreamView], int]:
        return views, 0

    monkeypatch.setattr(status, "collect", collect)
    await metrics.sample_groups(client=None, groups=[(STREAM, GROUP)])  # type: ignore[arg-type]
    labels = {"stream": STREAM, "group": GROUP}
    return {family: REGISTRY.get_sample_value(f"shop_stream_group_{family}", labels)
            for family in ("lag_entries", "pending_entries")}


async def test_a_known_lag_is_summed_over_the_partitions(monkeypatch: pytest.MonkeyPatch) -> None:
    sampled = await _sample(monkeypatch, _views(3, 4))
    assert sampled == {"lag_entries": 7, "pending_entries": 2}


async def test_an_unknown_lag_in_any_partition_makes_the_lag_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    sampled = await _sample(monkeypatch, _views(3, None))
    lag = sampled["lag_entries"]
    assert lag is not None and math.isnan(lag)
    assert sampled["pending_entries"] == 2  # what Redis does say is still reported
