"""The figures of a run, then a table of them against the issue's aims."""

from __future__ import annotations

from dataclasses import dataclass

from bench.common import twins
from bench.common.before_after import Figure
from bench.common.load import IN_FLIGHT, Run, compared, pct
from bench.common.processes import CLIENT
from bench.common.twins import Aim
from bench.events.consumers import Drain
from bench.events.notes import busy_phases, print_notes
from bench.events.sizes import LIGHT_RATE, STEADY_SKIP_S, Sizes
from bench.events.stack import EndToEnd, StackResult

# The aims.
AIM_LATENCY_RATIO = 1.5  # events-mode PlaceOrder latency / bare hops latency
AIM_ACCEPTED_PER_S = 1000.0  # PlaceOrder answered per second at 64 in flight
AIM_COMPLETED_PER_S = 800.0  # receipts sent per second under saturating load
AIM_RECEIPT_P50_MS = 5.0  # time to receipt at the steady rate
AIM_RECEIPT_P99_MS = 20.0
AIM_CPU_MS_PER_EVENT = 0.1  # consumer process CPU per event
AIM_DRAIN_PER_S = 10_000.0  # backlog drained, events per second
# Issue 24's aims, against the durable twins (the same fsynced commits, done the cheapest way).
DURABLE_LATENCY = Aim(1.2)  # PlaceOrder p50 at 1 in flight, real / durable hops
DURABLE_ACCEPTED = Aim(0.85, share=True)  # accepted orders/s at IN_FLIGHT, real / durable hops
SERIAL_P50 = "p50, 1 in flight"  # the latency row issue 24 aims at
DURABLE_DRAIN = Aim(0.85, share=True)  # backlog drained per second, real consumer / lean durable consumer

Row = tuple[str, str, str, bool]  # figure, measured, aim, met

ROWS = [
    Figure("p50_1_durable_ratio", "PlaceOrder p50, 1 in flight, x durable", "x", f"{DURABLE_LATENCY}",
           limit=DURABLE_LATENCY.bound),
    Figure("accepted_durable_share", f"accepted orders/s, {IN_FLIGHT} in flight, of durable", "%",
           f"{DURABLE_ACCEPTED}", lower_is_better=False, limit=DURABLE_ACCEPTED.bound),
    Figure("payment_drain_lean_share", "payment backlog drained, of lean", "%", f"{DURABLE_DRAIN}",
           lower_is_better=False, limit=DURABLE_DRAIN.bound),
    Figure("notification_drain_lean_share", "notification backlog drained, of lean", "%", f"{DURABLE_DRAIN}",
           lower_is_better=False, limit=DURABLE_DRAIN.bound),
    Figure("p50_1_ratio", "PlaceOrder p50, 1 in flight, x bare", "x", f"<= {AIM_LATENCY_RATIO}x",
           limit=AIM_LATENCY_RATIO),
    Figure("p50_1_ms", "PlaceOrder p50, 1 in flight", " ms", ""),
    Figure("accepted_per_s", f"accepted orders/s, {IN_FLIGHT} in flight", "/s", f">= {AIM_ACCEPTED_PER_S:,.0f}",
           lower_is_better=False, limit=AIM_ACCEPTED_PER_S),
    Figure("completed_per_s", "completed orders/s (receipt sent)", "/s", f">= {AIM_COMPLETED_PER_S:,.0f}",
           lower_is_better=False, limit=AIM_COMPLETED_PER_S),
    Figure("receipt_p50_ms", "PlaceOrder -> receipt p50, open loop", " ms", f"< {AIM_RECEIPT_P50_MS:.0f} ms",
           limit=AIM_RECEIPT_P50_MS),
    Figure("receipt_p99_ms", "PlaceOrder -> receipt p99, open loop", " ms", f"< {AIM_RECEIPT_P99_MS:.0f} ms",
           limit=AIM_RECEIPT_P99_MS),
    Figure("payment_drain_per_s", "payment backlog drained", "/s", f">= {AIM_DRAIN_PER_S:,.0f}/s",
           lower_is_better=False, limit=AIM_DRAIN_PER_S),
    Figure("notification_drain_per_s", "notification backlog drained", "/s", f">= {AIM_DRAIN_PER_S:,.0f}/s",
           lower_is_better=False, limit=AIM_DRAIN_PER_S),
    Figure("payment_cpu_ms_per_event", "payment CPU per event", " ms", f"<= {AIM_CPU_MS_PER_EVENT} ms",
           limit=AIM_CPU_MS_PER_EVENT),
    Figure("notification_cpu_ms_per_event", "notification CPU per event", " ms", f"<= {AIM_CPU_MS_PER_EVENT} ms",
           limit=AIM_CPU_MS_PER_EVENT),
    Figure("cpu_ms", f"CPU per order at {IN_FLIGHT} in flight, no client", " ms", ""),
    Figure("bare_cpu_ms", f"CPU per order at {IN_FLIGHT} in flight, bare hops", " ms", ""),
    Figure("durable_cpu_ms", f"CPU per order at {IN_FLIGHT} in flight, durable hops", " ms", ""),
    Figure("own_cpu_ms", "own CPU per order (ours - bare)", " ms", "half of before", of_before=0.5),
]


@dataclass(frozen=True)
class Measured:
    """Everything one run measured: the twins' and the real stack's PlaceOrder runs (each at 1 and
    at IN_FLIGHT in flight), the end to end figures, and the consumer drains, real and lean."""

    bare: tuple[Run, Run]
    durable: tuple[Run, Run]
    real: StackResult
    drains: tuple[Drain, Drain]
    lean: tuple[Drain, Drain]  # the durable lean consumers' drains of the same backlog

    @property
    def real_runs(self) -> tuple[Run, Run]:
        return self.real.serial, self.real.burst


def _stack_cpu(run: Run) -> float:
    return sum(ms for name, ms in run.cpu_ms_per_call.items() if name != CLIENT)


def figures(m: Measured) -> dict[str, float]:
    """The headline figures of a run, as results/bench/events.json keeps them."""
    cpu, bare_cpu = _stack_cpu(m.real.burst), _stack_cpu(m.bare[1])
    to_receipt = m.real.e2e.steady.to_receipt_ms
    found = {"p50_1_durable_ratio": m.real.serial.p(0.5) / m.durable[0].p(0.5),
             "accepted_durable_share": m.real.burst.per_s / m.durable[1].per_s,
             "p50_1_ratio": m.real.serial.p(0.5) / m.bare[0].p(0.5), "p50_1_ms": m.real.serial.p(0.5),
             "accepted_per_s": m.real.burst.per_s, "completed_per_s": m.real.e2e.saturated.completed_per_s,
             "receipt_p50_ms": pct(to_receipt, 0.5), "receipt_p99_ms": pct(to_receipt, 0.99),
             "cpu_ms": cpu, "bare_cpu_ms": bare_cpu, "own_cpu_ms": cpu - bare_cpu,
             "durable_cpu_ms": _stack_cpu(m.durable[1])}
    for drain, lean in zip(m.drains, m.lean, strict=True):
        found[f"{drain.service}_drain_per_s"] = drain.per_s
        found[f"{drain.service}_drain_lean_share"] = drain.per_s / lean.per_s
        found[f"{drain.service}_cpu_ms_per_event"] = drain.cpu_ms_per_event
    return found


def report(m: Measured, sizes: Sizes) -> None:
    rows = _latency(m) + _end_to_end_aims(m.real.e2e, sizes) + _drain_aims(m.drains, m.lean)
    _end_to_end(m.real.e2e, sizes)
    _calls(m)
    _consumers(m.drains, "services")
    _consumers(m.lean, "lean durable")
    print_notes()
    _aims_table(rows)


def _latency(m: Measured) -> list[Row]:
    print("\nPlaceOrder, ms (client -> gateway -> order -> Redis -> back), and CPU per accepted order (no client)")
    table: list[twins.Row] = []
    rows: list[Row] = []
    for name, in_flight, (b, d, r) in compared(m.bare, m.durable, m.real_runs):
        label = f"{name}, {in_flight}"
        serial_p50 = label == SERIAL_P50
        table.append(twins.Row(f"{name} ms, {in_flight}", b, d, r, DURABLE_LATENCY if serial_p50 else None,
                               Aim(AIM_LATENCY_RATIO)))
        rows.append((f"PlaceOrder {label}", f"{r:.2f} ms = {r / b:.2f}x bare ({b:.2f})",
                     f"<= {AIM_LATENCY_RATIO}x bare", r / b <= AIM_LATENCY_RATIO))
        if serial_p50:
            rows.append((f"PlaceOrder {label}, of durable", f"{r / d:.2f}x durable ({d:.2f})",
                         f"{DURABLE_LATENCY} durable", DURABLE_LATENCY.met(r / d)))
    b, d, r = m.bare[1].per_s, m.durable[1].per_s, m.real.burst.per_s
    table.append(twins.Row(f"accepted/s, {IN_FLIGHT} in flight", b, d, r, DURABLE_ACCEPTED, share=True))
    table.append(twins.Row(f"CPU ms/order, {IN_FLIGHT} in flight", _stack_cpu(m.bare[1]), _stack_cpu(m.durable[1]),
                           _stack_cpu(m.real.burst)))
    print(twins.table(table, ("bare hops", "durable", "events")))
    rows.append((f"accepted orders/s, {IN_FLIGHT} in flight", f"{r:,.0f} (bare {b:,.0f})",
                 f">= {AIM_ACCEPTED_PER_S:,.0f}", r >= AIM_ACCEPTED_PER_S))
    rows.append((f"accepted orders/s, {IN_FLIGHT} in flight, of durable", f"{r / d:.0%} of {d:,.0f}",
                 f"{DURABLE_ACCEPTED} durable", DURABLE_ACCEPTED.met(r / d)))
    return rows


def _end_to_end_aims(e2e: EndToEnd, sizes: Sizes) -> list[Row]:
    completed, rate = e2e.saturated.completed_per_s, f"at {sizes.rate:.0f}/s"
    p50, p99 = pct(e2e.steady.to_receipt_ms, 0.5), pct(e2e.steady.to_receipt_ms, 0.99)
    return [("completed orders/s (receipt sent)", f"{completed:,.0f}", f">= {AIM_COMPLETED_PER_S:,.0f}",
             completed >= AIM_COMPLETED_PER_S),
            (f"PlaceOrder -> receipt p50 {rate}", f"{p50:.2f} ms", f"< {AIM_RECEIPT_P50_MS:.0f} ms",
             p50 < AIM_RECEIPT_P50_MS),
            (f"PlaceOrder -> receipt p99 {rate}", f"{p99:.2f} ms", f"< {AIM_RECEIPT_P99_MS:.0f} ms",
             p99 < AIM_RECEIPT_P99_MS)]


def _drain_aims(drains: tuple[Drain, Drain], lean: tuple[Drain, Drain]) -> list[Row]:
    rows: list[Row] = []
    for drain, twin in zip(drains, lean, strict=True):
        rows.append((f"{drain.service} backlog drained", f"{drain.per_s:,.0f} events/s",
                     f">= {AIM_DRAIN_PER_S:,.0f}/s", drain.per_s >= AIM_DRAIN_PER_S and drain.complete))
        rows.append((f"{drain.service} backlog drained, of lean", f"{drain.per_s / twin.per_s:.0%} of "
                     f"{twin.per_s:,.0f}/s", f"{DURABLE_DRAIN} lean", DURABLE_DRAIN.met(drain.per_s / twin.per_s)
                     and drain.complete and twin.complete))
        rows.append((f"{drain.service} CPU per event", f"{drain.cpu_ms_per_event:.3f} ms",
                     f"<= {AIM_CPU_MS_PER_EVENT} ms", drain.cpu_ms_per_event <= AIM_CPU_MS_PER_EVENT))
    return rows


def _per_process(cpu_ms: dict[str, float]) -> str:
    return ", ".join(f"{name} {ms:.3f}" for name, ms in cpu_ms.items()) + f" (total {sum(cpu_ms.values()):.3f})"


def _end_to_end(e2e: EndToEnd, sizes: Sizes) -> None:
    run, to = e2e.steady.run, e2e.steady.to_receipt_ms
    print(f"\nEnd to end, open loop at {sizes.rate:.0f}/s for {sizes.rate_s:.0f} s: {len(run.latencies_ms)} "
          f"accepted ({len(run.latencies_ms) / run.elapsed_s:.0f}/s), {run.errors} errors, "
          f"{run.skipped} skipped, {e2e.steady.missing} receipts missing")
    print(f"  PlaceOrder p50 {run.p(0.5):.2f} ms, p99 {run.p(0.99):.2f} ms; to receipt p50 {pct(to, 0.5):.2f} ms, "
          f"p90 {pct(to, 0.9):.2f} ms, p99 {pct(to, 0.99):.2f} ms, max {max(to, default=0):.1f} ms")
    print("  CPU ms per completed order: " + _per_process(e2e.cpu_ms_per_order))
    light, lt = e2e.light.run, e2e.light.to_receipt_ms
    print(f"  for comparison at {LIGHT_RATE:.0f}/s: PlaceOrder p50 {light.p(0.5):.2f} ms, p99 "
          f"{light.p(0.99):.2f} ms; to receipt p50 {pct(lt, 0.5):.2f} ms, p99 {pct(lt, 0.99):.2f} ms "
          f"({len(lt)} of {len(light.placed)} receipts)")
    sat = e2e.saturated
    print(f"Saturating, {IN_FLIGHT} in flight for {sat.run.elapsed_s:.1f} s: {len(sat.run.latencies_ms)} accepted "
          f"({sat.run.per_s:.0f}/s), {sat.run.errors} errors; {sat.completed_per_s:.0f} receipts/s from "
          f"{STEADY_SKIP_S:.0f} s in to the end of the load; last receipt {sat.drained_after_s:.1f} s after "
          f"the load stopped; {sat.missing} receipts missing")


def _calls(m: Measured) -> None:
    for name, run in (("bare hops", m.bare[1]), ("durable hops", m.durable[1]), ("events stack", m.real.burst)):
        print(f"CPU ms per accepted order at {IN_FLIGHT} in flight, {name}: " + _per_process(run.cpu_ms_per_call))
    for name, (serial, burst) in (("real stack", m.real_runs), ("durable", m.durable), ("bare", m.bare)):
        print(f"{name}: {len(serial.latencies_ms)} + {len(burst.latencies_ms)} calls measured, "
              f"{serial.errors + burst.errors} errors")


def _consumers(drains: tuple[Drain, Drain], who: str) -> None:
    for drain in drains:
        print(f"Consumer alone ({who}), {drain.service}: {drain.events:,} events in {drain.seconds:.2f} s "
              f"({drain.per_s:,.0f}/s), process CPU {drain.cpu_ms:,.0f} ms ({drain.cpu_ms_per_event:.3f} ms/event, "
              f"{drain.sys_ms / max(drain.cpu_ms, 1e-9):.0%} of it in the kernel), "
              f"redis-server CPU {drain.redis_cpu_ms / drain.events:.3f} ms/event"
              + ("" if drain.complete else " -- NOT fully drained before the time limit"))


def _aims_table(rows: list[Row]) -> None:
    width, mwidth, awidth = (max(len(r[0]) for r in rows), max(len(r[1]) for r in rows),
                             max(len(r[2]) for r in rows))
    print(f"\n{'figure':<{width}} | {'measured':<{mwidth}} | {'aim':<{awidth}} | met?")
    print(f"{'-' * width}-+-{'-' * mwidth}-+-{'-' * awidth}-+-----")
    for figure, measured, aim, ok in rows:
        verdict = "n/a (see NOTE)" if "nan" in measured else ("yes" if ok else "NO")
        print(f"{figure:<{width}} | {measured:<{mwidth}} | {aim:<{awidth}} | {verdict}")
    busy = busy_phases()
    if busy:
        print(f"(other processes took CPU during: {', '.join(busy)}; their figures are disturbed, either way)")
