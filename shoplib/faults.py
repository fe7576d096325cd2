"""Fault points for the crash tests and the chaos suite: armed only by the FAULTS variable, inert otherwise.

FAULTS is a comma-separated list of names, each optionally `=RATE` (the chance it fires each time
its point is reached; 1 when omitted). Two kinds:

Crash points (the fault the system must survive):
- exit_after_effect=RATE  a consumer commits its effect WITHOUT the acknowledgement and exits at
  once, as a crash between the two would in a design where they are separate steps. It proves
  that redelivery then finds the effect done.
- exit_in_publish=RATE    the order service exits at the publish step of a placed order: right
  after its one atomic commit (stored and published, never answered); with nonatomic_publish,
  between the store and the publish.

Control switches (each disables one protection, so that the chaos checker can show it catches the
loss; never armed outside a control run of `python -m shopctl chaos`):
- nonatomic_publish  the order is committed first and its OrderPlaced XADD in a second commit.
- skip_once          commits ignore their once key: effects are no longer idempotent.
- no_reclaim         consumers never take over entries of dead or stuck consumers (XAUTOCLAIM).
- drop_dead_letters  entries bound for the dead letters are acknowledged and dropped instead.
- trim_pending       trimming ignores what consumer groups still have to process.
- no_resume          the order reconciler never resumes sync orders left PENDING.
- skip_validation    PlaceOrder stores requests without validating them.
- unguarded_entries  consumers decode payloads unguarded and let an entry's error escape (before issue 8).
- outage_as_failure  a store refusing writes counts as a handler failure (spends the entry's deliveries).
- trim_ignores_topology  trimming looks only at the groups that exist, not at the declared ones.
- no_redrive         the order reconciler never re-drives events-mode orders left PENDING.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shoplib.tx import Committer, Value, Writes


def _armed() -> dict[str, float]:
    found = {}
    for item in filter(None, os.environ.get("FAULTS", "").split(",")):
        name, _, rate = item.partition("=")
        found[name.strip()] = float(rate or 1)
    return found


ARMED = _armed()


def fires(name: str) -> bool:
    rate = ARMED.get(name)
    return rate is not None and random.random() < rate


def crash() -> None:
    """Exit as a SIGKILL would: no cleanup, no flush."""
    os._exit(137)


def raw_decode(fields: dict[bytes, bytes]) -> None:
    """The payload decode as it was before issue 8: Any.Unpack outside any guard (raises DecodeError)."""
    from shop.v1 import events_pb2

    from shoplib import events

    envelope = events_pb2.EventEnvelope.FromString(fields.get(b"envelope", b""))
    kind = events.BY_NAME.get(envelope.type)
    if kind is not None:
        envelope.data.Unpack(kind.message())


async def commit_publish_step(committer: Committer, writes: Writes, once: tuple[str, Value] | None) -> bool:
    """A commit without acknowledgement (a placed order) with the publish-step points armed."""
    from shoplib.tx import Writes

    publishes = any(op[0] == "XADD" for op in writes.ops)
    if publishes and fires("nonatomic_publish"):
        if not await committer.commit(Writes([op for op in writes.ops if op[0] != "XADD"]), once):
            return False
        if fires("exit_in_publish"):
            crash()
        await committer.commit(Writes([op for op in writes.ops if op[0] == "XADD"]))
        return True
    applied = await committer.commit(writes, once)
    if publishes and applied and fires("exit_in_publish"):
        crash()
    return applied
