"""Events mode's outbox: the event is staged as a stream entry inside the handler's own commit."""

from __future__ import annotations

from shop.v1 import events_pb2, order_service_pb2, types_pb2

from order_svc import handlers
from shoplib import catalogue
from shoplib.commit.unit_of_work import BaseUnitOfWork, StreamPublisher
from shoplib.store import partitions
from shoplib.testing import MemoryStore
from tests.support import line, new_id
from tests.unit.fakes import order_unit_of_work

SOURCE = "/shop/test"


def in_partition(stream: str, order_id: str) -> str:
    """The stream of the order's partition."""
    return partitions.stream(stream, partitions.partition_of_order(order_id))


def decoded(entry: dict[str, bytes]) -> tuple[events_pb2.EventEnvelope, object]:
    """What a consumer reads back: Redis hands it bytes keys."""
    return catalogue.decode({key.encode(): value for key, value in entry.items()})


async def test_an_emitted_order_placed_is_staged_as_one_xadd_to_order_events() -> None:
    store = MemoryStore()
    order = types_pb2.Order(order_id=new_id("ord"), customer_id="cust-1")
    uow = BaseUnitOfWork(store, StreamPublisher(SOURCE))
    uow.emit(events_pb2.OrderPlaced(order=order))
    assert await uow.commit()
    assert list(store.streams) == [in_partition(catalogue.ORDER_EVENTS, order.order_id)]
    [entry] = store.streams[in_partition(catalogue.ORDER_EVENTS, order.order_id)]
    assert set(entry) == {"id", "type", "subject", "envelope"}
    assert entry["type"] == b"shop.order.placed.v1"
    assert entry["subject"] == order.order_id.encode()


async def test_a_staged_entry_decodes_back_to_its_envelope_and_event() -> None:
    store = MemoryStore()
    event = events_pb2.OrderPlaced(order=types_pb2.Order(order_id=new_id("ord"), customer_id="cust-1"))
    uow = BaseUnitOfWork(store, StreamPublisher(SOURCE))
    uow.emit(event)
    await uow.commit()
    [entry] = store.streams[in_partition(catalogue.ORDER_EVENTS, event.order.order_id)]
    envelope, payload = decoded(entry)
    assert payload == event
    assert entry["id"] == envelope.id.encode()
    assert (envelope.source, envelope.specversion, envelope.type, envelope.subject, envelope.datacontenttype) == (
        SOURCE, "1.0", "shop.order.placed.v1", event.order.order_id, catalogue.CONTENT_TYPE)
    assert envelope.dataschema == "type.googleapis.com/shop.v1.OrderPlaced"
    assert envelope.time.seconds > 0


async def test_payment_outcomes_go_to_payment_events() -> None:
    store = MemoryStore()
    uow = BaseUnitOfWork(store, StreamPublisher(SOURCE))
    payment = types_pb2.Payment(order_id=new_id("ord"))
    uow.emit(events_pb2.PaymentSucceeded(payment=payment))
    uow.emit(events_pb2.PaymentDeclined(payment=payment))
    await uow.commit()
    stream = in_partition(catalogue.PAYMENT_EVENTS, payment.order_id)
    types = [decoded(entry)[0].type for entry in store.streams[stream]]
    assert types == ["shop.payment.succeeded.v1", "shop.payment.declined.v1"]


async def test_placing_an_order_in_events_mode_stores_it_and_its_event_in_one_commit() -> None:
    store = MemoryStore()
    request = order_service_pb2.CreateOrderRequest(idempotency_key=new_id("key"), customer_id="cust-1",
                                                   lines=[line()], mode=types_pb2.FLOW_MODE_EVENTS)
    order = await handlers.place_order(request, order_unit_of_work(store, SOURCE))
    assert store.commits == 1
    [entry] = store.streams[in_partition(catalogue.ORDER_EVENTS, order.order_id)]
    assert decoded(entry)[1] == events_pb2.OrderPlaced(order=order)


async def test_a_retried_events_mode_order_adds_no_second_entry() -> None:
    store = MemoryStore()
    request = order_service_pb2.CreateOrderRequest(idempotency_key=new_id("key"), customer_id="cust-1",
                                                   lines=[line()], mode=types_pb2.FLOW_MODE_EVENTS)
    for _ in range(2):
        order = await handlers.place_order(request, order_unit_of_work(store, SOURCE))
    assert len(store.streams[in_partition(catalogue.ORDER_EVENTS, order.order_id)]) == 1
