"""The gateway's one decision: which flow an order takes."""

from __future__ import annotations

import pytest
from shop.v1 import types_pb2

from gateway.handlers import resolve_mode

SYNC, EVENTS = types_pb2.FLOW_MODE_SYNC, types_pb2.FLOW_MODE_EVENTS


@pytest.mark.parametrize("default", [SYNC, EVENTS])
def test_an_unspecified_mode_takes_the_configured_default(default: int) -> None:
    assert resolve_mode(types_pb2.FLOW_MODE_UNSPECIFIED, default) == default


@pytest.mark.parametrize("requested", [SYNC, EVENTS])
def test_a_requested_mode_wins_over_the_default(requested: int) -> None:
    assert resolve_mode(requested, SYNC if requested == EVENTS else EVENTS) == requested
