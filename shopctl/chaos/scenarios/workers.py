"""Consumers that die or stall: 1. kill storm, 2. crash between effect and ack, 6. paused consumer."""

from __future__ import annotations

import asyncio
import signal
import time

from payment_svc.consumers import GROUP as PAYMENT_GROUP
from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import Worker, kill, with_signal
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import (
    HOLDING_POLL_S,
    HOLDING_WAIT_S,
    Env,
    Scenario,
    count_held,
    during_load,
    held,
    stop_task,
    supervise,
)
from shoplib import catalogue
from shoplib.store import partitions
from shoplib.store.connections import as_pending

VICTIMS = ("payment", "payment-b", "notification")
# Faults land between these fractions of the run's orders: with work before and after each.
EARLIEST, LATEST = 0.1, 0.8
PAUSE_POLL_S = 0.1
# Scenario 6: the stopped worker's blocked read times out after block + 2 s (redis_conn); a pause
# longer than that makes it drop what Redis handed it while stopped, and no late ack would happen.
# So the claim idle time is lowered to leave room: claim idle (0.7 s) < pause (sizes) < read timeout.
PAUSE_CLAIM_IDLE_MS = 700
STOP_PROBE_S = 0.25
STOP_TRIES = 40
# Scenario 6 pauses a worker again until this many of the entries it held were reclaimed (at most
# PAUSE_ROUNDS pauses, PAUSE_GAP_S apart: longer than the claim idle time, so each starts afresh).
PAUSED_ENOUGH = 3
PAUSE_ROUNDS = 4
PAUSE_GAP_S = 1.0


def _armed(*faults: str) -> dict[str, str]:
    return {"FAULTS": ",".join(f for f in faults if f)}


async def _kill_holding(run: Run, label: str, load: Recorder) -> int:
    """SIGKILL a worker while it holds entries; returns how many it left pending (stranded).
    It is frozen first (SIGSTOP), so what it holds when looked at is what the kill strands; a
    moment it holds nothing is let go and another one taken (bounded; not once the load is over)."""
    worker = run.worker(label)
    deadline = time.monotonic() + HOLDING_WAIT_S
    while not load.finished.is_set() and time.monotonic() < deadline:
        if await count_held(run, worker):
            with_signal(worker.process, signal.SIGSTOP)
            if await held(run, worker):
                break
            with_signal(worker.process, signal.SIGCONT)
        await asyncio.sleep(HOLDING_POLL_S)
    await kill(worker)
    run.fault("kill")
    return len(await held(run, worker))


async def _storm(run: Run, load: Recorder, orders: int, kills: int) -> int:
    """Kill workers at random points of the run; each is restarted (in the background, so that the
    next kill need not wait) under a new consumer name. Returns the entries the kills stranded."""
    stranded, restarting, restarts = 0, set[str](), []

    async def restart(victim: str, n: int) -> None:
        await run.restart(victim, instance=f"k{n}")
        restarting.discard(victim)

    for n, mark in enumerate(sorted(run.rng.uniform(EARLIEST, LATEST) * orders for _ in range(kills))):
        if not await load.until(mark):
            break
        while not (ready := [v for v in VICTIMS if v not in restarting]):
            await asyncio.sleep(HOLDING_POLL_S)
        victim = run.rng.choice(ready)
        stranded += await _kill_holding(run, victim, load)
        restarting.add(victim)
        restarts.append(asyncio.create_task(restart(victim, n)))
    await asyncio.gather(*restarts)
    return stranded


async def kill_storm(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Payment (two workers in one group) and notification workers SIGKILLed at random points
    under load, each restarted under a new consumer name (as a rescheduled container would be)."""
    faults = _armed("no_reclaim" if control else "")
    async with env.run(per_service={"payment": faults, "notification": faults}) as run:
        await run.add_worker("payment-b", "payment", "b")
        orders = env.sizes.storm_orders
        load = run.recorder(Workload(orders))
        _, stranded = await asyncio.gather(load.run(), during_load(load, _storm(run, load, orders,
                                                                                 env.sizes.storm_kills)))
        judgement, _ = await run.judge()
        kills, reclaimed = run.faults["kill"], judgement.counts.reclaimed
        if kills and stranded and (reclaimed or control):  # the control's switch is what stops the reclaim
            run.prove(f"{kills} SIGKILLs left {stranded} entries pending to dead consumers; {reclaimed} reclaimed")
        run.notes["stranded"] = stranded
        return sc.outcome(run, judgement, control)


async def crash_after_effect(sc: Scenario, env: Env, control: bool) -> Outcome:
    """The payment worker commits its effect without the ack and exits (FAULTS=exit_after_effect);
    it is restarted, alternately under a new name (reclaim) and its own (own pending re-read)."""
    sizes = env.sizes
    armed = _armed(f"exit_after_effect={sizes.crash_rate}", "skip_once" if control else "")
    # A crash is not the entry's fault: allow more deliveries than there will be crashes.
    limits = {"STREAM_MAX_DELIVERIES": str(sizes.crashes + 3)}
    async with env.run(env=limits, per_service={"payment": armed}) as run:
        load = run.recorder(Workload(sizes.crash_orders))
        # (stream, entry id) -> order id: effect committed, never acknowledged (ids repeat across partitions)
        faulted: dict[tuple[str, str], str] = {}

        async def on_exit(worker: Worker, code: int) -> dict[str, str]:
            crashes = run.faults["crash"] + 1
            if code != 137:
                run.fail("exits", f"the payment worker exited with {code}, not by the fault point")
            run.fault("crash")
            for stream, entry_id in await held(run, worker):
                for order_id in (await store.subject_of(run.client, stream, [entry_id])).values():
                    if await store.charged(run.client, order_id):
                        faulted[(stream, entry_id)] = order_id
            again = crashes < sizes.crashes
            instance = f"c{crashes}" if crashes % 2 else worker.instance
            return {"instance": instance, **(armed if again else _armed("skip_once" if control else ""))}

        supervisor = asyncio.create_task(supervise(run, "payment", on_exit, asyncio.Event()))
        await load.run()
        judgement, _ = await run.judge()
        await stop_task(supervisor)
        still = {(stream, i) for stream in partitions.streams(catalogue.ORDER_EVENTS)
                 for i, _, _ in await store.pending_of(run.client, stream, PAYMENT_GROUP)}
        if unacked := sorted(set(faulted) & still):
            run.fail("redelivery", f"{len(unacked)} crashed entries never redelivered and acknowledged: {unacked[:3]}")
        if run.faults["crash"] and faulted:
            run.prove(f"{run.faults['crash']} exits after the effect left {len(faulted)} charged entries "
                      f"unacknowledged")
        run.notes["faulted_entries"] = len(faulted)
        return sc.outcome(run, judgement, control)


async def _handed_while_stopped(run: Run, worker: Worker, stopped_for_s: float) -> set[str]:
    """Entries Redis delivered to the worker after it was stopped (its read was still blocked)."""
    rows = [row for stream in partitions.streams(catalogue.ORDER_EVENTS)
            for row in as_pending(await run.client.xpending_range(stream, PAYMENT_GROUP, min="-", max="+", count=1000,
                                                                  consumername=worker.consumer))]
    return {store.s(r["message_id"]) for r in rows if r["time_since_delivered"] < stopped_for_s * 1000}


async def _stop_while_reading(run: Run, worker: Worker) -> tuple[float, set[str]]:
    """SIGSTOP the worker until it holds entries it cannot finish: handed to it while stopped (it was
    blocked in a read) or taken before the stop and not yet acknowledged (it was handling them). A
    stop that catches it holding nothing is undone at once and tried again (bounded): under load
    with 16 partitions a worker is mostly busy, so waiting for a stop inside the read alone left
    the scenario inconclusive when the load ended first."""
    for attempt in range(STOP_TRIES):
        with_signal(worker.process, signal.SIGSTOP)
        stopped = time.monotonic()
        await asyncio.sleep(STOP_PROBE_S)
        handed = await _handed_while_stopped(run, worker, time.monotonic() - stopped)
        if handed or await held(run, worker) or attempt == STOP_TRIES - 1:
            return stopped, handed
        with_signal(worker.process, signal.SIGCONT)
        await asyncio.sleep(STOP_PROBE_S)
    raise AssertionError("unreachable")


async def _pause(run: Run, label: str, pause_s: float) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """Keep a worker stopped for `pause_s`; returns (its entries, those reclaimed while it slept)."""
    worker = run.worker(label)
    try:
        stopped, handed = await _stop_while_reading(run, worker)
        run.fault("pause")
        stranded = set(await held(run, worker))  # (stream, entry id): ids repeat across partitions
        reclaimed: set[tuple[str, str]] = set()
        while time.monotonic() < stopped + pause_s:
            reclaimed |= stranded - set(await held(run, worker))  # it cannot ack: someone else did
            await asyncio.sleep(PAUSE_POLL_S)
        run.notes.update(handed_while_stopped=len(handed), held_at_resume=len(await held(run, worker)))
    finally:
        with_signal(worker.process, signal.SIGCONT)
    return stranded, reclaimed


async def paused_consumer(sc: Scenario, env: Env, control: bool) -> Outcome:
    """One of two payment workers is SIGSTOPped past the claim idle time while Redis hands it entries,
    then SIGCONTed: it processes and acknowledges them late, after the other worker reclaimed them."""
    faults = _armed("skip_once" if control else "")
    async with env.run(env={"STREAM_CLAIM_IDLE_MS": str(PAUSE_CLAIM_IDLE_MS)}, per_service={"payment": faults}) as run:
        await run.add_worker("payment-b", "payment", "b")
        orders = env.sizes.pause_orders
        load = run.recorder(Workload(orders))
        paused: dict[str, set[tuple[str, str]]] = {"stranded": set(), "reclaimed": set()}

        async def pause() -> None:
            # Paused again (the other worker or the same) until PAUSED_ENOUGH entries were stranded
            # and reclaimed: one entry may sit in a read reply the resumed worker drops (its read
            # timed out meanwhile on a loaded host), and a control with only that one went uncaught.
            if not await load.until(0.25 * orders):
                return
            for _ in range(PAUSE_ROUNDS):
                stranded, reclaimed = await _pause(run, run.rng.choice(("payment", "payment-b")), env.sizes.pause_s)
                paused["stranded"] |= stranded
                paused["reclaimed"] |= reclaimed
                if len(paused["reclaimed"]) >= PAUSED_ENOUGH or load.finished.is_set():
                    return
                await asyncio.sleep(PAUSE_GAP_S)

        await asyncio.gather(load.run(), during_load(load, pause()))
        judgement, _ = await run.judge()
        stranded, reclaimed = paused["stranded"], paused["reclaimed"]
        if stranded and reclaimed:
            run.prove(f"paused {run.faults['pause']}x {env.sizes.pause_s}s holding {len(stranded)} entries "
                      f"({run.notes['handed_while_stopped']} handed to it while stopped); {len(reclaimed)} reclaimed "
                      f"by the other worker meanwhile")
        run.notes.update(stranded=len(stranded), reclaimed_during_pause=len(reclaimed))
        return sc.outcome(run, judgement, control)
