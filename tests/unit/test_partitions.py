"""The key layout: one hash tag per partition right after the owner's prefix, the partition fixed
by the idempotency key and carried in the order id; and the commit script's KEYS declaring every
key a commit touches, all in one slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot
from shop.v1 import events_pb2, types_pb2

from notification_svc.adapters import NotificationStore, notes_key
from order_svc import domain
from order_svc.adapters import OrderStore, order_key
from payment_svc.adapters import PaymentStore
from shoplib import config
from shoplib.commit.unit_of_work import StreamPublisher
from shoplib.commit.writes import UNKEYED, Ack, Value, Writes, script_arguments
from shoplib.rules import fields
from shoplib.store import partitions
from shoplib.streams import deadletter
from shoplib.testing import MemoryStore
from tests.support import line, new_id

FIRST_WRITE = 8  # commit.lua: ARGV[8..] are the writes (1-based)


def test_an_order_id_names_the_partition_of_its_idempotency_key() -> None:
    key = new_id("key")
    order = domain.new_order(key, "c", [line()], types_pb2.FLOW_MODE_EVENTS)
    assert order.order_id.startswith(f"ord_p{partitions.partition_of(key)}_")
    assert partitions.partition_of_order(order.order_id) == partitions.partition_of(key)
    assert partitions.partition_of(key) == partitions.partition_of(key)  # a retry lands in the same slot


def test_keys_keep_the_owner_prefix_first_and_the_tag_right_after_it() -> None:
    t3 = partitions.tag(3)
    assert partitions.key("order", 3, "key", "k-1") == f"order:{t3}:key:k-1"
    assert partitions.stream("order-events", 3) == f"order-events:{t3}"
    assert partitions.base(f"order-events:{t3}") == "order-events"
    assert partitions.partition_of_key(f"dead-letters:{partitions.tag(11)}") == 11
    assert partitions.partition_of_key("dead-letters:{p11}") == 11  # a hand-made plain tag
    assert order_key("ord_p3_abc") == f"order:{t3}:ord_p3_abc"
    assert notes_key("ord_p3_abc", "2") == f"notification:{t3}:ord_p3_abc:2"


def test_a_lone_partition_has_the_plain_tag_the_event_tests_spell_out() -> None:
    assert partitions._banded_tag(0, 1) == "{p0}"


@pytest.mark.parametrize(("count", "masters", "spread"), [(16, 3, 1), (12, 3, 0), (16, 4, 0), (64, 3, 1), (1024, 5, 2)])
def test_partitions_spread_over_evenly_sliced_masters(count: int, masters: int, spread: int) -> None:
    """One tag per band of slots: with redis-cli's even slot ranges a master holds the bands inside
    its range, plus perhaps the one straddling each end (16 on three masters: 5, 5 and 6)."""
    bounds = [m * partitions.SLOTS // masters for m in range(1, masters + 1)]
    per_master = [0] * masters
    for p in range(count):
        slot = key_slot(partitions._banded_tag(p, count).strip("{}").encode())
        per_master[next(m for m, bound in enumerate(bounds) if slot < bound)] += 1
    assert max(per_master) - min(per_master) <= spread, per_master


def test_an_order_id_beyond_the_partitions_is_an_invalid_argument_naming_the_field() -> None:
    [(field, why)] = fields.order_id_violations("order_id", f"ord_p{partitions.count()}_abc")
    assert field == "order_id" and "partition" in why
    assert fields.order_id_violations("order_id", f"ord_p{partitions.count() - 1}_abc") == []


def test_an_order_id_made_before_partitions_is_placed_by_a_stable_hash() -> None:
    assert partitions.partition_of_order("ord_0123abc") == partitions.partition_of_order("ord_0123abc")
    assert 0 <= partitions.partition_of_order("ord_0123abc") < partitions.count()


def test_partitions_out_of_range_fail_at_start_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    partitions.count.cache_clear()
    monkeypatch.setenv("PARTITIONS", "0")
    try:
        with pytest.raises(config.ConfigError, match="PARTITIONS=0"):
            partitions.count()
    finally:
        monkeypatch.delenv("PARTITIONS")
        partitions.count.cache_clear()


def declared(writes: Writes, once: tuple[str, Value] | None, ack: Ack | None) -> tuple[list[str], list[str]]:
    """(KEYS, every key the script's writes touch), decoded from the script arguments as commit.lua does."""
    keys, args = script_arguments(writes, once, ack)
    touched = [keys[0]] if once else []
    touched += [keys[len(touched)]] if ack else []
    i = FIRST_WRITE - 1
    while i < len(args):
        count, command, target = int(args[i]), str(args[i + 1]), args[i + 2]
        if command not in UNKEYED:
            assert isinstance(target, int) and 1 <= target <= len(keys), (command, target)
            touched.append(keys[target - 1])
        i += count + 1
    return keys, touched


def _order_commit() -> tuple[Writes, tuple[str, Value], Ack]:
    """What placing, charging and notifying an order stage, as one list of writes."""
    order = domain.new_order(new_id("key"), "c", [line()], types_pb2.FLOW_MODE_EVENTS)
    writes = Writes()
    OrderStore(MemoryStore(), writes).add(order)
    payment = types_pb2.Payment(order_id=order.order_id)
    PaymentStore(MemoryStore(), writes).add(payment)
    NotificationStore(MemoryStore(), writes).add(types_pb2.Notification(order_id=order.order_id))
    StreamPublisher("/t").stage([events_pb2.PaymentSucceeded(payment=payment)], writes)
    ack = Ack(partitions.stream("order-events", partitions.partition_of_order(order.order_id)), "g", "1-0")
    return writes, OrderStore(MemoryStore(), writes).reservation(order.idempotency_key, "f", order.order_id), ack


def test_the_commit_script_declares_every_key_it_touches_once_all_in_one_slot() -> None:
    writes, once, ack = _order_commit()
    keys, touched = declared(writes, once, ack)
    assert set(touched) == set(keys) and len(keys) == len(set(keys))
    assert keys[:2] == [once[0], ack.stream]
    assert len({key_slot(key.encode()) for key in keys}) == 1, keys


async def test_a_dead_letter_goes_to_the_dead_letters_of_its_entry_partition() -> None:
    committed: list[tuple[Writes, Ack | None]] = []

    class Recording:
        async def commit(self, writes: Writes, once: object = None, ack: Ack | None = None) -> bool:
            committed.append((writes, ack))
            return True

    ack = Ack(partitions.stream("payment-events", 5), "g", "1-0", only_if_pending=True)
    await deadletter.dead_letter(Recording(), ack, "c", 1, "bad", {b"x": b"y"})
    [(writes, _)] = committed
    keys, touched = declared(writes, None, ack)
    assert partitions.stream("dead-letters", 5) in keys and set(touched) == set(keys)
    assert len({key_slot(key.encode()) for key in keys}) == 1, keys


@pytest.mark.parametrize("name", ["p0", "p15", "p3.7", "order", "ordp1_x", "a" * 64])
def test_a_tags_slot_is_the_one_redis_computes(name: str) -> None:
    assert partitions.slot(name) == key_slot(name.encode())
