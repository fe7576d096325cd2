"""The reconciler's due times are kept on the store's clock (Redis TIME; MemoryStore.now_ms here):
this process's wall clock, stepped either way, changes nothing (issue 19, case 1)."""

from __future__ import annotations

import time

import pytest
from shop.v1 import order_service_pb2, types_pb2

from order_svc import handlers
from order_svc.adapters import redriven_key
from order_svc.reconciler import Reconciler
from shoplib.store import partitions
from shoplib.testing import MemoryStore
from tests.support import line, new_id
from tests.unit.fakes import order_unit_of_work

AFTER_MS = 60_000
HOUR_S = 3600.0


def _reconciler(store: MemoryStore) -> Reconciler:
    return Reconciler(lambda mode: order_unit_of_work(store),
                      {types_pb2.FLOW_MODE_EVENTS: AFTER_MS})


async def _placed(store: MemoryStore) -> str:
    request = order_service_pb2.CreateOrderRequest(idempotency_key=new_id("key"), customer_id="c",
                                                   lines=[line()], mode=types_pb2.FLOW_MODE_EVENTS)
    uow = order_unit_of_work(store)
    return (await handlers.place_order(request, uow)).order_id


def _redriven(store: MemoryStore, order_id: str) -> int:
    return int(store.values.get(redriven_key(partitions.partition_of_order(order_id)), b"0"))


@pytest.mark.parametrize("step_s", [-HOUR_S, 0.0, HOUR_S], ids=["back", "none", "forward"])
async def test_an_order_is_re_driven_when_due_on_the_store_clock_whatever_the_wall_clock_says(
        step_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore()
    order_id = await _placed(store)
    stepped = time.time() + step_s
    monkeypatch.setattr(time, "time", lambda: stepped)  # this process's wall clock, stepped
    store.now_ms += AFTER_MS - 1
    await _reconciler(store).once()
    assert _redriven(store, order_id) == 0, "re-driven before due"
    store.now_ms += 1
    await _reconciler(store).once()
    assert _redriven(store, order_id) == 1, "not re-driven when due"
    store.now_ms += AFTER_MS - 1  # a re-drive is scored anew on the store's clock: not due again yet
    await _reconciler(store).once()
    assert _redriven(store, order_id) == 1
