"""12. The store refuses writes: `maxmemory 1` on the run's Redis for seconds under load, then lifted."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import grpc
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from shop.v1 import gateway_service_pb2, types_pb2

from shopctl.chaos import store
from shopctl.chaos.harness import Outcome, Run
from shopctl.chaos.procs import with_signal
from shopctl.chaos.recorder import Recorder, Workload
from shopctl.chaos.scenarios.base import SUBSCRIPTIONS, Env, Scenario, during_load
from shopctl.chaos.scenarios.redis_down import not_serving
from shopctl.load import PAID_LINE

OUTAGE_AT = 0.3  # of the orders: work before the outage and after it
# Payment is paused this long just before the outage, so that entries wait for it and it takes
# them while writes are refused (the input: an event in flight).
BACKLOG_S = 0.3
# While writes are refused a caller may only hear UNAVAILABLE: never INTERNAL, UNKNOWN or a timeout.
CODES = frozenset({"OK", "UNAVAILABLE"})
# Callers keep retrying their key through the outage (backoff capped at 1 s: about 10 s in all).
ATTEMPTS = 14
# Readiness is polled this often during the outage (the services probe their store every 1 s);
# a health answer takes milliseconds, so one that takes a second is skipped for that round.
HEALTH_POLL_S = 0.2
HEALTH_TIMEOUT_S = 1.0
# The sync and the events PlaceOrder sent mid-outage: their UNAVAILABLE must come at once, far within this.
PROBE_TIMEOUT_S = 5.0
RETRY_INFO = "google.rpc.RetryInfo"
STATUS_DETAILS = "grpc-status-details-bin"  # the rich status (google.rpc.Status) in the trailers
# What a consumer logs each time it counts a delivery against an entry (the count that leads to
# the dead letters), and Redis's words for the refusal, whichever error class carries them. (A
# handler frozen by the pause may also time out: a delivery spent on the pause, not on the outage.)
SPENT = "event.failed"
REFUSED = "used memory > 'maxmemory'"


@dataclass
class Outage:
    start: float = 0.0
    end: float = 0.0
    held: int = 0  # entries pending in some group in the middle of it
    not_serving: set[str] = field(default_factory=set)  # services seen NOT_SERVING during it
    probes: dict[str, str] = field(default_factory=dict)  # mode -> answer (code, with or without RetryInfo)


async def _watch_health(run: Run, seen: set[str]) -> None:
    """Poll the Redis-backed services' readiness until cancelled; note who said NOT_SERVING."""
    channels = {label: grpc.aio.insecure_channel(run.worker(label).address) for label in SUBSCRIPTIONS}
    try:
        while True:
            for label, channel in channels.items():
                stub = health_pb2_grpc.HealthStub(channel)
                try:
                    # types-grpcio-health-checking declares HealthStub without its methods
                    reply = await stub.Check(health_pb2.HealthCheckRequest(),  # type: ignore[attr-defined]
                                             timeout=HEALTH_TIMEOUT_S)
                except grpc.aio.AioRpcError:
                    continue  # no answer is not an answer: readiness must be said, not implied
                if reply.status == health_pb2.HealthCheckResponse.NOT_SERVING:
                    seen.add(label)
            await asyncio.sleep(HEALTH_POLL_S)
    finally:
        for channel in channels.values():
            await channel.close()


async def _probe(run: Run, mode: types_pb2.FlowMode.ValueType) -> str:
    """One PlaceOrder of a fresh key: its code, and whether it carries RetryInfo."""
    request = gateway_service_pb2.PlaceOrderRequest(idempotency_key=f"refused-probe-{uuid.uuid4().hex}",
                                                    customer_id="cust-probe", mode=mode, lines=[PAID_LINE])
    try:
        await run.gateway.PlaceOrder(request, timeout=PROBE_TIMEOUT_S)
    except grpc.aio.AioRpcError as exc:
        trailers = [status_pb2.Status.FromString(v) for k, v in exc.trailing_metadata() or () if k == STATUS_DETAILS]
        retry = any(d.type_url.endswith(RETRY_INFO) for status in trailers for d in status.details)
        return f"{exc.code().name}{' with RetryInfo' if retry else ''}"
    return "OK"


async def _held(run: Run) -> int:
    """Entries delivered to some consumer and not acknowledged, over every group."""
    total = 0
    for stream in store.every(store.GROUPED_STREAMS):  # every partition
        total += sum(int(str(g["pending"])) for g in await store.groups(run.client, stream))
    return total


async def _refuse(run: Run, outage: Outage, refuse_s: float) -> None:
    """maxmemory 1 for `refuse_s`, payment resumed into it holding entries; always lifted."""
    payment = run.worker("payment")
    with_signal(payment.process, signal.SIGSTOP)
    watch: asyncio.Task[None] | None = None
    try:
        await asyncio.sleep(BACKLOG_S)
        await run.client.config_set("maxmemory", 1)
        outage.start = time.monotonic()
        run.fault("refuse_writes")
        with_signal(payment.process, signal.SIGCONT)
        watch = asyncio.create_task(_watch_health(run, outage.not_serving))
        await asyncio.sleep(refuse_s / 2)
        outage.held = await _held(run)
        for name, mode in (("sync", types_pb2.FLOW_MODE_SYNC), ("events", types_pb2.FLOW_MODE_EVENTS)):
            outage.probes[name] = await _probe(run, mode)
        await asyncio.sleep(max(0.0, outage.start + refuse_s - time.monotonic()))
    finally:
        with_signal(payment.process, signal.SIGCONT)
        await run.client.config_set("maxmemory", 0)
        outage.end = time.monotonic()
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


async def _outage(run: Run, load: Recorder, orders: int, refuse_s: float) -> Outage:
    outage = Outage()
    if await load.until(OUTAGE_AT * orders):
        await _refuse(run, outage, refuse_s)
    return outage


async def store_refuses_writes(sc: Scenario, env: Env, control: bool) -> Outcome:
    """Control: a store refusing writes counts as a handler failure (outage_as_failure): each
    entry in flight has a delivery counted against it."""
    faults = {"FAULTS": "outage_as_failure"} if control else {}
    sizes = env.sizes
    async with env.run(per_service=dict.fromkeys(SUBSCRIPTIONS, faults)) as run:
        started = dict(run.pids)
        load = run.recorder(Workload(sizes.refuse_orders, attempts=ATTEMPTS))
        outage, _ = await asyncio.gather(during_load(load, _outage(run, load, sizes.refuse_orders, sizes.refuse_s)),
                                         load.run())
        judgement, _ = await run.judge(allowed_codes=CODES)
        judgement.failures += run.restarts(started)
        if late := await not_serving(run):
            run.fail("health", f"not SERVING again after writes were accepted again: {late}")
        _judge_outage(run, load, outage)
        failed = [(process, str(event.get("error", ""))) for process, event in run.logged(SPENT)]
        if spent := Counter(f"{process}: {error[:60]}" for process, error in failed if REFUSED in error):
            run.fail("deliveries_spent", f"{spent.total()} deliveries counted against entries for the refused "
                                         f"writes: {spent.most_common(3)}")
        run.notes["entry_failures"] = len(failed)
        return sc.outcome(run, judgement, control)


def _judge_outage(run: Run, load: Recorder, outage: Outage) -> None:
    if missing := sorted(set(SUBSCRIPTIONS) - outage.not_serving):
        run.fail("health", f"readiness stayed SERVING while writes were refused: {missing}")
    if wrong := {mode: answer for mode, answer in outage.probes.items() if answer != "UNAVAILABLE with RetryInfo"}:
        run.fail("codes", f"PlaceOrder while writes were refused was not UNAVAILABLE with RetryInfo: {wrong}")
    felt = sum(1 for r in load.records if r.code == "UNAVAILABLE" and outage.start <= r.start <= outage.end)
    if outage.start and felt and outage.held:
        run.prove(f"maxmemory 1 for {outage.end - outage.start:.1f}s: {felt} calls answered UNAVAILABLE, "
                  f"{outage.held} entries held in groups, NOT_SERVING seen on {sorted(outage.not_serving)}")
    run.notes.update(unavailable_during_outage=felt, held_during_outage=outage.held,
                     not_serving=sorted(outage.not_serving), probes=outage.probes)
