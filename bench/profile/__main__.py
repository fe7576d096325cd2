"""`python -m bench.profile`: per mode, start the stack, load it, sample it, write the results
(see __init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

import grpc
from shop.v1 import gateway_service_pb2_grpc as gw_grpc
from shop.v1 import types_pb2

import bench.profile
from bench.common.load import IN_FLIGHT, Run, closed_loop, gateway_call
from bench.events.bare import BareHops
from bench.events.open_loop import open_loop
from bench.profile import report
from bench.profile.report import BARE
from bench.profile.sampling import Load, Window, measured, sampled
from bench.sync_chain import BareChain
from shopctl.stack import SERVICES, Stack

OUT = Path(__file__).resolve().parents[2] / "results" / "profile"
MODES = {"sync": types_pb2.FLOW_MODE_SYNC, "events": types_pb2.FLOW_MODE_EVENTS}
SECONDS = 12.0  # per sampled window: about a thousand samples per busy service
WARM_UP_S = 3.0  # connections open, caches warm, the consumers' batches at their steady size
# Events mode is driven at a rate the stack carries while four samplers run (about 60 % of what it
# accepts unprofiled), so that payment and notification keep up and CPU per order means the same
# window's orders in every service; sync mode is driven like `make bench`: IN_FLIGHT in flight.
EVENTS_RATE = 300.0
MAX_CALLS = 1_000_000  # a closed loop's budget: the window's length ends it, never this


def _load(address: str, mode: str) -> Load:
    async def drive(seconds: float) -> Run:
        async with grpc.aio.insecure_channel(address) as channel:
            call = gateway_call(gw_grpc.GatewayServiceStub(channel), MODES[mode])
            if mode == "events":
                return await open_loop(call, EVENTS_RATE, seconds)
            return await closed_loop(call, IN_FLIGHT, MAX_CALLS, seconds)

    return drive


async def _profile(address: str, pids: dict[str, int], mode: str, folder: Path, seconds: float) -> Window:
    """Warm up, then three windows: CPU unsampled, raw stacks, flame graphs (files named by pids' keys)."""
    load = _load(address, mode)
    await load(WARM_UP_S)
    cpu = await measured(load, pids, seconds)
    await sampled(load, pids, seconds, {n: folder / f"{n}.raw.txt" for n in pids}, "raw")
    await sampled(load, pids, seconds, {n: folder / f"{n}.svg" for n in pids}, "flamegraph")
    return cpu


def _ours(mode: str, folder: Path, seconds: float) -> Window:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as logs, \
            Stack(free_ports=True, log_dir=Path(logs), env={"STREAM_MAINTENANCE_S": "600"}) as stack:
        pids = {name: stack.processes[name].pid for name in SERVICES}
        return asyncio.run(_profile(stack.address("gateway"), pids, mode, folder, seconds))


def _bare(mode: str, folder: Path, seconds: float) -> Window:
    """The bench's bare twin of this mode (empty handlers; events: gateway -> order -> XADD)."""
    with (BareChain() if mode == "sync" else BareHops()) as bare:
        pids = {f"{BARE}{role}": process.pid for role, process in bare.processes.items()}
        return asyncio.run(_profile(bare.address("gateway"), pids, mode, folder, seconds))


def profile_mode(mode: str, seconds: float, out: Path = OUT) -> str:
    """Profile one mode, ours and its bare twin, into out/<mode>/; its markdown table."""
    folder = out / mode
    folder.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    print(f"{mode}: the stack, then its bare twin; each warmed up, then three windows of {seconds:.0f} s "
          "(CPU, raw stacks, flame graphs)...", flush=True)
    ours, bare = _ours(mode, folder, seconds), _bare(mode, folder, seconds)
    cpu_ms = {**_per_order(ours), **_per_order(bare)}
    raws = {name: (folder / f"{name}.raw.txt").read_text().splitlines() for name in cpu_ms}
    split = report.write_summaries(folder, raws, cpu_ms)
    header = (f"{_rate(ours)}, bare {_rate(bare)}; load average {load_before:.2f} before, "
              f"{os.getloadavg()[0]:.2f} after, on {os.cpu_count()} cores")
    text = report.table(mode, cpu_ms, split, len(ours.run.latencies_ms), header)
    (folder / "shares.md").write_text(text)
    return text


def _per_order(window: Window) -> dict[str, float]:
    orders = len(window.run.latencies_ms)
    return {name: s * 1000 / orders for name, s in window.cpu_s.items()}


def _rate(window: Window) -> str:
    return f"{len(window.run.latencies_ms) / window.run.elapsed_s:.0f} orders/s, {window.run.errors} errors"


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=(bench.profile.__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=SECONDS, help="length of each sampled window")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the results (a scratch one for a trial)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the stack's `with` stops every process
    for mode in args.modes:
        print(profile_mode(mode, args.seconds, args.out), flush=True)
    print(f"written to {args.out}/<mode>/: <service>.svg, <service>.txt, <service>.raw.txt, shares.md")


if __name__ == "__main__":
    main(sys.argv[1:])
