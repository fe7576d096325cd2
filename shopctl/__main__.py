"""python -m shopctl up | demo --mode sync|events | load ... | compare [--quick] | chaos [--quick]"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from shopctl import secure
from shopctl.instances import ScaledStack, instances_from_env
from shopctl.local_redis.server import RedisUnsuitable
from shopctl.stack import StackError

# Where `up` leaves the running stack's Redis settings for `make streams` / `make dead-letters`
# (sourced when REDIS_URL is not set; a password file's path at most, never a password).
UP_ENV = Path("results/tmp/up.env")
# The tracing settings of `up` that the ops tools take on with it (shoplib.observability.tracing reads them).
TRACE_SETTINGS = ("TRACE_DIR", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED")
# How often `up` looks whether a service of the running stack has exited; also how quickly Ctrl-C is seen.
UP_CHECK_S = 0.5


def up() -> None:
    """Run everything in the foreground on the default ports (or GATEWAY_PORT, ORDER_PORT...) until
    Ctrl-C (or SIGTERM)."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stack = ScaledStack(free_ports=False, instances=instances_from_env())  # INSTANCES=N: N of each service
    with stack:
        print(f"\nstack up: Redis {stack.redis_url}{' (cluster)' if stack.cluster else ''}", flush=True)
        if isinstance(stack.redis, secure.SecureRedis):  # where the tools' user finds its password (never printed)
            print(f"  Redis ACL users; ops tools: REDIS_USERNAME=ops REDIS_PASSWORD_FILE="
                  f"{stack.redis.password_file('ops')}", flush=True)
        for name in stack.labels():
            metrics = stack.metrics_url(name) if stack.metrics_ports[name] else "no metrics"
            print(f"  {name:<13} {stack.address(name)}  {metrics}", flush=True)
        print(f"gateway target (round_robin): {stack.addresses('gateway')}", flush=True)
        if os.environ.get("TRACE_DIR"):  # TRACE=1 make up
            print(f"spans under {os.environ['TRACE_DIR']}/ (within 5 s): make trace ORDER=ord_...", flush=True)
        _write_up_env(stack)
        print("Ctrl-C stops everything.", flush=True)
        try:
            _run_until(stop, stack)
        finally:
            UP_ENV.unlink(missing_ok=True)
        print("\nstopping...", flush=True)


def _write_up_env(stack: ScaledStack) -> None:
    lines = [f"REDIS_URL={stack.redis_url}"] + (["REDIS_CLUSTER=1"] if stack.cluster else [])
    if isinstance(stack.redis, secure.SecureRedis):
        lines += ["REDIS_USERNAME=ops", f"REDIS_PASSWORD_FILE={stack.redis.password_file('ops')}"]
    # Where the stack's spans go: an operator's re-drive (`make dead-letters ARGS='redrive ...'`) joins them.
    lines += [f"{name}={value}" for name in TRACE_SETTINGS if (value := os.environ.get(name))]
    UP_ENV.parent.mkdir(parents=True, exist_ok=True)
    UP_ENV.write_text("".join(f"{line}\n" for line in lines))
    print(f"make streams | dead-letters use this stack ({UP_ENV})", flush=True)


def _run_until(stop: threading.Event, stack: ScaledStack) -> None:
    while not stop.wait(UP_CHECK_S):  # a wait with a timeout lets the signal handler run
        # A service that dies leaves a half stack that answers some calls and fails others, and
        # `up` has no supervisor to restart it: report the exit and stop everything (exit 1).
        stack.check_running("while the stack was up")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="shopctl")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run Redis and the four services in the foreground")
    demo = sub.add_parser("demo", help="start the stack, place a few orders, show who did what")
    demo.add_argument("--mode", choices=["sync", "events"], default="sync")
    load = sub.add_parser("load", help="drive orders at a running gateway and print latency and throughput")
    load.add_argument("--mode", choices=["sync", "events"], default="sync")
    load.add_argument("--rate", type=float, default=None, help="orders/s, open loop (default: closed loop)")
    load.add_argument("--concurrency", type=int, default=16, help="callers in the closed loop")
    load.add_argument("--duration", type=float, default=10.0, help="seconds")
    load.add_argument("--follow", action="store_true", help="follow each order (WatchOrder) to its outcome")
    load.add_argument("--target", default="127.0.0.1:50051", help="gateway address, or a comma list (round_robin)")
    compare = sub.add_parser("compare", help="both modes side by side: latency, outcome, payment down/slow, CPU")
    compare.add_argument("--quick", action="store_true", help="a small run (under a minute), as the tests use")
    compare.add_argument("--results", default="results/runs", help="folder for compare-<timestamp>/ (untracked)")
    compare.add_argument("--save", nargs="?", const="results/latest", default=None, metavar="FOLDER",
                         help="also copy the report to FOLDER (default results/latest, tracked in git)")
    chaos = sub.add_parser("chaos", help="inject real faults, drain, check every order; every scenario has a control")
    chaos.add_argument("--quick", action="store_true", help="the reduced sizes, as the tests use")
    chaos.add_argument("--only", action="append", metavar="SCENARIO", help="number or name; repeatable")
    chaos.add_argument("--seed", type=int, default=None, help="reuse a run's random choices (victims, fault points)")
    chaos.add_argument("--no-controls", dest="controls", action="store_false", help="skip the control runs")
    chaos.add_argument("--json", dest="json_path", default=None, help="also write the results to this file")
    trace = sub.add_parser("trace", help="one order's waterfall from the spans kept by TRACE=1 (text and PNG)")
    trace.add_argument("--order", required=True, help="order id (ord_...)")
    trace.add_argument("--png", default=None, help="where to write the chart (default: beside the spans)")
    args = parser.parse_args(argv)
    try:
        run(args)
    except (StackError, RedisUnsuitable) as error:  # its message is the report; a traceback would only bury it
        print(f"shopctl {args.command}: {error}", file=sys.stderr, flush=True)
        sys.exit(1)


def run(args: argparse.Namespace) -> None:
    if args.command == "up":
        up()
    elif args.command == "demo":
        from shopctl import demo as demo_module
        demo_module.run(args.mode)
    elif args.command == "load":
        from shopctl import load as load_module
        load_module.cli(args)
    elif args.command == "compare":
        from shopctl.compare import runner
        runner.main(quick=args.quick, results=args.results, latest=args.save)
    elif args.command == "trace":
        from shopctl import trace_cmd
        trace_cmd.cli(args.order, args.png)
    elif args.command == "chaos":
        from shopctl.chaos import runner as chaos_runner
        chaos_runner.main(args.quick, args.only, args.seed, args.controls, args.json_path)


if __name__ == "__main__":
    main(sys.argv[1:])
