"""Payment decisions, shared by both modes."""

from __future__ import annotations

import asyncio

from shop.v1 import payment_service_pb2, types_pb2

from payment_svc import domain
from payment_svc.adapters import PaymentUnitOfWork
from shoplib import errors, log

_logger = log.get("payment_svc")


async def charge(cmd: payment_service_pb2.ChargeRequest, uow: PaymentUnitOfWork, rules: domain.Rules,
                 delay_s: float = 0.0) -> types_pb2.Payment:
    """Charge the order once, ever: a repeat returns the first outcome and charges nothing.
    Optimistic: the commit itself finds out (once key) whether the order was charged before."""
    if violations := domain.problems(cmd.order_id, cmd.customer_id, cmd.amount):
        raise errors.InvalidArgument(violations)
    log.bind(order_id=cmd.order_id)
    if delay_s:
        await asyncio.sleep(delay_s)
    payment = domain.decide(cmd.order_id, cmd.customer_id, cmd.amount, rules)
    uow.emit(domain.outcome_event(payment))
    if await uow.commit(once=uow.payments.record(payment)):
        _logger.info("payment.charged", payment_id=payment.payment_id,
                     status=types_pb2.PaymentStatus.Name(payment.status), amount_minor=payment.amount.amount_minor)
        await uow.publish()
        return payment
    existing = await get_payment(cmd.order_id, uow)  # charged before: same outcome, charged nothing
    await uow.republish(domain.outcome_event(existing))  # in case its first outcome never arrived
    return existing


async def get_payment(order_id: str, uow: PaymentUnitOfWork) -> types_pb2.Payment:
    if not order_id.strip():
        raise errors.InvalidArgument([("order_id", "must not be empty")])
    payment = await uow.payments.get(order_id)
    if payment is None:
        raise errors.NotFound(f"no payment for order {order_id!r}")
    return payment
