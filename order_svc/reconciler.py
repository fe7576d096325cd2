"""Recovery: no order stays PENDING for ever, in either mode.

A sync order stays PENDING when payment or notification is down (the caller got UNAVAILABLE);
an events order stays PENDING when its event was lost or stuck (a group deleted, an entry
dead-lettered, a stream trimmed by hand). Every step downstream is idempotent (charge once per
order, one notification per kind), so resuming a sync chain or re-driving an event is safe
whether the interrupted step had happened or not: never charged and forgotten, never twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from shop.v1 import types_pb2

from order_svc import domain, handlers
from order_svc.ports import UnitOfWork
from shoplib import errors, log
from shoplib.observability import later_work
from shoplib.store import connections, outage

# Sync orders younger than this are left to their caller (it may still be waiting or retrying).
RESUME_AFTER_MS = 10_000
# Events orders younger than this are left to the consumers (a backlog may be draining); a
# re-driven order is not re-driven again before another period has passed.
REDRIVE_AFTER_MS = 60_000
# How often the reconciler looks, and how many orders of each mode it takes per look (bounded work).
INTERVAL_S = 2.0
BATCH = 50
_logger = log.get("order_svc.reconciler")


class Reconciler:
    def __init__(self, unit_of_work: Callable[[types_pb2.FlowMode.ValueType], UnitOfWork],
                 after_ms: Mapping[types_pb2.FlowMode.ValueType, int] | None = None) -> None:
        """`after_ms`: per mode it recovers, how old a PENDING order must be (default: both modes)."""
        self._uow = unit_of_work
        self._after = dict(after_ms if after_ms is not None else {
            types_pb2.FLOW_MODE_SYNC: RESUME_AFTER_MS, types_pb2.FLOW_MODE_EVENTS: REDRIVE_AFTER_MS})

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await self.once()
                connections.stop_if_cancelled()  # one round is 2 x PARTITIONS Redis reads
            except Exception as exc:  # a down dependency: try again next round
                if not (outage.is_outage(exc) or isinstance(exc, errors.Unavailable)):
                    raise
                _logger.warning("reconciler.round_failed", error=outage.describe(exc))

    async def once(self) -> int:
        """Resume or re-drive the orders due now; returns how many are settled afterwards."""
        settled = 0
        for mode, after_ms in self._after.items():  # "due" on the store's clock: a wall-clock step changes nothing
            for order_id in await self._uow(mode).orders.pending(mode, after_ms, BATCH):
                settled += await self._resume(order_id, mode)
        return settled

    async def _resume(self, order_id: str, mode: types_pb2.FlowMode.ValueType) -> bool:
        uow = self._uow(mode)
        order = await uow.orders.get(order_id)
        if order is None:
            _logger.error("reconciler.order_missing", order_id=order_id)
            return False
        try:
            with later_work.resumed("resume order", order_id, order.traceparent):  # in the order's trace
                order = await handlers.resume_order(order, uow)
        except errors.Unavailable as exc:  # the next service is still down (or hung): next round
            _logger.info("reconciler.still_unavailable", order_id=order_id, error=exc.message[:200])
            return False
        except Exception as exc:  # one order that fails (any answer but a settled one) never stops the rest
            _logger.warning("reconciler.resume_failed", order_id=order_id, error=f"{type(exc).__name__}: {exc}"[:300])
            return False
        return order.status in domain.TERMINAL
