"""3. Crash inside the publish step: the order service dies around storing and publishing an order."""

from __future__ import annotations

import asyncio

from shopctl.chaos.harness import Outcome
from shopctl.chaos.procs import Worker, kill
from shopctl.chaos.recorder import Workload
from shopctl.chaos.scenarios.base import Env, Scenario, during_load, stop_task, supervise
from shopctl.chaos.store import Snapshot

EARLIEST, LATEST = 0.15, 0.8


def store_vs_stream(snap: Snapshot) -> str:
    """'' when the order store and order-events name exactly the same orders, each once."""
    assert snap.placed is not None
    stored, published = set(snap.orders), set(snap.placed)
    twice = sorted(o for o, n in snap.placed.items() if n > 1)
    if stored == published and not twice:
        return ""
    return (f"stored without OrderPlaced: {len(stored - published)} {sorted(stored - published)[:3]}; "
            f"OrderPlaced without order: {len(published - stored)}; published twice: {len(twice)}")


async def publish_crash(sc: Scenario, env: Env, control: bool) -> Outcome:
    """FAULTS=exit_in_publish makes the order service exit at the publish step (after the one
    atomic commit; in the control, nonatomic_publish, between store and publish); it is also
    SIGKILLed at random points. A supervisor restarts it each time; callers retry their key."""
    sizes = env.sizes
    extra = ",nonatomic_publish" if control else ""
    armed = {"FAULTS": f"exit_in_publish={sizes.publish_rate}{extra}"}
    async with env.run(per_service={"order": armed}) as run:
        load = run.recorder(Workload(sizes.publish_orders))
        ready = asyncio.Event()

        async def on_exit(worker: Worker, code: int) -> dict[str, str]:
            run.fault("crash" if code == 137 else "kill")
            if code not in (137, -9):
                run.fail("exits", f"the order service exited with {code}")
            return armed if run.faults["crash"] < sizes.publish_crashes else {"FAULTS": extra.lstrip(",")}

        async def killer() -> None:
            marks = sorted(run.rng.uniform(EARLIEST, LATEST) * sizes.publish_orders for _ in range(sizes.publish_kills))
            for mark in marks:
                if not await load.until(mark):
                    return
                await ready.wait()
                await kill(run.worker("order"))

        supervisor = asyncio.create_task(supervise(run, "order", on_exit, ready))
        await asyncio.gather(load.run(), during_load(load, killer()))
        judgement, snap = await run.judge(placed=True)
        await stop_task(supervisor)
        if mismatch := store_vs_stream(snap):
            run.fail("store_vs_stream", mismatch)
        cut = sum(1 for r in load.records if r.code == "UNAVAILABLE")
        if (run.faults["crash"] or run.faults["kill"]) and cut:
            run.prove(f"order service exited {run.faults['crash']}x at the publish step and was SIGKILLed "
                      f"{run.faults['kill']}x; {cut} calls cut off")
        run.notes.update(stored=len(snap.orders), published=len(snap.placed or ()))
        return sc.outcome(run, judgement, control)
