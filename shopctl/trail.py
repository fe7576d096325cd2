"""What one request left behind: its log lines from all four services in time order, and the
payment and notifications of its order read back through the services' APIs.

Services log one JSON object per line with "service", "event", "timestamp" and, where bound,
"correlation_id", "rpc" and "order_id"; the demo gives each request its own correlation id.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import grpc
from shop.v1 import (
    notification_service_pb2,
    notification_service_pb2_grpc,
    payment_service_pb2,
    payment_service_pb2_grpc,
    types_pb2,
)

from shopctl.stack import SERVICES
from shoplib.rules.money import format_money

# Shown elsewhere (heading, column) or bookkeeping ids a reader does not need: not shown as key=value.
_HIDDEN = frozenset({"service", "event", "timestamp", "correlation_id", "level", "order_id", "rpc",
                     "event_id", "entry_id", "group"})
# A service writes its last line just before its answer leaves; polling this many times, this far
# apart, until nothing new appears covers the lines still on their way to the file.
SETTLE_POLLS = 10
SETTLE_INTERVAL_S = 0.05
CALL_TIMEOUT_S = 5.0  # one read-back call; far above a healthy answer


@dataclass(frozen=True)
class Line:
    at: datetime
    service: str
    event: str
    fields: dict[str, object]


def _parse(raw: str) -> Line | None:
    try:
        record = json.loads(raw)
        return Line(datetime.fromisoformat(record["timestamp"]), record["service"], record["event"], record)
    except (ValueError, KeyError, TypeError):
        return None  # not one of our JSON lines (a stray print, a half-written line)


def read(log_dir: Path, correlation_id: str) -> list[Line]:
    """Every line of `correlation_id` in the four service logs, oldest first."""
    found: list[Line] = []
    for name in SERVICES:
        path = log_dir / f"{name}.log"
        raws = path.read_text(errors="replace").splitlines() if path.exists() else []
        found += [line for raw in raws if correlation_id in raw and (line := _parse(raw))
                  and line.fields.get("correlation_id") == correlation_id]
    return sorted(found, key=lambda line: line.at)


def settled(log_dir: Path, correlation_id: str) -> list[Line]:
    """Like `read`, once two reads in a row agree (bounded by SETTLE_POLLS)."""
    lines = read(log_dir, correlation_id)
    for _ in range(SETTLE_POLLS):
        time.sleep(SETTLE_INTERVAL_S)
        again = read(log_dir, correlation_id)
        if len(again) == len(lines):
            break
        lines = again
    return lines


def _value(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return f'"{text}"' if " " in text else text


def details(line: Line) -> str:
    """The interesting fields: the RPC's short name for rpc.* lines, then key=value pairs."""
    parts = [f"{key}={_value(value)}" for key, value in line.fields.items() if key not in _HIDDEN]
    if line.event.startswith("rpc.") and "rpc" in line.fields:
        parts.insert(0, str(line.fields["rpc"]).removeprefix("/shop.v1.").replace("/", "."))
    return "  ".join(parts)


def render(lines: list[Line]) -> list[str]:
    """`+12.3 ms  payment       payment.charged    status=...`, offsets from the first line."""
    if not lines:
        return ["(no log lines with this correlation id)"]
    first = lines[0].at
    width = max(len(line.event) for line in lines)
    return [f"{(line.at - first).total_seconds() * 1000:+7.1f} ms  {line.service:<13} {line.event:<{width}}  "
            f"{details(line)}" for line in lines]


def print_log_trail(log_dir: Path, correlation_id: str) -> list[Line]:
    lines = settled(log_dir, correlation_id)
    print("  what every service did (its log lines for this correlation id):")
    for text in render(lines):
        print(f"    {text}")
    return lines


async def _print_payment(payments: payment_service_pb2_grpc.PaymentServiceAsyncStub, order_id: str) -> None:
    try:
        reply = await payments.GetPayment(payment_service_pb2.GetPaymentRequest(order_id=order_id),
                                          timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        print(f"    payment        none ({error.code().name})")
        return
    p = reply.payment
    status, reason = types_pb2.PaymentStatus.Name(p.status), f"  ({p.decline_reason})" if p.decline_reason else ""
    print(f"    payment        {p.payment_id}  {status}  {format_money(p.amount)}{reason}")


async def print_read_back(payments: payment_service_pb2_grpc.PaymentServiceAsyncStub,
                          notifications: notification_service_pb2_grpc.NotificationServiceAsyncStub,
                          order_id: str) -> None:
    """The order's payment (PaymentService.GetPayment) and notifications (ListNotifications)."""
    print("  read back through the APIs:")
    await _print_payment(payments, order_id)
    reply = await notifications.ListNotifications(
        notification_service_pb2.ListNotificationsRequest(order_id=order_id), timeout=CALL_TIMEOUT_S)
    for note in reply.notifications:
        kind = types_pb2.NotificationKind.Name(note.kind).removeprefix("NOTIFICATION_KIND_")
        print(f"    notification   {kind:<17}{note.message}")
