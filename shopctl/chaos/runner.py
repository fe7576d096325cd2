"""Runs the scenarios (each, then its control), prints the table, and exits 0 only if every test
run passed and every control run was caught."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

from shopctl.chaos import table
from shopctl.chaos.checker import Counts, Failure
from shopctl.chaos.cluster import CLUSTER_SCENARIOS
from shopctl.chaos.harness import Outcome
from shopctl.chaos.scenarios import FULL_ONLY_SCENARIOS, SCENARIOS, Env, Scenario
from shopctl.chaos.sizes import CONTROL, FULL, QUICK, Sizes

# One run (start, load, faults, drain, final read, stop) that takes longer than this has hung.
RUN_TIMEOUT_S = 420.0
EVERY = (*SCENARIOS, *CLUSTER_SCENARIOS, *FULL_ONLY_SCENARIOS)  # in the order `make chaos` runs them


def select(only: list[str] | None, quick: bool = False) -> list[Scenario]:
    """`only` (numbers or names), else every scenario; the cluster ones not in a quick run."""
    if not only:
        return list(SCENARIOS) if quick else list(EVERY)
    wanted = {w.strip() for item in only for w in item.split(",") if w.strip()}
    chosen = [sc for sc in EVERY if str(sc.number) in wanted or sc.key in wanted]
    unknown = wanted - {str(sc.number) for sc in chosen} - {sc.key for sc in chosen}
    if unknown:
        names = ", ".join(f"{sc.number}/{sc.key}" for sc in EVERY)
        raise SystemExit(f"chaos: unknown scenario {sorted(unknown)}; choose among {names}")
    return chosen


async def _one(sc: Scenario, sizes: Sizes, control: bool, log_root: Path, seed: int) -> Outcome:
    log_dir = log_root / f"{sc.number:02d}-{sc.key}{'-control' if control else ''}"
    started = time.monotonic()
    try:
        return await asyncio.wait_for(sc.body(sc, Env(sizes, log_dir, seed + sc.number), control), RUN_TIMEOUT_S)
    except Exception as exc:  # a run that breaks is a failed run, reported with its cause
        failure = Failure("error", "".join(traceback.format_exception_only(exc)).strip()[-500:])
        return Outcome(f"{sc.number}. {sc.key}", sc.title, sc.control if control else None,
                       sc.expect if control else None, Counts(), [failure], [], {"traceback": traceback.format_exc()},
                       time.monotonic() - started, str(log_dir))


async def run_all(scenarios: list[Scenario], sizes: Sizes, controls: bool, log_root: Path, seed: int
                  ) -> list[Outcome]:
    outcomes = []
    for sc in scenarios:
        for control, size in [(False, sizes), *([(True, CONTROL)] if controls else [])]:
            print(f"chaos: {sc.number}. {sc.title}{' (control: ' + sc.control + ')' if control else ''} ...",
                  end=" ", flush=True)
            outcome = await _one(sc, size, control, log_root, seed)
            print(f"{table.result(outcome)} in {outcome.seconds:.0f}s", flush=True)
            outcomes.append(outcome)
    return outcomes


def main(quick: bool = False, only: list[str] | None = None, seed: int | None = None, controls: bool = True,
         json_path: str | None = None) -> None:
    scenarios, sizes = select(only, quick), QUICK if quick else FULL
    seed = random.randrange(1_000_000) if seed is None else seed
    log_root = Path(tempfile.mkdtemp(prefix="shop-chaos-"))
    print(f"chaos: {sizes.name} sizes, seed {seed}, logs in {log_root}", flush=True)
    started = time.monotonic()
    outcomes = asyncio.run(run_all(scenarios, sizes, controls, log_root, seed))
    elapsed = time.monotonic() - started
    print(f"\n{table.render(outcomes)}\n\n{table.details(outcomes)}\n")
    ok = all(o.ok for o in outcomes)
    if json_path:
        Path(json_path).write_text(json.dumps({"sizes": sizes.name, "seed": seed, "elapsed_s": round(elapsed, 1),
                                               "ok": ok, "runs": [o.as_dict() for o in outcomes]}, indent=2))
    for outcome in outcomes:  # keep the logs (and Redis data) of the runs that went wrong, only
        if outcome.ok:
            shutil.rmtree(outcome.log_dir, ignore_errors=True)
    if ok:
        shutil.rmtree(log_root, ignore_errors=True)
    verdict = "every scenario PASS, every control caught" if ok else f"FAILED (their logs are kept in {log_root})"
    print(f"chaos: {verdict} in {elapsed:.0f}s (seed {seed})")
    sys.exit(0 if ok else 1)
