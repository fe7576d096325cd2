"""Speed of the secure profile: the sync stack with SECURE=1 (mTLS on every hop, a bearer token
checked at the gateway, ACL users in Redis) against the same stack in plaintext, in one run.

    .venv/bin/python -m bench.secure [--quick]      (make bench-secure)

mTLS costs a handshake per connection, not per call: connections are opened by the warm-up, so
the figures are steady state. The aim: PlaceOrder p50 and throughput within 1.15x of plaintext.
Certificates and the token key are made for the run in a temporary folder. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

from bench.common.load import IN_FLIGHT, LatencySizes, Run, gateway_call, latency_runs_on
from bench.sync_chain import FULL, QUICK
from shopctl import certs, secure, tokens
from shopctl.stack import Stack

AIM_RATIO = 1.15  # secure / plaintext, for p50 latency and for time per order at IN_FLIGHT
# Rounds of (plaintext, secure), interleaved: on a shared machine, load that comes and goes during
# one run shows as a difference between rounds, not as a cost of one profile.
ROUNDS = 2


@contextlib.contextmanager
def profile(secured: bool, certs_dir: Path) -> Iterator[None]:
    """SECURE=1 (and the run's certificates) for this process and the stack it starts, or neither."""
    saved = {name: os.environ.get(name) for name in ("SECURE", "CERTS_DIR")}
    os.environ.update({"SECURE": "1" if secured else "0", "CERTS_DIR": str(certs_dir)})
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})


async def runs(address: str, sizes: LatencySizes, token: str, pids: Mapping[str, int]) -> tuple[Run, Run]:
    async with secure.human_channel(address, token) as channel:
        return await latency_runs_on(gateway_call(gw_grpc.GatewayServiceStub(channel), types_pb2.FLOW_MODE_SYNC),
                                     sizes, pids)


def measure(secured: bool, sizes: LatencySizes, certs_dir: Path) -> tuple[Run, Run]:
    with profile(secured, certs_dir), tempfile.TemporaryDirectory(prefix="bench-secure-") as logs, \
            Stack(free_ports=True, log_dir=Path(logs)) as stack:
        token = tokens.development_token("bench", operator=True) if secured else ""
        print(f"{'secure' if secured else 'plaintext'} stack up (sync mode); measuring...", flush=True)
        pids = {name: process.pid for name, process in stack.processes.items()}
        if stack.redis is not None and stack.redis.process is not None:
            pids["redis"] = stack.redis.process.pid
        return asyncio.run(runs(stack.address("gateway"), sizes, token, pids))


def report(plain: tuple[Run, Run], secured: tuple[Run, Run]) -> None:
    print(f"\n{'metric':<28} {'plaintext':>10} {'secure':>10} {'ratio':>7}   aim <= {AIM_RATIO}x")
    rows = [("PlaceOrder p50 ms, 1", plain[0].p(0.5), secured[0].p(0.5)),
            ("PlaceOrder p99 ms, 1", plain[0].p(0.99), secured[0].p(0.99)),
            (f"PlaceOrder p50 ms, {IN_FLIGHT}", plain[1].p(0.5), secured[1].p(0.5))]
    for name, p, s in rows:
        print(f"{name:<28} {p:>10.2f} {s:>10.2f} {s / p:>6.2f}x   {'met' if s / p <= AIM_RATIO else 'not met'}")
    p, s = plain[1].per_s, secured[1].per_s
    print(f"{f'orders/s, {IN_FLIGHT} in flight':<28} {p:>10.1f} {s:>10.1f} {p / s:>6.2f}x   "
          f"{'met' if p / s <= AIM_RATIO else 'not met'} (time per order)")
    p, s = sum(plain[1].cpu_ms_per_call.values()), sum(secured[1].cpu_ms_per_call.values())
    print(f"{'CPU ms per order, all':<28} {p:>10.2f} {s:>10.2f} {s / p:>6.2f}x   "
          "(services + Redis, at 64 in flight: what load on the machine skews least)")
    errors = sum(run.errors for run in (*plain, *secured))
    print(f"{sum(len(r.latencies_ms) for r in (*plain, *secured))} calls measured, {errors} errors")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small run (seconds), for a smoke test")
    sizes = QUICK if parser.parse_args(argv).quick else FULL
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start (other work skews the figures)")
    with tempfile.TemporaryDirectory(prefix="bench-certs-") as directory:
        certs.write(Path(directory))
        rounds = [(measure(False, sizes, Path(directory)), measure(True, sizes, Path(directory)))
                  for _ in range(ROUNDS)]
    for number, (plain, secured) in enumerate(rounds, 1):
        print(f"\nround {number} of {ROUNDS}:", end="")
        report(plain, secured)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main(sys.argv[1:])
