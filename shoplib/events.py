"""The event catalogue: each event type, its versioned name, its stream, and the envelope."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError, Message
from shop.v1 import events_pb2

from shoplib import clock, log

ORDER_EVENTS = "order-events"
PAYMENT_EVENTS = "payment-events"
NOTIFICATION_EVENTS = "notification-events"
CONTENT_TYPE = "application/protobuf"


@dataclass(frozen=True)
class EventType:
    name: str
    message: type[Message]
    stream: str
    subject: Callable[[Message], str]


CATALOGUE = [
    EventType("shop.order.placed.v1", events_pb2.OrderPlaced, ORDER_EVENTS, lambda e: e.order.order_id),  # type: ignore[attr-defined]
    EventType("shop.payment.succeeded.v1", events_pb2.PaymentSucceeded, PAYMENT_EVENTS,
              lambda e: e.payment.order_id),  # type: ignore[attr-defined]
    EventType("shop.payment.declined.v1", events_pb2.PaymentDeclined, PAYMENT_EVENTS,
              lambda e: e.payment.order_id),  # type: ignore[attr-defined]
    EventType("shop.notification.sent.v1", events_pb2.NotificationSent, NOTIFICATION_EVENTS,
              lambda e: e.notification.order_id),  # type: ignore[attr-defined]
]
BY_MESSAGE = {t.message: t for t in CATALOGUE}
BY_NAME = {t.name: t for t in CATALOGUE}


class UndecodableEvent(Exception):
    """A stream entry that no consumer can ever handle: it goes to the dead letters at once."""


def wrap(event: Message, source: str, traceparent: str = "") -> events_pb2.EventEnvelope:
    kind = BY_MESSAGE[type(event)]
    data = any_pb2.Any()
    data.Pack(event)
    now = clock.now()
    return events_pb2.EventEnvelope(
        id=str(uuid.uuid4()), source=source, specversion="1.0", type=kind.name, time=now,
        subject=kind.subject(event), datacontenttype=CONTENT_TYPE, dataschema=data.type_url,
        traceparent=traceparent, correlation_id=log.correlation_id.get(), data=data)


def entry_fields(envelope: events_pb2.EventEnvelope) -> dict[str, str | bytes]:
    """The stream entry: readable id/type/subject beside the binary envelope."""
    return {"id": envelope.id, "type": envelope.type, "subject": envelope.subject,
            "envelope": envelope.SerializeToString()}


def decode(fields: dict[bytes, bytes]) -> tuple[events_pb2.EventEnvelope, Message]:
    """Envelope and payload of a stream entry; UndecodableEvent says why it cannot be read."""
    raw = fields.get(b"envelope")
    if raw is None:
        raise UndecodableEvent("entry has no 'envelope' field")
    envelope = events_pb2.EventEnvelope()
    try:
        envelope.ParseFromString(raw)
    except DecodeError as exc:
        raise UndecodableEvent(f"envelope is not valid protobuf: {exc}") from None
    kind = BY_NAME.get(envelope.type)
    if kind is None:
        raise UndecodableEvent(f"unknown event type {envelope.type!r}")
    payload = kind.message()
    if not envelope.data.Unpack(payload):
        raise UndecodableEvent(f"payload {envelope.data.type_url!r} does not match type {envelope.type!r}")
    if not envelope.id or not envelope.subject:
        raise UndecodableEvent("envelope lacks id or subject")
    return envelope, payload
