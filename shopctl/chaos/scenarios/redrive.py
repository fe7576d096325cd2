"""14. Lost events re-driven: payment stopped, the OrderPlaced entries of some orders deleted from
order-events while it is down (as a hand trim would lose them), payment started again."""

from __future__ import annotations

import asyncio

from order_svc.reconciler import INTERVAL_S
from shopctl.chaos import store
from shopctl.chaos.harness import SETTLE_S, Outcome, Run
from shopctl.chaos.procs import kill
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import Env, Scenario
from shoplib import catalogue
from shoplib.store import partitions, shared_clock

REDRIVEN_KEYS = "order:{p*}:stats:redriven"  # summed over the partitions
# Events orders still PENDING this long are re-driven. Short, so that the delay plus a reconciler
# round comes well within the drain's settle time (nothing else moves while a re-drive is due).
REDRIVE_AFTER_MS = 1500
assert REDRIVE_AFTER_MS / 1000 + INTERVAL_S < SETTLE_S, "a re-drive must come before the drain gives up"
STOP_AT, DELETE_AT = 0.2, 0.6  # of the orders: payment is down between the two, and until restarted


async def _delete_placed(run: Run, since: str, count: int) -> tuple[set[str], int]:
    """XDEL every OrderPlaced entry (after `since`) of `count` orders chosen at random."""
    placed = [(stream, entry_id, store.s(fields.get(b"subject", b"")))
              for stream in partitions.streams(catalogue.ORDER_EVENTS)
              for entry_id, fields in await store.entries(run.client, stream, since)
              if fields.get(b"type") == store.PLACED.encode()]
    subjects = sorted({subject for _, _, subject in placed})
    chosen = set(run.rng.sample(subjects, min(count, len(subjects))))
    ids = [(stream, entry_id) for stream, entry_id, subject in placed if subject in chosen]
    for stream, entry_id in ids:
        run.fault("xdel", int(await run.client.xdel(stream, entry_id)))
    return chosen, len(ids)


async def _lose_events(run: Run, load: Recorder, orders: int, count: int) -> tuple[set[str], int]:
    if not await load.until(STOP_AT * orders):
        return set(), 0
    since = f"{await shared_clock.now_ms(run.client)}-0"  # an entry id of the server's now: later entries follow it
    await kill(run.worker("payment"))  # stopped, not paused: a paused reader still receives entries
    run.fault("payment_stopped")
    await load.until(DELETE_AT * orders)
    deleted = await _delete_placed(run, since, count)
    await run.restart("payment")
    return deleted


async def lost_events_redriven(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: the order reconciler never re-drives events orders (no_redrive): the orders whose
    event was deleted stay PENDING."""
    order_env = {"ORDER_REDRIVE_AFTER_MS": str(REDRIVE_AFTER_MS), **({"FAULTS": "no_redrive"} if control else {})}
    sizes = env.sizes
    async with env.run(per_service={"order": order_env}) as run:
        load = run.recorder(Workload(sizes.redrive_orders))
        (orders, entries), _ = await asyncio.gather(
            _lose_events(run, load, sizes.redrive_orders, sizes.redrive_deleted), load.run())
        judgement, _ = await run.judge()
        redriven = await store.redriven(run.client)
        if redriven < len(orders):
            run.fail("redrive", f"{REDRIVEN_KEYS} sum to {redriven}, below the {len(orders)} orders whose event "
                                "was deleted")
        if orders:
            run.prove(f"payment stopped; the OrderPlaced entries of {len(orders)} orders ({entries} entries) deleted "
                      f"from {catalogue.ORDER_EVENTS} while it was down; {REDRIVEN_KEYS} = {redriven}")
        run.notes.update(deleted_orders=len(orders), deleted_entries=entries, redriven=redriven)
        return sc.outcome(run, judgement, control)
