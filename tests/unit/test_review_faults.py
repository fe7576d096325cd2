"""Faults a fresh review found (issue 8's kinds, new members): each as a claim, in memory."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from shop.v1 import order_service_pb2, types_pb2

from order_svc import handlers as order_handlers
from order_svc.adapters import outcome_event, pending_key
from order_svc.updates import OrderUpdates
from payment_svc import bootstrap as payment_bootstrap
from payment_svc import handlers as payment_handlers
from shoplib import errors
from shoplib.calls.status_mapping import status_for
from shoplib.store import partitions
from shoplib.testing import MemoryStore
from tests.support import line, new_id
from tests.unit.fakes import order_unit_of_work


def _pending(order_id: str) -> str:
    return pending_key(types_pb2.FLOW_MODE_EVENTS, partitions.partition_of_order(order_id))


async def _placed(store: MemoryStore) -> types_pb2.Order:
    request = order_service_pb2.CreateOrderRequest(idempotency_key=new_id("key"), customer_id="c",
                                                   lines=[line()], mode=types_pb2.FLOW_MODE_EVENTS)
    return await order_handlers.place_order(request, order_unit_of_work(store))


async def test_a_re_drive_racing_the_settlement_does_not_put_the_settled_order_back_on_the_pending_list() -> None:
    store = MemoryStore()
    stale = await _placed(store)  # the reconciler read it PENDING ...
    paid = types_pb2.Payment(order_id=stale.order_id, status=types_pb2.PAYMENT_STATUS_SUCCEEDED)
    await order_handlers.settle_order(outcome_event(paid), order_unit_of_work(store, None))
    await order_handlers.resume_order(stale, order_unit_of_work(store))  # ... then
    assert stale.order_id not in store.zsets[_pending(stale.order_id)]


async def test_a_settled_order_found_on_the_pending_list_is_taken_off_it() -> None:
    store = MemoryStore()
    order = await _placed(store)
    settled = types_pb2.Order()
    settled.CopyFrom(order)
    settled.status = types_pb2.ORDER_STATUS_PAID
    await order_handlers.resume_order(settled, order_unit_of_work(store))
    assert order.order_id not in store.zsets[_pending(order.order_id)]


@pytest.mark.parametrize("order_id", ["key:k-1", "settled:ord_1", "ledger", "ord_1:1", "x"])
async def test_a_look_up_cannot_name_a_key_that_is_not_an_order(order_id: str) -> None:
    store = MemoryStore()
    with pytest.raises(errors.InvalidArgument):
        await order_handlers.get_order(order_id, order_unit_of_work(store, None))
    with pytest.raises(errors.InvalidArgument):
        await payment_handlers.get_payment(order_id, payment_bootstrap.unit_of_work(reader=store, committer=store))


async def test_an_update_whose_payload_is_another_order_or_empty_reaches_no_watcher() -> None:
    updates = OrderUpdates(None)  # type: ignore[arg-type]  # _deliver needs no client
    other = types_pb2.Order(order_id="ord_other", status=types_pb2.ORDER_STATUS_PAID)
    async with updates.watch("ord_mine") as queue:
        updates._deliver(b"ord_mine " + other.SerializeToString())
        updates._deliver(b"ord_mine ")
        assert queue.empty()
        mine = types_pb2.Order(order_id="ord_mine", status=types_pb2.ORDER_STATUS_PAID)
        updates._deliver(b"ord_mine " + mine.SerializeToString())
        assert await asyncio.wait_for(queue.get(), 1) == mine


def test_a_downstream_bug_is_internal_upstream_without_its_contradicting_details() -> None:
    trailing = grpc.aio.Metadata(("grpc-status-details-bin", b"\x08\x0d"))
    downstream = grpc.aio.AioRpcError(grpc.StatusCode.INTERNAL, grpc.aio.Metadata(), trailing, "boom")
    status = status_for(downstream)
    assert status.code is grpc.StatusCode.INTERNAL
    assert all(key != "grpc-status-details-bin" or value != b"\x08\x0d" for key, value in status.trailing_metadata)


def test_a_refused_currency_code_is_echoed_bounded() -> None:
    from shoplib.rules import money

    [(field, description)] = money.violations("price", types_pb2.Money(currency_code="X" * 100_000))
    assert field == "price.currency_code" and len(description) < 100
