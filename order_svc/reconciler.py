"""Sync mode's recovery rule: an order whose chain was interrupted is completed later.

A sync order stays PENDING when payment or notification is down (the caller got UNAVAILABLE).
Every step is idempotent (charge once per order, one notification per kind), so resuming the
chain is safe whether the interrupted call had reached its server or not: the order is never
charged and forgotten, and never charged twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from order_svc import handlers
from order_svc.adapters import OrderUnitOfWork
from shoplib import errors, faults, log

# Orders younger than this are left to their caller (it may still be waiting or retrying).
RESUME_AFTER_MS = 10_000
# How often the reconciler looks, and how many orders it resumes per look (bounded work).
INTERVAL_S = 2.0
BATCH = 50
_logger = log.get("order_svc.reconciler")


class Reconciler:
    def __init__(self, unit_of_work: Callable[[], OrderUnitOfWork], resume_after_ms: int = RESUME_AFTER_MS) -> None:
        self._uow, self._resume_after_ms = unit_of_work, resume_after_ms

    async def run(self) -> None:
        while True:
            await asyncio.sleep(INTERVAL_S)
            try:
                await self.once()
            except Exception as exc:  # a down dependency: try again next round
                _logger.warning("reconciler.round_failed", error=f"{type(exc).__name__}: {exc}"[:200])

    async def once(self) -> int:
        """Resume the orders due now; returns how many were settled."""
        if faults.fires("no_resume"):  # control runs only (faults.py)
            return 0
        due = await self._uow().orders.pending_sync(int(time.time() * 1000) - self._resume_after_ms, BATCH)
        settled = 0
        for order_id in due:
            try:
                order = await handlers.resume_order(order_id, self._uow())
                settled += order.status in handlers.domain.TERMINAL
            except errors.NotFound:
                _logger.error("reconciler.order_missing", order_id=order_id)
        return settled
