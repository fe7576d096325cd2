"""`python -m bench.observability [--quick]` (make bench-observability): what metrics and traces
cost. In one run, the real stack (four services, private Redis) three ways: everything off;
/metrics on; /metrics and tracing at 10 % and at 100 % sampling (spans batched to a JSON-lines
file, as TRACE=1 does). For each mode: PlaceOrder p50 at 1 in flight, orders/s at IN_FLIGHT, CPU ms per
order. The three setups run in turns, ROUNDS times, so drift on a shared machine hits each alike.
Then what the hooks cost with tracing off, per call, measured in this process.

`--before DIR` (a checkout of other code, e.g. `git worktree add /tmp/before main`): the setups
off and traced run on that code too, interleaved with this tree's in every round (the services
of a stack are started from DIR), so the two are compared in the same minutes."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from pathlib import Path

from shop.v1 import events_pb2, types_pb2

from bench.common.load import IN_FLIGHT, LatencySizes, Run, latency_runs, pct
from shopctl.stack import Stack
from shoplib import catalogue
from shoplib.calls import traced
from shoplib.observability import tracing
from shoplib.streams import trace_context

MODES = {"sync": types_pb2.FLOW_MODE_SYNC, "events": types_pb2.FLOW_MODE_EVENTS}
SETUPS = ("off", "metrics", "metrics+traces 10%", "metrics+traces")
RATIO = "0.1"  # the sampled setup's share of traces (parent-based: a trace is kept or dropped whole)
FULL = LatencySizes(warm_up=50, serial=500, burst_warm_up=128, burst_max=20_000, burst_s=4.0)
QUICK = LatencySizes(warm_up=10, serial=60, burst_warm_up=32, burst_max=2_000, burst_s=1.0)
BEFORE_SETUPS = ("off", "metrics+traces 10%", "metrics+traces")  # what --before compares
BEFORE = " @before"  # the suffix of a setup run on the --before code
ROUNDS, QUICK_ROUNDS = 3, 1
HOOK_CALLS = 200_000  # calls of each hook timed with tracing off: enough for a stable ns figure


@dataclass
class Pooled:
    serial_ms: list[float] = field(default_factory=list)
    per_s: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)

    def add(self, serial: Run, burst: Run) -> None:
        self.serial_ms += serial.latencies_ms
        self.per_s.append(burst.per_s)
        self.cpu_ms.append(sum(burst.cpu_ms_per_call.values()))


def _env(setup: str, spans: Path) -> dict[str, str]:
    if setup == "metrics+traces":
        return {"TRACE_DIR": str(spans), "OTEL_TRACES_SAMPLER": "always_on"}
    if setup.startswith("metrics+traces"):
        return {"TRACE_DIR": str(spans), "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                "OTEL_TRACES_SAMPLER_ARG": RATIO}
    return {}


def _measure(label: str, sizes: LatencySizes, work: Path, results: dict[tuple[str, str], Pooled],
             before: Path | None) -> None:
    setup = label.removesuffix(BEFORE)
    code = before if label.endswith(BEFORE) and before is not None else Path.cwd()
    with contextlib.chdir(code), Stack(free_ports=True, metrics=setup != "off", log_dir=work / "logs" / label,
                                       env=_env(setup, work / "spans")) as stack:  # services run from `code`
        pids = {name: process.pid for name, process in stack.processes.items()}
        for mode, flow in MODES.items():
            serial, burst = asyncio.run(latency_runs(stack.address("gateway"), flow, sizes, pids))
            results.setdefault((mode, label), Pooled()).add(serial, burst)
            print(f"  {label:<26} {mode:<7} p50 {serial.p(0.5):6.2f} ms  {burst.per_s:7.0f} orders/s", flush=True)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _cost(value: float, base: float) -> str:
    return f"{(value / base - 1) * 100:+.1f}%"


def _table(results: dict[tuple[str, str], Pooled], setups: tuple[str, ...]) -> None:
    print(f"\n  {'mode':<7} {'setup':<26} {'p50 ms':>7} {'cost':>7} {'orders/s':>9} {'cost':>7} {'CPU ms/order':>13}"
          f" {'cost':>7}")
    for mode in MODES:
        for setup in setups:
            base = results[(mode, "off" + (BEFORE if setup.endswith(BEFORE) else ""))]
            r = results[(mode, setup)]
            p50, rate, cpu = pct(r.serial_ms, 0.5), _mean(r.per_s), _mean(r.cpu_ms)
            costs = ("", "", "") if setup.removesuffix(BEFORE) == "off" else (
                _cost(p50, pct(base.serial_ms, 0.5)), _cost(_mean(base.per_s), rate), _cost(cpu, _mean(base.cpu_ms)))
            print(f"  {mode:<7} {setup:<26} {p50:>7.2f} {costs[0]:>7} {rate:>9.0f} {costs[1]:>7} {cpu:>13.2f}"
                  f" {costs[2]:>7}")
    print(f"  (p50: {len(results[('sync', 'off')].serial_ms)} calls at 1 in flight pooled; orders/s at "
          f"{IN_FLIGHT} in flight; cost: slower p50, fewer orders/s (off's rate / this rate - 1), more CPU than off)")


def _hooks_off() -> None:
    """ns per call of the hot-path hooks with tracing off (this process never configures it)."""
    assert not tracing.active()
    envelope = catalogue.wrap(events_pb2.OrderPlaced(order=types_pb2.Order(order_id="ord_p1_x")), "/bench")

    def consume() -> None:
        with trace_context.consuming(envelope, "order-events", "1-0", "g", "c", 1):
            pass

    request = types_pb2.Order(order_id="ord_p1_x")
    for name, hook in (("inject (per event staged)", lambda: trace_context.inject(envelope)),
                       ("consuming (per delivery)", consume),
                       ("annotate (per served call)", lambda: traced.annotate("cid", request))):
        ns = timeit.timeit(hook, number=HOOK_CALLS) / HOOK_CALLS * 1e9
        print(f"  {name:<26} {ns:6.0f} ns")
    print("  (no gRPC interceptor of the library, no committer or dead-letter wrapper is installed with tracing off)")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small round, for a smoke test")
    parser.add_argument("--before", type=Path, help="a checkout of other code, run interleaved with this one")
    args = parser.parse_args(argv)
    sizes, rounds = (QUICK, QUICK_ROUNDS) if args.quick else (FULL, ROUNDS)
    before: Path | None = args.before.resolve() if args.before else None
    if before is not None and not (before / "shoplib").is_dir():
        raise SystemExit(f"--before {before}: not a checkout of this project (no shoplib/ in it)")
    setups = SETUPS if before is None else tuple(s + suffix for s in BEFORE_SETUPS for suffix in (BEFORE, ""))
    began = time.monotonic()
    results: dict[tuple[str, str], Pooled] = {}
    with tempfile.TemporaryDirectory(prefix="bench-observability-") as work:
        for turn in range(rounds):
            order = setups if turn % 2 == 0 else tuple(reversed(setups))
            print(f"round {turn + 1}/{rounds}", flush=True)
            for label in order:
                _measure(label, sizes, Path(work), results, before)
    print("\nObservability cost, real stack, private Redis" + (f" ({BEFORE.strip()}: {before})" if before else ""))
    _table(results, setups)
    print("\nHooks with tracing off")
    _hooks_off()
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
