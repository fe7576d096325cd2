"""Order handlers on the in-memory store: placing is idempotent on the key, settling happens once."""

from __future__ import annotations

import pytest
from shop.v1 import events_pb2, order_service_pb2, types_pb2

from order_svc import bootstrap as order_bootstrap
from order_svc import handlers
from order_svc.adapters import UPDATES_CHANNEL, OrderUnitOfWork, order_key, outcome_event
from shoplib import errors
from shoplib.commit.unit_of_work import Publisher
from shoplib.testing import MemoryStore
from tests.support import line, new_id
from tests.unit.fakes import RecordingPublisher


def place_request(key: str, customer: str = "cust-1", lines: tuple[types_pb2.OrderLine, ...] = (line(),),
                  mode: int = types_pb2.FLOW_MODE_SYNC) -> order_service_pb2.CreateOrderRequest:
    return order_service_pb2.CreateOrderRequest(idempotency_key=key, customer_id=customer, lines=lines, mode=mode)


def stored_orders(store: MemoryStore) -> dict[str, types_pb2.Order]:
    return {key: types_pb2.Order.FromString(raw) for key, raw in store.values.items()
            if key.startswith("order:") and key.count(":") == 2 and key.rpartition(":")[2].startswith("ord_")}


def uow(store: MemoryStore, publisher: Publisher[types_pb2.Order] | None = None) -> OrderUnitOfWork:
    return order_bootstrap.unit_of_work(reader=store, committer=store, publisher=publisher)


async def test_placing_an_order_stores_one_pending_order_and_emits_order_placed() -> None:
    store, publisher = MemoryStore(), RecordingPublisher()
    order = await handlers.place_order(place_request(new_id("key"), lines=(line("a", 2, 500),)), uow(store, publisher))
    assert order.status == types_pb2.ORDER_STATUS_PENDING
    assert order.total.amount_minor == 1_000
    assert stored_orders(store) == {order_key(order.order_id): order}
    assert publisher.staged == publisher.published == [events_pb2.OrderPlaced(order=order)]
    assert [channel for channel, _ in store.published] == [UPDATES_CHANNEL]  # live watchers are told


async def test_the_same_key_and_request_return_the_same_order_and_create_nothing_more() -> None:
    store, key = MemoryStore(), new_id("key")
    first = await handlers.place_order(place_request(key), uow(store))
    commits, values = store.commits, dict(store.values)
    publisher = RecordingPublisher()
    again = await handlers.place_order(place_request(key), uow(store, publisher))
    assert again == first
    assert (store.commits, store.values) == (commits, values)
    assert publisher.published == []


async def test_a_retry_of_a_pending_order_resends_its_order_placed_to_resume_the_flow() -> None:
    store, key = MemoryStore(), new_id("key")
    first = await handlers.place_order(place_request(key), uow(store))
    publisher = RecordingPublisher()
    await handlers.place_order(place_request(key), uow(store, publisher))
    assert publisher.resent == [events_pb2.OrderPlaced(order=first)]


async def test_a_retry_of_a_settled_order_resends_nothing() -> None:
    store, key = MemoryStore(), new_id("key")
    first = await handlers.place_order(place_request(key), uow(store))
    await handlers.settle_order(outcome_event(types_pb2.Payment(
        order_id=first.order_id, status=types_pb2.PAYMENT_STATUS_SUCCEEDED)), uow(store))
    publisher = RecordingPublisher()
    again = await handlers.place_order(place_request(key), uow(store, publisher))
    assert again.status == types_pb2.ORDER_STATUS_PAID
    assert publisher.resent == []


@pytest.mark.parametrize("different", [
    {"customer": "cust-2"},
    {"lines": (line(quantity=2),)},
    {"mode": types_pb2.FLOW_MODE_EVENTS},
])
async def test_the_same_key_with_a_different_request_is_already_exists(different: dict[str, object]) -> None:
    store, key = MemoryStore(), new_id("key")
    await handlers.place_order(place_request(key), uow(store))
    orders = stored_orders(store)
    with pytest.raises(errors.AlreadyExists) as raised:
        await handlers.place_order(place_request(key, **different), uow(store))  # type: ignore[arg-type]
    assert raised.value.reason == "IDEMPOTENCY_KEY_REUSED"
    assert stored_orders(store) == orders


async def test_an_invalid_request_is_refused_before_anything_is_stored() -> None:
    store = MemoryStore()
    with pytest.raises(errors.InvalidArgument) as raised:
        await handlers.place_order(place_request("", customer="", lines=()), uow(store))
    assert [field for field, _ in raised.value.violations] == ["idempotency_key", "customer_id", "lines"]
    assert store.commits == 0


@pytest.mark.parametrize(("outcome", "status"), [
    (types_pb2.PAYMENT_STATUS_SUCCEEDED, types_pb2.ORDER_STATUS_PAID),
    (types_pb2.PAYMENT_STATUS_DECLINED, types_pb2.ORDER_STATUS_PAYMENT_DECLINED),
])
async def test_settling_moves_a_pending_order_to_its_terminal_status(outcome: int, status: int) -> None:
    store = MemoryStore()
    order = await handlers.place_order(place_request(new_id("key")), uow(store))
    settled = await handlers.settle_order(outcome_event(types_pb2.Payment(order_id=order.order_id, status=outcome)),
                                          uow(store))
    assert settled.status == status
    assert stored_orders(store)[order_key(order.order_id)].status == status


async def test_settling_happens_once_and_a_later_outcome_changes_nothing() -> None:
    store = MemoryStore()
    order = await handlers.place_order(place_request(new_id("key")), uow(store))
    paid = types_pb2.Payment(order_id=order.order_id, status=types_pb2.PAYMENT_STATUS_SUCCEEDED)
    await handlers.settle_order(outcome_event(paid), uow(store))
    commits, values = store.commits, dict(store.values)
    declined = types_pb2.Payment(order_id=order.order_id, status=types_pb2.PAYMENT_STATUS_DECLINED)
    again = await handlers.settle_order(outcome_event(declined), uow(store))
    assert again.status == types_pb2.ORDER_STATUS_PAID
    assert (store.commits, store.values) == (commits, values)


async def test_settling_an_unknown_order_is_not_found() -> None:
    with pytest.raises(errors.NotFound):
        await handlers.settle_order(outcome_event(types_pb2.Payment(order_id="ord_missing")), uow(MemoryStore()))


async def test_getting_an_order_needs_an_id_and_an_existing_order() -> None:
    store = MemoryStore()
    order = await handlers.place_order(place_request(new_id("key")), uow(store))
    assert await handlers.get_order(order.order_id, uow(store)) == order
    with pytest.raises(errors.InvalidArgument):
        await handlers.get_order(" ", uow(store))
    with pytest.raises(errors.NotFound):
        await handlers.get_order("ord_missing", uow(store))
