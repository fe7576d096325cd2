"""11. Poison inside a valid envelope: entries whose envelope parses but that cannot become a handler call."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter

from google.protobuf import any_pb2
from google.protobuf.message import Message
from shop.v1 import events_pb2, types_pb2

from shopctl.chaos.harness import Outcome
from shopctl.chaos.recorder import Workload
from shopctl.chaos.scenarios.base import SUBSCRIPTIONS, Env, Scenario, during_load
from shopctl.chaos.scenarios.poison import Poison, check_dead_letters, inject, undecodable
from shoplib import catalogue
from shoplib.rules import money

SOURCE = "/shopctl/chaos/envelope"
# One member of each kind: payload bytes that are not the type (ff ff), an unknown payload type
# URL, a subject that is not the payload's order, a payload without order id, an envelope without id.
KINDS = ("payload_bytes", "unknown_type_url", "wrong_subject", "no_order_id", "no_event_id")
STREAMS = (catalogue.ORDER_EVENTS, catalogue.PAYMENT_EVENTS)
# Poison lands in the first half of the orders, and the load goes on this long after the last one:
# past the claim idle time (1 s) plus a maintenance round, so that a group stalled by an entry
# (the control) has good entries waiting behind it.
LATEST = 0.5
HOLD_S = 2.5
# What a consumer logs when an entry kills it, or kills its task (restarted again and again).
CRASHES = ("consumer.crashed", "task.crashed", "consumer.entry_crashed")


def _event(stream: str, order_id: str) -> Message:
    amount = money.money("EUR", 1_000)
    if stream == catalogue.ORDER_EVENTS:
        return events_pb2.OrderPlaced(order=types_pb2.Order(
            order_id=order_id, customer_id="cust-envelope", total=amount, status=types_pb2.ORDER_STATUS_PENDING,
            mode=types_pb2.FLOW_MODE_EVENTS, idempotency_key="envelope"))
    return events_pb2.PaymentSucceeded(payment=types_pb2.Payment(
        order_id=order_id, customer_id="cust-envelope", amount=amount, status=types_pb2.PAYMENT_STATUS_SUCCEEDED))


def _make(kind: str, stream: str) -> Poison:
    order_id = f"ord_envelope{uuid.uuid4().hex[:12]}"
    envelope = catalogue.wrap(_event(stream, "" if kind == "no_order_id" else order_id), SOURCE)
    if kind == "payload_bytes":
        envelope.data.CopyFrom(any_pb2.Any(type_url=envelope.data.type_url, value=b"\xff\xff"))
    elif kind == "unknown_type_url":
        envelope.data.type_url = "type.googleapis.com/shop.v1.NoSuchEvent"
    elif kind == "wrong_subject":
        envelope.subject = f"ord_someone_else{uuid.uuid4().hex[:8]}"
    elif kind == "no_event_id":
        envelope.id = ""
    poison = Poison(f"{kind}@{stream}", stream, catalogue.entry_fields(envelope))
    assert undecodable(poison.fields), f"{poison.kind} decodes: not a poison entry"
    return poison


def poisons(rng: random.Random, count: int) -> list[Poison]:
    """Every kind on both streams in turn, then shuffled (the injection order is the list's)."""
    made = [_make(KINDS[n % len(KINDS)], STREAMS[n // len(KINDS) % len(STREAMS)]) for n in range(count)]
    rng.shuffle(made)
    return made


async def poison_in_envelope(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: consumers decode payloads unguarded, as before issue 8 (unguarded_entries): the
    payload that does not parse escapes the runtime and kills the consumer task, which restarts
    into the same entry (a crash loop, its group stalled) until the delivery budget gives it up."""
    faults = {"FAULTS": "unguarded_entries"} if control else {}
    async with env.run(per_service=dict.fromkeys(SUBSCRIPTIONS, faults)) as run:
        started, good = dict(run.pids), env.sizes.envelope_good
        load = run.recorder(Workload(good))
        poison = poisons(run.rng, env.sizes.envelope_bad)

        async def schedule() -> None:
            await inject(run, load, poison, good, latest=LATEST)
            await asyncio.sleep(HOLD_S)

        await asyncio.gather(load.run(), during_load(load, schedule()))
        judgement, snap = await run.judge(poison=True)
        judgement.failures += run.restarts(started)
        if problems := check_dead_letters(poison, snap.dead_letters):
            run.fail("dead_letters", f"{len(problems)} dead-letter problems, e.g. {problems[:3]}")
        crashes = Counter(f"{process}: {event['event']}" for process, event in run.logged(*CRASHES))
        if crashes:
            run.fail("crashes", f"consumers crashed on entries: {dict(crashes)}")
        kinds = Counter(p.kind for p in poison)
        if poison and all(p.entry_id for p in poison):
            run.prove(f"{len(poison)} entries with a valid envelope and an unusable payload injected among "
                      f"{len(load.records)} order requests: {len(kinds)} kinds on {len(STREAMS)} streams")
        run.notes.update(poison=dict(kinds), crashes=dict(crashes))
        return sc.outcome(run, judgement, control)
