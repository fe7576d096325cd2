"""`python -m bench.scale [--quick] [--no-lean]`: every setup by its twin(s) and the real stack,
then the report (see __init__.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import bench.scale
from bench.common.cluster_store import transport_from
from bench.scale.real import measure_real
from bench.scale.report import report
from bench.scale.run import FULL, QUICK, Result, Setup, Sizes
from bench.scale.twin import measure_twin, serve_twin

SETUPS = (Setup("single Redis", False, 1), Setup("cluster", True, 1), Setup("single Redis", False, 2),
          Setup("cluster", True, 2), Setup("cluster+WAIT 1", True, 1, 1))


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(bench.scale.__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (a few minutes), for a smoke test")
    parser.add_argument("--no-lean", action="store_true", help="no lean-per-master twin on the cluster")
    parser.add_argument("--only", type=int, nargs="*", help="these setups only (0-based, base first)")
    parser.add_argument("--bare-server", nargs=5, metavar="ARG", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _setup_runs(setup: Setup, sizes: Sizes, lean: bool) -> list[Result]:
    results = [measure_twin(setup, "redis-py", sizes)]
    if setup.clustered and lean:
        results.append(measure_twin(setup, "lean", sizes))
    return [*results, measure_real(setup, sizes)]


def main(argv: list[str]) -> None:
    args = _arguments(argv)
    if args.bare_server:
        role, port, target, instance, transport = args.bare_server
        asyncio.run(serve_twin(role, int(port), target, int(instance), transport_from(transport)))
        return
    os.environ.pop("REDIS_URL", None)
    chosen = [SETUPS[i] for i in args.only] if args.only else list(SETUPS)
    if SETUPS[0] not in chosen:
        chosen.insert(0, SETUPS[0])  # the base every ratio is of
    sizes = QUICK if args.quick else FULL
    report([result for setup in chosen for result in _setup_runs(setup, sizes, not args.no_lean)])


if __name__ == "__main__":
    main(sys.argv[1:])
