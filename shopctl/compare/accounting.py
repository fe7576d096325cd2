"""Every order accounted for: answered, terminal with the right outcome, charged once, notified once.

Reads through the public API (GetOrder), the notification service (ListNotifications) and the
payment ledger (Redis lists `payment:{pN}:ledger`, one entry per charge ever made, one per partition).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import redis.asyncio as aioredis
from shop.v1 import gateway_service_pb2 as gw
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import notification_service_pb2 as nt
from shop.v1 import notification_service_pb2_grpc as nt_grpc
from shop.v1 import types_pb2

from shopctl.load import TERMINAL, Record
from shoplib.store import partitions
from shoplib.store.connections import as_bytes


def ledger_key(partition: int) -> str:
    """payment_svc.adapters.ledger_key (the comparison does not import services)."""
    return partitions.key("payment", partition, "ledger")


CHECKS_IN_FLIGHT = 32  # verification calls at once: quick, without flooding the services
CHECK_TIMEOUT_S = 10.0
OUTCOME_KINDS = frozenset({types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT, types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED})


@dataclass
class Accounting:
    placed: int = 0  # PlaceOrder calls
    accepted: int = 0  # answered OK
    failed: dict[str, int] = field(default_factory=dict)  # answered with an error, by status code
    terminal: int = 0  # accepted orders found PAID or PAYMENT_DECLINED
    lost: int = 0  # accepted orders missing or still not terminal
    wrong_outcome: int = 0  # terminal, but not the outcome its amount calls for
    charged_twice: int = 0  # more than one ledger entry for the order
    not_charged: int = 0  # terminal, but no ledger entry
    notified_wrong: int = 0  # not exactly one "order received" and one outcome notification
    receipts: dict[str, float] = field(default_factory=dict, repr=False)  # order id -> outcome notice time

    def as_dict(self) -> dict[str, Any]:
        found = asdict(self)
        del found["receipts"]
        return found

    @property
    def clean(self) -> bool:
        return not (self.lost or self.wrong_outcome or self.charged_twice or self.not_charged or self.notified_wrong)


async def ledger(client: aioredis.Redis) -> Counter[str]:
    return Counter([as_bytes(raw).decode() for p in partitions.every()
                    for raw in await client.lrange(ledger_key(p), 0, -1)])


async def _order(gateway: gw_grpc.GatewayServiceAsyncStub, order_id: str) -> types_pb2.Order | None:
    try:
        reply = await gateway.GetOrder(gw.GetOrderRequest(order_id=order_id), timeout=CHECK_TIMEOUT_S)
    except grpc.aio.AioRpcError:
        return None
    return reply.order


async def _notes(notifier: nt_grpc.NotificationServiceAsyncStub, order_id: str) -> list[types_pb2.Notification]:
    try:
        reply = await notifier.ListNotifications(nt.ListNotificationsRequest(order_id=order_id),
                                                 timeout=CHECK_TIMEOUT_S)
    except grpc.aio.AioRpcError:
        return []  # counted as wrongly notified
    return list(reply.notifications)


def _check_order(found: Accounting, record: Record, order: types_pb2.Order | None, charges: int) -> None:
    if order is None or order.status not in TERMINAL:
        found.lost += 1
        return
    found.terminal += 1
    wanted = types_pb2.ORDER_STATUS_PAYMENT_DECLINED if record.declined else types_pb2.ORDER_STATUS_PAID
    found.wrong_outcome += order.status != wanted
    found.charged_twice += charges > 1
    found.not_charged += charges == 0


def _check_notes(found: Accounting, order_id: str, notes: list[types_pb2.Notification]) -> None:
    kinds = Counter(note.kind for note in notes)
    outcome = [note for note in notes if note.kind in OUTCOME_KINDS]
    found.notified_wrong += kinds[types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED] != 1 or len(outcome) != 1
    if outcome:
        found.receipts[order_id] = outcome[0].create_time.ToNanoseconds() / 1e9


async def account(records: list[Record], gateway: gw_grpc.GatewayServiceAsyncStub, client: aioredis.Redis,
                  notifier: nt_grpc.NotificationServiceAsyncStub | None = None) -> Accounting:
    """Check every accepted order; with `notifier`, its notifications too (and note receipt times)."""
    accepted = [r for r in records if r.code == "OK"]
    found = Accounting(placed=len(records), accepted=len(accepted),
                       failed=dict(Counter(r.code for r in records if r.code != "OK")))
    charges, slots = await ledger(client), asyncio.Semaphore(CHECKS_IN_FLIGHT)

    async def check(record: Record) -> None:
        async with slots:
            _check_order(found, record, await _order(gateway, record.order_id), charges[record.order_id])
            if notifier is not None:
                _check_notes(found, record.order_id, await _notes(notifier, record.order_id))

    await asyncio.gather(*(check(r) for r in accepted))
    return found
