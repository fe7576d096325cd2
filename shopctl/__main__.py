"""python -m shopctl up | demo --mode sync|events"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from shopctl.stack import Stack


def up() -> None:
    """Run everything in the foreground on the default ports until Ctrl-C."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Stack(free_ports=False) as stack:
        print(f"\nstack up: Redis {stack.redis_url}", flush=True)
        for name in ("gateway", "order", "payment", "notification"):
            print(f"  {name:<13} {stack.address(name)}", flush=True)
        print("Ctrl-C stops everything.", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        print("\nstopping...", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="shopctl")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run Redis and the four services in the foreground")
    demo = sub.add_parser("demo", help="start the stack, place a few orders, show who did what")
    demo.add_argument("--mode", choices=["sync", "events"], default="sync")
    args = parser.parse_args(argv)
    if args.command == "up":
        up()
    elif args.command == "demo":
        from shopctl import demo as demo_module
        demo_module.run(args.mode)


if __name__ == "__main__":
    main(sys.argv[1:])
