"""The checker: every order of a run classified from the history and the final read.

An order is any order the store holds or a caller was told about. Each falls in exactly one class:
- completed: terminal with the outcome its total calls for, charged once, each notification once;
- duplicated: charged or notified more than once, or one of several orders placed with one key;
- stuck: not completed, but still waiting somewhere (an entry pending or unread in a group, a sync
  order queued for resumption, or an events order queued for re-drive) -- the drain did not finish it;
- lost: everything else: acknowledged but not stored, or not completed with nothing left that
  could ever complete it.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from shop.v1 import types_pb2

from payment_svc.domain import Rules
from shopctl.chaos.recorder import INDETERMINATE, Attempt
from shopctl.chaos.store import Snapshot

# The payment rule the checker holds every outcome to (the services run with the default).
DECLINE_ABOVE_MINOR = Rules().decline_above_minor
EXAMPLES = 3  # order ids quoted per kind of failure


@dataclass
class Failure:
    kind: str  # lost, duplicated, stuck, pending, codes, dead_letters, ... (controls name the one they expect)
    detail: str


@dataclass
class Counts:
    requests: int = 0  # PlaceOrder attempts
    keys: int = 0  # distinct idempotency keys sent
    acknowledged: int = 0  # keys answered OK at least once
    indeterminate: int = 0  # keys that only ever got UNAVAILABLE or a timeout
    orders: int = 0
    completed: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    pending: int = 0  # stream entries still pending or unread after the drain
    reclaimed: int = 0
    dead_lettered: int = 0
    faults: int = 0


@dataclass
class Judgement:
    counts: Counts
    failures: list[Failure] = field(default_factory=list)


def expected_status(order: types_pb2.Order) -> int:
    declined = order.total.amount_minor > DECLINE_ABOVE_MINOR
    return types_pb2.ORDER_STATUS_PAYMENT_DECLINED if declined else types_pb2.ORDER_STATUS_PAID


def expected_notices(order: types_pb2.Order) -> Counter[int]:
    outcome = (types_pb2.NOTIFICATION_KIND_PAYMENT_DECLINED
               if expected_status(order) == types_pb2.ORDER_STATUS_PAYMENT_DECLINED
               else types_pb2.NOTIFICATION_KIND_PAYMENT_RECEIPT)
    return Counter({types_pb2.NOTIFICATION_KIND_ORDER_RECEIVED: 1, outcome: 1})


def _extra_orders(snap: Snapshot, acked: dict[str, set[str]]) -> set[str]:
    """Orders beyond the first for one idempotency key (by creation time)."""
    by_key: dict[str, set[str]] = defaultdict(set)
    for order_id, order in snap.orders.items():
        by_key[order.idempotency_key].add(order_id)
    for key, ids in acked.items():
        by_key[key] |= ids
    extra: set[str] = set()
    for ids in by_key.values():
        ranked = sorted(ids, key=lambda i: (i not in snap.orders, snap.orders[i].create_time.ToNanoseconds()
                                            if i in snap.orders else 0, i))
        extra.update(ranked[1:])
    return extra


def _class_of(order_id: str, snap: Snapshot, extra: set[str]) -> tuple[str, str]:
    order = snap.orders.get(order_id)
    if order is None:
        return "lost", "acknowledged to its caller but not in the store"
    charges, notes = snap.charges[order_id], snap.notices.get(order_id, Counter())
    if order_id in extra:
        return "duplicated", f"another order has key {order.idempotency_key!r}"
    if charges > 1 or any(n > 1 for n in notes.values()):
        return "duplicated", f"charged {charges}x, notifications {dict(notes)}"
    if order.status == expected_status(order) and charges == 1 and notes == expected_notices(order):
        return "completed", ""
    where = (snap.in_flight.subjects.get(order_id) or ("queued for resumption" if order_id in snap.pending_sync else "")
             or ("the re-drive queue" if order_id in snap.pending_events else ""))
    state = (f"{types_pb2.OrderStatus.Name(order.status)}, charged {charges}x, "
             f"notifications {sorted(types_pb2.NotificationKind.Name(k) for k in notes)}")
    return ("stuck", f"{state}; waits in {where}") if where else ("lost", f"{state}; nothing left to finish it")


def classify(records: list[Attempt], snap: Snapshot, allowed_codes: Iterable[str]) -> Judgement:
    counts = Counts(requests=len(records))
    acked: dict[str, set[str]] = defaultdict(set)
    codes: dict[str, set[str]] = defaultdict(set)
    for record in records:
        codes[record.key].add(record.code)
        if record.code == "OK":
            acked[record.key].add(record.order_id)
    counts.keys, counts.acknowledged = len(codes), len(acked)
    counts.indeterminate = sum(1 for c in codes.values() if c <= INDETERMINATE)
    acked_ids = set().union(*acked.values()) if acked else set()
    extra = _extra_orders(snap, acked)
    examples: dict[str, list[str]] = defaultdict(list)
    for order_id in sorted(set(snap.orders) | acked_ids):
        kind, why = _class_of(order_id, snap, extra)
        setattr(counts, kind, getattr(counts, kind) + 1)
        if why and len(examples[kind]) < EXAMPLES:
            examples[kind].append(f"{order_id}: {why}")
    counts.orders = len(set(snap.orders) | acked_ids)
    counts.pending, counts.dead_lettered = snap.in_flight.entries, len(snap.dead_letters)
    judgement = Judgement(counts)
    for kind in ("lost", "duplicated", "stuck"):
        if getattr(counts, kind):
            judgement.failures.append(Failure(kind, f"{getattr(counts, kind)} orders {kind}, e.g. {examples[kind]}"))
    if counts.pending:
        judgement.failures.append(Failure("pending", f"{counts.pending} stream entries still pending or unread "
                                                     f"after the drain"))
    judgement.failures += _code_failures(records, set(allowed_codes))
    return judgement


def _code_failures(records: list[Attempt], allowed: set[str]) -> list[Failure]:
    unexpected = [r for r in records if r.code not in allowed]
    if not unexpected:
        return []
    seen = Counter(r.code for r in unexpected)
    sample = [f"{r.code}: {r.details[:120]}" for r in unexpected[:EXAMPLES]]
    return [Failure("codes", f"answers outside {sorted(allowed)}: {dict(seen)}, e.g. {sample}")]


def phantom_charges(snap: Snapshot) -> list[Failure]:
    """Charges of orders the store does not hold (nobody placed them)."""
    phantoms = [o for o in snap.charges if o not in snap.orders]
    if not phantoms:
        return []
    return [Failure("phantom", f"{len(phantoms)} charges of unknown orders, e.g. {phantoms[:EXAMPLES]}")]


def no_dead_letters(snap: Snapshot) -> list[Failure]:
    if not snap.dead_letters:
        return []
    errors = Counter(f[b"error"].decode(errors="replace")[:80] for _, f in snap.dead_letters)
    return [Failure("dead_letters", f"{len(snap.dead_letters)} dead letters in a run without poison: "
                                    f"{errors.most_common(EXAMPLES)}")]
