"""The figures of a run, then a table of them against the issue's aims."""

from __future__ import annotations

from bench.common.before_after import Figure
from bench.common.load import IN_FLIGHT, Run, compared, pct
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

Row = tuple[str, str, str, bool]  # figure, measured, aim, met
CLIENT = "bench client"  # the load generator: its CPU is not the stack's

ROWS = [
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
    Figure("own_cpu_ms", "own CPU per order (ours - bare)", " ms", "half of before", of_before=0.5),
]


def figures(bare: tuple[Run, Run], real: StackResult, drains: tuple[Drain, Drain]) -> dict[str, float]:
    """The headline figures of a run, as results/bench/events.json keeps them."""
    cpu, bare_cpu = (sum(ms for name, ms in run.cpu_ms_per_call.items() if name != CLIENT)
                     for run in (real.burst, bare[1]))
    to_receipt = real.e2e.steady.to_receipt_ms
    found = {"p50_1_ratio": real.serial.p(0.5) / bare[0].p(0.5), "p50_1_ms": real.serial.p(0.5),
             "accepted_per_s": real.burst.per_s, "completed_per_s": real.e2e.saturated.completed_per_s,
             "receipt_p50_ms": pct(to_receipt, 0.5), "receipt_p99_ms": pct(to_receipt, 0.99),
             "cpu_ms": cpu, "bare_cpu_ms": bare_cpu, "own_cpu_ms": cpu - bare_cpu}
    for drain in drains:
        found[f"{drain.service}_drain_per_s"] = drain.per_s
        found[f"{drain.service}_cpu_ms_per_event"] = drain.cpu_ms_per_event
    return found


def report(bare: tuple[Run, Run], real: StackResult, drains: tuple[Drain, Drain], sizes: Sizes) -> None:
    rows = _latency(bare, real) + _end_to_end_aims(real.e2e, sizes) + _drain_aims(drains)
    _end_to_end(real.e2e, sizes)
    _calls(bare, real)
    _consumers(drains)
    print_notes()
    _aims_table(rows)


def _latency(bare: tuple[Run, Run], real: StackResult) -> list[Row]:
    print("\nPlaceOrder latency, ms (client -> gateway -> order -> Redis -> back)")
    print(f"{'':<22} {'bare hops':>10} {'events':>10} {'ratio':>7}")
    rows: list[Row] = []
    for name, in_flight, b, r in compared(bare, (real.serial, real.burst)):
        label = f"{name}, {in_flight}"
        print(f"{label:<22} {b:>10.2f} {r:>10.2f} {r / b:>6.2f}x")
        rows.append((f"PlaceOrder {label}", f"{r:.2f} ms = {r / b:.2f}x bare ({b:.2f})",
                     f"<= {AIM_LATENCY_RATIO}x bare", r / b <= AIM_LATENCY_RATIO))
    b, r = bare[1].per_s, real.burst.per_s
    print(f"{f'orders/s, {IN_FLIGHT} in flight':<22} {b:>10.0f} {r:>10.0f} {r / b:>6.0%}")
    rows.append((f"accepted orders/s, {IN_FLIGHT} in flight", f"{r:,.0f} (bare {b:,.0f})",
                 f">= {AIM_ACCEPTED_PER_S:,.0f}", r >= AIM_ACCEPTED_PER_S))
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


def _drain_aims(drains: tuple[Drain, Drain]) -> list[Row]:
    rows: list[Row] = []
    for drain in drains:
        rows.append((f"{drain.service} backlog drained", f"{drain.per_s:,.0f} events/s",
                     f">= {AIM_DRAIN_PER_S:,.0f}/s", drain.per_s >= AIM_DRAIN_PER_S and drain.complete))
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


def _calls(bare: tuple[Run, Run], real: StackResult) -> None:
    for name, run in (("bare hops", bare[1]), ("events stack", real.burst)):
        print(f"CPU ms per accepted order at {IN_FLIGHT} in flight, {name}: " + _per_process(run.cpu_ms_per_call))
    print(f"Real stack: {len(real.serial.latencies_ms)} + {len(real.burst.latencies_ms)} calls measured, "
          f"{real.serial.errors + real.burst.errors} errors; bare: {len(bare[0].latencies_ms)} + "
          f"{len(bare[1].latencies_ms)}, {bare[0].errors + bare[1].errors} errors")


def _consumers(drains: tuple[Drain, Drain]) -> None:
    for drain in drains:
        print(f"Consumer alone, {drain.service}: {drain.events:,} events in {drain.seconds:.2f} s "
              f"({drain.per_s:,.0f}/s), process CPU {drain.cpu_ms:,.0f} ms ({drain.cpu_ms_per_event:.3f} ms/event, "
              f"{drain.sys_ms / max(drain.cpu_ms, 1e-9):.0%} of it in the kernel), "
              f"redis-server CPU {drain.redis_cpu_ms / drain.events:.3f} ms/event"
              + ("" if drain.complete else " -- NOT fully drained before the time limit"))


def _aims_table(rows: list[Row]) -> None:
    width, mwidth = max(len(r[0]) for r in rows), max(len(r[1]) for r in rows)
    print(f"\n{'figure':<{width}} | {'measured':<{mwidth}} | {'aim':<14} | met?")
    print(f"{'-' * width}-+-{'-' * mwidth}-+-{'-' * 14}-+-----")
    for figure, measured, aim, ok in rows:
        verdict = "n/a (see NOTE)" if "nan" in measured else ("yes" if ok else "NO")
        print(f"{figure:<{width}} | {measured:<{mwidth}} | {aim:<14} | {verdict}")
    busy = busy_phases()
    if busy:
        print(f"(other processes took CPU during: {', '.join(busy)}; their figures are disturbed, either way)")
