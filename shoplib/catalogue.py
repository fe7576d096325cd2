"""The event catalogue: each event type, its versioned name, its stream, and the envelope."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import DecodeError, Message
from shop.v1 import events_pb2

from shoplib import log
from shoplib.rules import ids, timestamps
from shoplib.rules.bounds import MAX_ENTRY_BYTES, MAX_ERROR_CHARS, MAX_ID_LENGTH
from shoplib.store import partitions

M = TypeVar("M", bound=Message)

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

    @functools.cached_property
    def type_url(self) -> str:  # computed once: every envelope written or read asks for it
        return f"type.googleapis.com/{self.message.DESCRIPTOR.full_name}"


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
    """The envelope of `event`, its payload packed as an Any. Filled in place: an Any or a time
    built apart and passed to the constructor would be copied into it once more."""
    kind = BY_MESSAGE[type(event)]
    envelope = events_pb2.EventEnvelope(
        id=ids.uuid4_text(), source=source, specversion="1.0", type=kind.name, subject=kind.subject(event),
        datacontenttype=CONTENT_TYPE, dataschema=kind.type_url, traceparent=traceparent,
        correlation_id=log.correlation_id.get())
    timestamps.stamp(envelope.time)
    envelope.data.type_url, envelope.data.value = kind.type_url, event.SerializeToString()
    return envelope


def stream_of(envelope: events_pb2.EventEnvelope) -> str:
    """The stream an event goes to: its type's stream, in the partition of its order (subject)."""
    return partitions.stream(BY_NAME[envelope.type].stream, partitions.partition_of_order(envelope.subject))


def entry_fields(envelope: events_pb2.EventEnvelope) -> dict[str, str | bytes]:
    """The stream entry: readable id/type/subject beside the binary envelope."""
    return {"id": envelope.id, "type": envelope.type, "subject": envelope.subject,
            "envelope": envelope.SerializeToString()}


def entry_size(fields: dict[bytes, bytes]) -> int:
    return sum(map(len, fields)) + sum(map(len, fields.values()))  # every entry read: no Python loop


def decode(fields: dict[bytes, bytes]) -> tuple[events_pb2.EventEnvelope, Message]:
    """Envelope and payload of a stream entry, checked to be something a handler can be called
    with; UndecodableEvent says why not. Never raises anything else, whatever the bytes."""
    try:
        return _decode(fields)
    except UndecodableEvent:
        raise
    except Exception as exc:  # a parser's own failure on hostile bytes is still a bad entry
        raise UndecodableEvent(f"entry cannot be read: {type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]) from None


def _decode(fields: dict[bytes, bytes]) -> tuple[events_pb2.EventEnvelope, Message]:
    if (size := entry_size(fields)) > MAX_ENTRY_BYTES:
        raise UndecodableEvent(f"entry of {size} bytes is larger than {MAX_ENTRY_BYTES}")
    raw = fields.get(b"envelope")
    if raw is None:
        raise UndecodableEvent("entry has no 'envelope' field")
    envelope = _parse(events_pb2.EventEnvelope, raw, "envelope")
    kind = BY_NAME.get(envelope.type)
    if kind is None:
        raise UndecodableEvent(f"unknown event type {envelope.type[:MAX_ID_LENGTH]!r}")
    data = envelope.data  # each read of a field makes a new Python object: read once
    if data.type_url != kind.type_url:
        raise UndecodableEvent(f"payload {data.type_url[:MAX_ID_LENGTH]!r} does not match type {kind.name!r}")
    payload = _parse(kind.message, data.value, f"{kind.message.DESCRIPTOR.full_name} payload")
    _check_identity(envelope, kind.subject(payload))
    return envelope, payload


def _parse(message: type[M], raw: bytes, what: str) -> M:
    try:
        return message.FromString(raw)
    except DecodeError as exc:
        raise UndecodableEvent(f"{what} is not valid protobuf: {exc}") from None


def _check_identity(envelope: events_pb2.EventEnvelope, subject: str) -> None:
    """The envelope names the order its payload is about, and both are within bounds."""
    event_id, named = envelope.id, envelope.subject
    if not event_id or not named:
        raise UndecodableEvent("envelope lacks id or subject")
    if len(event_id) > MAX_ID_LENGTH or len(named) > MAX_ID_LENGTH:
        raise UndecodableEvent(f"envelope id or subject longer than {MAX_ID_LENGTH} characters")
    if named != subject:
        raise UndecodableEvent(f"subject {named!r} does not match the payload's order {subject[:MAX_ID_LENGTH]!r}")
