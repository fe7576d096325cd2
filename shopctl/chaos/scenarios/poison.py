"""4. Poison events: random bytes, truncated Protobuf and well-formed but invalid events among good ones."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import cast

from google.protobuf import any_pb2
from redis.typing import EncodableT, FieldT
from shop.v1 import events_pb2, types_pb2

from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import SUBSCRIPTIONS, Env, Scenario
from shoplib import catalogue
from shoplib.rules import money
from shoplib.store import partitions

SOURCE = "/shopctl/chaos"
EARLIEST, LATEST = 0.05, 0.9
# The groups that read each stream: every one of them must dead-letter a poison entry once.
READERS = {stream: {group for group, streams in SUBSCRIPTIONS.values() if stream in streams}
           for stream in store.GROUPED_STREAMS}


@dataclass
class Poison:
    kind: str
    stream: str
    fields: dict[str, str | bytes]
    entry_id: str = ""


def _order(customer: str) -> events_pb2.OrderPlaced:
    return events_pb2.OrderPlaced(order=types_pb2.Order(
        order_id=f"ord_poison{uuid.uuid4().hex[:14]}", customer_id=customer, total=money.money("EUR", 1_000),
        status=types_pb2.ORDER_STATUS_PENDING, mode=types_pb2.FLOW_MODE_EVENTS, idempotency_key="poison"))


def _fields(envelope: events_pb2.EventEnvelope, raw: bytes | None = None) -> dict[str, str | bytes]:
    return {"id": envelope.id, "type": envelope.type, "subject": envelope.subject,
            "envelope": envelope.SerializeToString() if raw is None else raw}


def undecodable(fields: dict[str, str | bytes]) -> bool:
    try:
        catalogue.decode({k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()})
    except catalogue.UndecodableEvent:
        return True
    return False


def _make(kind: str, rng: random.Random) -> Poison:
    placed = catalogue.wrap(_order("cust-poison"), SOURCE)
    if kind == "random_bytes":
        return Poison(kind, catalogue.ORDER_EVENTS, _fields(placed, rng.randbytes(rng.randint(1, 300))))
    if kind == "no_envelope":
        return Poison(kind, catalogue.ORDER_EVENTS, {"junk": rng.randbytes(rng.randint(1, 50))})
    if kind == "truncated":
        raw = placed.SerializeToString()
        return Poison(kind, catalogue.ORDER_EVENTS, _fields(placed, raw[:rng.randrange(len(raw))]))
    if kind == "unknown_type":
        placed.type = "shop.order.cancelled.v9"
        return Poison(kind, catalogue.ORDER_EVENTS, _fields(placed))
    if kind == "wrong_payload":  # says OrderPlaced, carries a payment
        placed.data.CopyFrom(_packed(events_pb2.PaymentSucceeded(payment=types_pb2.Payment(order_id="x"))))
        return Poison(kind, catalogue.ORDER_EVENTS, _fields(placed))
    if kind == "invalid_order":  # decodes, but no handler may accept it (no customer)
        return Poison(kind, catalogue.ORDER_EVENTS, _fields(catalogue.wrap(_order(""), SOURCE)))
    payment = types_pb2.Payment(order_id=f"ord_poison{uuid.uuid4().hex[:14]}", customer_id="",
                                amount=money.money("EUR", 1_000), status=types_pb2.PAYMENT_STATUS_SUCCEEDED)
    return Poison(kind, catalogue.PAYMENT_EVENTS, _fields(catalogue.wrap(events_pb2.PaymentSucceeded(payment=payment),
                                                                   SOURCE)))


def _packed(message: events_pb2.PaymentSucceeded) -> any_pb2.Any:
    data = any_pb2.Any()
    data.Pack(message)
    return data


KINDS = ("random_bytes", "no_envelope", "truncated", "unknown_type", "wrong_payload", "invalid_order",
         "invalid_payment")


def poisons(rng: random.Random, count: int) -> list[Poison]:
    made: list[Poison] = []
    while len(made) < count:
        poison = _make(KINDS[len(made) % len(KINDS)], rng)
        if poison.kind in ("invalid_order", "invalid_payment") or undecodable(poison.fields):
            made.append(poison)  # (a random cut may still decode; then another is drawn)
    return made


def check_dead_letters(poison: list[Poison], rows: list[tuple[str, dict[bytes, bytes]]]) -> list[str]:
    """Each poison entry dead-lettered exactly once per group that reads its stream, with its metadata."""
    problems: list[str] = []
    seen = Counter((store.s(f[b"stream"]), store.s(f[b"entry_id"]), store.s(f[b"group"])) for _, f in rows)
    by_slot = {(store.s(f[b"stream"]), store.s(f[b"entry_id"]), store.s(f[b"group"])): f for _, f in rows}
    for p in poison:
        for group in READERS[partitions.base(p.stream)]:
            count = seen.pop((p.stream, p.entry_id, group), 0)
            if count != 1:
                problems.append(f"{p.kind} {p.entry_id} dead-lettered {count}x by {group}")
            elif bad := _metadata_problem(p, by_slot[(p.stream, p.entry_id, group)]):
                problems.append(f"{p.kind} {p.entry_id} in {group}: {bad}")
    problems += [f"a good entry was dead-lettered: {slot}" for slot in seen]
    return problems


def _metadata_problem(p: Poison, row: dict[bytes, bytes]) -> str:
    original = p.fields.get("envelope")
    original = original.encode() if isinstance(original, str) else original
    if not row.get(b"consumer") or int(row.get(b"deliveries", 0)) < 1 or not row.get(b"error"):
        return f"metadata missing: {sorted(k.decode() for k in row)}"
    if original is not None and row.get(b"original") != original:
        return "original envelope not kept byte for byte"
    if row.get(b"has_envelope") != (b"1" if original is not None else b"0"):
        return "has_envelope is wrong"
    return ""


async def inject(run: Run, load: Recorder, poison: list[Poison], good: int, latest: float = LATEST) -> None:
    """XADD each poison entry at a random point of the load: once a random fraction (EARLIEST to
    `latest`) of the `good` orders were answered."""
    marks = sorted(run.rng.uniform(EARLIEST, latest) * good for _ in poison)
    for mark, p in zip(marks, poison, strict=True):
        await load.until(mark)  # (the drive is over: inject at once)
        # redis-py's xadd types `fields` as an invariant Dict; it only reads it (a Mapping would do).
        fields = cast("dict[FieldT, EncodableT]", p.fields)
        p.stream = store.home(p.stream, p.fields)
        p.entry_id = store.s(await run.client.xadd(p.stream, fields))
        run.fault("poison")


async def poison_events(sc: Scenario, env: Env, control: bool) -> Outcome:
    faults = {"FAULTS": "drop_dead_letters"} if control else {}
    async with env.run(per_service=dict.fromkeys(SUBSCRIPTIONS, faults)) as run:
        started = dict(run.pids)
        load = run.recorder(Workload(env.sizes.poison_good))
        poison = poisons(run.rng, env.sizes.poison_bad)
        await asyncio.gather(load.run(), inject(run, load, poison, env.sizes.poison_good))
        judgement, snap = await run.judge(poison=True)
        judgement.failures += run.restarts(started)
        if problems := check_dead_letters(poison, snap.dead_letters):
            run.fail("dead_letters", f"{len(problems)} dead-letter problems, e.g. {problems[:3]}")
        kinds = Counter(p.kind for p in poison)
        if poison:
            run.prove(f"{len(poison)} poison entries injected among {env.sizes.poison_good} orders: {dict(kinds)}")
        run.notes["poison"] = dict(kinds)
        return sc.outcome(run, judgement, control)
