"""Payment decisions, shared by both modes. Depends on payment_svc.ports only: importing this
loads neither grpc nor redis."""

from __future__ import annotations

import asyncio

from shop.v1 import events_pb2, payment_service_pb2, types_pb2

from payment_svc import domain
from payment_svc.ports import UnitOfWork
from shoplib import errors, log
from shoplib.rules.fields import order_id_violations

_logger = log.get("payment_svc")


async def charge(cmd: payment_service_pb2.ChargeRequest, uow: UnitOfWork, rules: domain.Rules,
                 delay_s: float = 0.0) -> types_pb2.Payment:
    """Charge the order once, ever: a repeat returns the first outcome and charges nothing.
    Optimistic: the commit itself finds out (once key) whether the order was charged before."""
    return await _charge(cmd.order_id, cmd.customer_id, cmd.amount, uow, rules, delay_s)


async def _charge(order_id: str, customer_id: str, amount: types_pb2.Money, uow: UnitOfWork, rules: domain.Rules,
                  delay_s: float) -> types_pb2.Payment:
    if violations := domain.violations(order_id, customer_id, amount):
        raise errors.InvalidArgument(violations)
    log.bind(order_id=order_id)
    if delay_s:
        await asyncio.sleep(delay_s)
    payment = domain.decide(order_id, customer_id, amount, rules)
    uow.emit(domain.outcome_event(payment))
    uow.payments.add(payment)
    if await uow.commit(once=uow.payments.charge_once(payment)):
        if log.debugging():
            _logger.debug("payment.charged", payment_id=payment.payment_id, amount_minor=payment.amount.amount_minor,
                          status=types_pb2.PaymentStatus.Name(payment.status))
        await uow.publish()
        return payment
    existing = await get_payment(order_id, uow)  # charged before: same outcome, charged nothing
    await uow.republish(domain.outcome_event(existing))  # in case its first outcome never arrived
    return existing


async def get_payment(order_id: str, uow: UnitOfWork) -> types_pb2.Payment:
    if violations := order_id_violations("order_id", order_id):
        raise errors.InvalidArgument(violations)
    payment = await uow.payments.get(order_id)
    if payment is None:
        raise errors.NotFound(f"no payment for order {order_id!r}")
    return payment


async def order_placed(event: events_pb2.OrderPlaced, uow: UnitOfWork, rules: domain.Rules,
                       delay_s: float = 0.0) -> types_pb2.Payment:
    """Events mode: an order was placed, so charge it (as `charge`, with no request built)."""
    order = event.order
    return await _charge(order.order_id, order.customer_id, order.total, uow, rules, delay_s)
