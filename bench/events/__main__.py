"""`python -m bench.events [--quick]`: the phases in order, then the report (see __init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from shop.v1 import types_pb2

import bench.events
from bench.common import before_after
from bench.common.cpu import Others
from bench.common.load import IN_FLIGHT, Run, latency_runs
from bench.events.bare import BareHops, serve_bare
from bench.events.consumers import measure_consumers, measure_lean_consumers
from bench.events.notes import NOTES
from bench.events.report import ROWS, Measured, figures, report
from bench.events.sizes import FULL, QUICK, Sizes
from bench.events.stack import measure_stack
from shopctl.stack import Stack


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(bench.events.__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (about 30 s), for a smoke test")
    parser.add_argument("--bare-server", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _header(sizes: Sizes, quick: bool) -> None:
    if os.environ.pop("REDIS_URL", None):
        print("REDIS_URL ignored: every part of this bench runs on its own private redis-server")
    overrides = sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(("STREAM_", "LOG_")))
    if overrides:
        print(f"service settings from this environment: {' '.join(overrides)}")
    print(f"events bench ({'quick' if quick else 'full'}): {sizes.serial} orders at 1 in flight, "
          f"{sizes.burst_s:.0f} s at {IN_FLIGHT}, {sizes.rate:.0f}/s open loop for {sizes.rate_s:.0f} s, "
          f"backlog of {sizes.backlog:,}", flush=True)


def _hops(durable: bool, sizes: Sizes) -> tuple[Run, Run]:
    with BareHops(durable) as hops:
        what = "durable hops (gateway -> order -> commit, lean consumers)" if durable else \
            "bare hops (gateway -> order -> XADD)"
        print(f"{what} up; measuring...", flush=True)
        pids = hops.pids(client=True)
        with Others("durable hops" if durable else "bare hops", list(pids.values())):
            return asyncio.run(latency_runs(hops.address("gateway"), types_pb2.FLOW_MODE_EVENTS, sizes, pids))


def _measure(sizes: Sizes, logs: Path) -> Measured:
    bare, durable = _hops(False, sizes), _hops(True, sizes)
    with Stack(free_ports=True, log_dir=logs / "stack") as stack:
        print("real stack up (events mode, private Redis); measuring...", flush=True)
        real = measure_stack(stack, sizes)
    print("consumer runtime alone (payment, then notification, private Redis)...", flush=True)
    drains = measure_consumers(sizes, logs / "consumers")
    print("durable lean consumers alone (the same backlog, private Redis)...", flush=True)
    return Measured(bare, durable, real, drains, measure_lean_consumers(sizes))


def main(argv: list[str]) -> None:
    args = _arguments(argv)
    if args.bare_server:
        role, port, target = args.bare_server
        asyncio.run(serve_bare(role, int(port), target))
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so every `finally` below runs
    sizes, began = QUICK if args.quick else FULL, time.monotonic()
    _header(sizes, args.quick)
    logs = Path(tempfile.mkdtemp(prefix="bench-events-"))  # service logs; kept when something went wrong
    try:
        measured = _measure(sizes, logs)
        report(measured, sizes)
        found = figures(measured)
        if not args.quick:  # a smoke run's figures are not kept
            before_after.save("events", found)
        print("\n" + before_after.table("events", found, ROWS))
    finally:
        if NOTES or sys.exc_info()[0] is not None:
            print(f"service logs kept in {logs}")
        else:
            shutil.rmtree(logs, ignore_errors=True)
    print(f"\n(bench took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
