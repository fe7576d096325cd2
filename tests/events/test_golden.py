"""Golden events: entries written by earlier producers are decoded by every current consumer.

The files in golden/ were written once by golden/make_golden.py and are never regenerated.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis
from google.protobuf import unknown_fields
from shop.v1 import events_pb2, types_pb2

from notification_svc import bootstrap as notification_bootstrap
from notification_svc import domain as notification_domain
from notification_svc import handlers as notification_handlers
from notification_svc.adapters import notes_key
from payment_svc.adapters import payment_key
from shopctl.local_redis.server import LocalRedis
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.streams.consumer import Subscription
from shoplib.testing import MemoryStore
from tests.events.helpers import DEAD_STREAM, async_wait_until, consuming, service_subscription

GOLDEN = Path(__file__).parent / "golden"
ORDER_ID = "ord_0123456789abcdef01234567"  # the subject of every golden event
PAYLOADS = {
    "order_placed.v1.bin": events_pb2.OrderPlaced,
    "payment_succeeded.v1.bin": events_pb2.PaymentSucceeded,
    "payment_declined.v1.bin": events_pb2.PaymentDeclined,
    "notification_sent.v1.bin": events_pb2.NotificationSent,
}
SUBSCRIPTIONS: dict[str, Subscription] = {
    name: service_subscription(name, "golden")(None, None)  # type: ignore[arg-type]  # tables only: no I/O
    for name in ("payment", "notification", "order")}
# A field number no version of EventEnvelope uses, as a newer producer might add.
UNKNOWN_FIELD = 1_000

pytestmark = pytest.mark.usefixtures("one_partition")  # streams written by hand: partition 0



def _entry(name: str) -> dict[bytes, bytes]:
    """The golden envelope as a stream entry: binary envelope beside the readable fields."""
    raw = (GOLDEN / name).read_bytes()
    envelope = events_pb2.EventEnvelope.FromString(raw)
    return {b"id": envelope.id.encode(), b"type": envelope.type.encode(), b"subject": envelope.subject.encode(),
            b"envelope": raw}


def test_the_golden_files_cover_the_whole_catalogue() -> None:
    assert {p.name for p in GOLDEN.glob("*.bin")} == set(PAYLOADS)
    assert set(PAYLOADS.values()) == set(catalogue.BY_MESSAGE)


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_every_golden_event_decodes(name: str) -> None:
    envelope, payload = catalogue.decode(_entry(name))
    assert type(payload) is PAYLOADS[name]
    assert envelope.type == catalogue.BY_MESSAGE[PAYLOADS[name]].name
    assert envelope.subject == ORDER_ID
    assert (envelope.specversion, envelope.datacontenttype) == ("1.0", "application/protobuf")
    assert envelope.dataschema == envelope.data.type_url
    assert catalogue.BY_MESSAGE[PAYLOADS[name]].subject(payload) == ORDER_ID


@pytest.mark.parametrize("service", sorted(SUBSCRIPTIONS))
def test_each_consumer_decodes_the_golden_events_of_its_table(service: str) -> None:
    handlers = SUBSCRIPTIONS[service].handlers
    relevant = [name for name, kind in PAYLOADS.items() if kind in handlers]
    assert {PAYLOADS[n] for n in relevant} == set(handlers), "a handled event type has no golden file"
    for name in relevant:
        _, payload = catalogue.decode(_entry(name))
        assert handlers.get(type(payload)) is not None, f"{service} finds no handler for {name}"


@pytest.mark.parametrize("name", sorted(n for n, k in PAYLOADS.items() if k in notification_handlers.EVENT_HANDLERS))
async def test_the_notification_handlers_turn_golden_events_into_valid_notifications(name: str) -> None:
    _, payload = catalogue.decode(_entry(name))
    uow = notification_bootstrap.unit_of_work(reader=MemoryStore(), committer=MemoryStore())
    note = await notification_handlers.EVENT_HANDLERS[type(payload)](payload, uow)
    assert (note.order_id, note.customer_id) == (ORDER_ID, payload.order.customer_id if hasattr(payload, "order")
                                                 else payload.payment.customer_id)
    assert notification_domain.violations(note.order_id, note.customer_id, note.kind) == []


def _with_unknown_field(raw: bytes, number: int, value: bytes) -> bytes:
    """Append a length-delimited field `number` to serialized protobuf bytes."""
    key, varint = (number << 3) | 2, b""
    while True:
        byte, key = key & 0x7F, key >> 7
        varint += bytes([byte | (0x80 if key else 0)])
        if not key:
            break
    return raw + varint + bytes([len(value)]) + value


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_an_envelope_from_a_newer_producer_keeps_its_unknown_field(name: str) -> None:
    """Fields are only ever added: today's consumer decodes tomorrow's envelope and, if it
    passes the envelope on (a re-drive), loses nothing."""
    newer = _with_unknown_field((GOLDEN / name).read_bytes(), UNKNOWN_FIELD, b"added-later")
    envelope, payload = catalogue.decode({**_entry(name), b"envelope": newer})

    assert type(payload) is PAYLOADS[name]
    [field] = list(unknown_fields.UnknownFieldSet(envelope))
    assert (field.field_number, field.data) == (UNKNOWN_FIELD, b"added-later")
    assert envelope.SerializeToString() == newer


async def test_the_real_consumers_act_on_golden_entries(local_redis: LocalRedis, async_redis: aioredis.Redis) -> None:
    """Beyond decoding: the payment and notification consumers process yesterday's bytes."""
    for name in ("order_placed.v1.bin", "payment_succeeded.v1.bin"):
        entry = _entry(name)
        await async_redis.xadd(partitions.stream(catalogue.BY_MESSAGE[PAYLOADS[name]].stream, 0), entry)

    payments = service_subscription("payment", "payment-golden")
    notifications = service_subscription("notification", "notification-golden")
    async with consuming(local_redis.url, payments), consuming(local_redis.url, notifications):
        await async_wait_until(lambda: async_redis.exists(payment_key(ORDER_ID)), what="the golden order charged")
        for kind in (types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED, types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT):
            await async_wait_until(lambda k=kind: async_redis.exists(notes_key(ORDER_ID, str(k))),
                                   what=f"notification {types_pb2.NotificationKind.Name(kind)}")
    assert await async_redis.xlen(DEAD_STREAM) == 0
