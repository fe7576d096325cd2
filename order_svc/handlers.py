"""Order decisions, shared by both modes: place an order, settle it, show it.

Depends on order_svc.ports only: importing this loads neither grpc nor redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.message import Message
from shop.v1 import events_pb2, order_service_pb2, types_pb2

from order_svc import domain
from order_svc.ports import RESYNC_S, UnitOfWork, Validate, Watch
from shoplib import errors, log
from shoplib.rules import fields

_logger = log.get("order_svc")


async def place_order(cmd: order_service_pb2.CreateOrderRequest, uow: UnitOfWork,
                      validate: Validate = domain.violations, traceparent: str = "") -> types_pb2.Order:
    """Store a new order with its OrderPlaced event, or return the one this key already placed.
    Optimistic: the commit's once key (the idempotency key) tells a retry from a new order.
    `traceparent`: the request's trace context, stored with the order for work resumed later."""
    lines = list(cmd.lines)
    if violations := validate(cmd.idempotency_key, cmd.customer_id, lines, cmd.mode):
        raise errors.InvalidArgument(violations)
    fingerprint = domain.fingerprint(cmd.customer_id, lines, cmd.mode)
    order = domain.new_order(cmd.idempotency_key, cmd.customer_id, lines, cmd.mode, traceparent)
    log.bind(order_id=order.order_id)
    uow.orders.add(order)
    uow.emit(events_pb2.OrderPlaced(order=order))
    if not await uow.commit(once=uow.orders.reservation(cmd.idempotency_key, fingerprint, order.order_id)):
        return await _replay(fingerprint, await uow.orders.reserved(cmd.idempotency_key), uow)
    _logger.debug("order.placed", total_minor=order.total.amount_minor, mode=types_pb2.FlowMode.Name(order.mode))
    try:
        return await uow.publish() or order  # sync: the settled order; events: as stored (PENDING)
    except errors.Unavailable as exc:
        raise _stored_but_unfinished(exc, order) from None


def _stored_but_unfinished(exc: errors.Unavailable, order: types_pb2.Order) -> errors.Unavailable:
    """The order exists and will complete (reconciler); the caller must not place it anew."""
    return errors.Unavailable(
        f"{exc.message}; order {order.order_id} is stored PENDING and completes when the service is back: "
        "follow it, or retry with the same idempotency_key (a new key would place a second order)",
        {**exc.metadata, "order_id": order.order_id, "idempotency_key": order.idempotency_key})


async def _replay(fingerprint: str, reserved: tuple[str, str] | None, uow: UnitOfWork) -> types_pb2.Order:
    """A retry with a known key: same request → same order (resumed if still pending)."""
    if reserved is None or reserved[0] != fingerprint:
        raise errors.AlreadyExists("idempotency_key was already used for a different order",
                                   reason="IDEMPOTENCY_KEY_REUSED")
    order = await _existing(reserved[1], uow)
    log.bind(order_id=order.order_id)
    _logger.info("order.replayed", status=types_pb2.OrderStatus.Name(order.status))
    return order if order.status in domain.TERMINAL else await _resend(order, uow)


async def _resend(order: types_pb2.Order, uow: UnitOfWork) -> types_pb2.Order:
    """Follow up a pending order again (sync: the chain; events: nothing, its event exists)."""
    try:
        return await uow.resend(events_pb2.OrderPlaced(order=order)) or order
    except errors.Unavailable as exc:
        raise _stored_but_unfinished(exc, order) from None


async def _existing(order_id: str, uow: UnitOfWork) -> types_pb2.Order:
    order = await uow.orders.get(order_id)
    if order is None:
        raise errors.NotFound(f"order {order_id!r} not found")
    return order


async def settle_order(event: events_pb2.PaymentSucceeded | events_pb2.PaymentDeclined, uow: UnitOfWork
                       ) -> types_pb2.Order:
    """Move the order to PAID or PAYMENT_DECLINED, once, by its payment's outcome."""
    payment = event.payment
    log.bind(order_id=payment.order_id)
    order = await _existing(payment.order_id, uow)
    if order.status in domain.TERMINAL:
        return order
    settled = domain.settle(order, payment)
    uow.orders.add(settled)
    if not await uow.commit(once=uow.orders.settlement(order.order_id)):
        return await _existing(order.order_id, uow)  # settled before, maybe by another path
    _logger.debug("order.settled", status=types_pb2.OrderStatus.Name(settled.status))
    await uow.publish()
    return settled


async def resume_order(order: types_pb2.Order, uow: UnitOfWork) -> types_pb2.Order:
    """Finish an order left PENDING: sync calls the chain again, events publishes its OrderPlaced
    anew (a re-drive). Every step downstream is idempotent, so either is safe to repeat."""
    log.bind(order_id=order.order_id)
    if order.status in domain.TERMINAL:  # settled meanwhile, still listed: tidy the list
        return await _unlist(order, uow)
    _logger.info("order.resuming", mode=types_pb2.FlowMode.Name(order.mode))
    if order.mode == types_pb2.FLOW_MODE_EVENTS:
        uow.orders.redriven(order.order_id)
    return await uow.republish(events_pb2.OrderPlaced(order=order)) or order


async def _unlist(order: types_pb2.Order, uow: UnitOfWork) -> types_pb2.Order:
    uow.orders.settled(order)
    await uow.commit()
    return order


async def get_order(order_id: str, uow: UnitOfWork) -> types_pb2.Order:
    if violations := fields.order_id_violations("order_id", order_id):
        raise errors.InvalidArgument(violations)
    return await _existing(order_id, uow)


async def follow_order(order_id: str, uow: UnitOfWork, watch: Watch) -> AsyncIterator[types_pb2.Order]:
    """The order now and at every status change, until terminal (subscribe first, then read,
    so no change between the two is missed)."""
    async with watch(order_id) as updates:
        order = await get_order(order_id, uow)
        yield order
        while order.status not in domain.TERMINAL:
            latest = await _next_update(order_id, updates, uow)
            if latest.status != order.status:
                yield latest
            order = latest


async def _next_update(order_id: str, updates: asyncio.Queue[types_pb2.Order], uow: UnitOfWork) -> types_pb2.Order:
    """The next pushed status, or the stored order after RESYNC_S without news (a lost push)."""
    try:
        return await asyncio.wait_for(updates.get(), RESYNC_S)
    except TimeoutError:
        return await _existing(order_id, uow)


# The order service's event handlers, by event type: the stream consumer (payment-events) and
# the sync chain (a Charge reply turned into the same event) both dispatch through this table.
EVENT_HANDLERS: Mapping[type[Message], Callable[[Any, UnitOfWork], Awaitable[types_pb2.Order]]] = {
    events_pb2.PaymentSucceeded: settle_order,
    events_pb2.PaymentDeclined: settle_order,
}
