"""The comparison's report: terminal table, results.json, report.md, and the latest/ copy."""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from shopctl.compare import tables
from shopctl.load import Run
from shopctl.stack import Stack

Results = dict[str, Any]
JSON_NAME, MARKDOWN_NAME, RECORDS_NAME = "results.json", "report.md", "records.csv"
PUBLISHED = (".json", ".md", ".png")  # what latest/ gets


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _redis_server_version(stack: Stack) -> str:
    binary = stack.redis.binary if stack.redis is not None else "redis-server"
    try:
        found = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return next((p.removeprefix("v=") for p in found.stdout.split() if p.startswith("v=")), found.stdout.strip())


def machine(stack: Stack) -> dict[str, Any]:
    packages = ("grpcio", "protobuf", "redis", "hiredis", "matplotlib")
    return {"nproc": os.cpu_count(), "cpu_model": _cpu_model(), "kernel": platform.release(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(), "redis_server": _redis_server_version(stack),
            **{name: metadata.version(name) for name in packages}}


def invariants(results: Results) -> dict[str, bool]:
    """What the test checks: every order accounted for, none lost or charged twice, both modes present."""
    books = tables.books(results)
    down = results["payment_down"]
    return {
        "mode_per_request": bool(results["mode_check"]["ok"]),
        "both_modes_present": {mode for _, mode, _ in books} == set(tables.MODES),
        "every_order_accounted_for": all(
            b["placed"] == b["accepted"] + sum(b["failed"].values()) and b["accepted"] == b["terminal"] + b["lost"]
            for _, _, b in books),
        "no_order_lost": all(b["lost"] == 0 for _, _, b in books),
        "no_order_charged_twice": all(b["charged_twice"] == 0 for _, _, b in books),
        "right_outcome_one_charge": all(b["wrong_outcome"] == 0 and b["not_charged"] == 0 for _, _, b in books),
        "notified_once_each": all(b["notified_wrong"] == 0 for _, _, b in books),
        "events_accepted_every_order_while_payment_was_down": not down["events"]["failed"],
        "no_dead_letters": results["dead_letters"] == 0,
    }


def table(results: Results) -> str:
    found = results["invariants"]
    verdict = "all hold" if all(found.values()) else "FAILED: " + ", ".join(k for k, v in found.items() if not v)
    return "\n\n".join([*(tables.text(t) for t in tables.all_tables(results)), f"Invariants: {verdict}"])


def _markdown(results: Results, charts: list[str]) -> str:
    meta, m = results["meta"], results["meta"]["machine"]
    head = [f"# Sync vs events: comparison of {meta['started']}", "",
            f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Linux {m['kernel']}, Python {m['python']}, "
            f"grpcio {m['grpcio']}, redis-py {m['redis']}, redis-server {m['redis_server']}; load average "
            f"{m['load_average_at_start']} at the start, {meta['load_average_at_end']} at the end.", "",
            f"Settings ({meta['sizes']['name']}): `{json.dumps(meta['sizes'])}`; stack environment: "
            f"`{json.dumps(meta['stack_env'])}`. Whole run: {meta['duration_s']} s.", ""]
    body = [tables.markdown(t) + "\n" for t in tables.all_tables(results)]
    images = [f"![{name}]({name})" for name in charts]
    found = results["invariants"]
    checks = ["### Invariants", "", *(f"- {name.replace('_', ' ')}: {'yes' if ok else '**NO**'}"
                                      for name, ok in found.items())]
    return "\n".join(head + body + images + [""] + checks) + "\n"


def write(results: Results, folder: Path, charts: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    results["charts"] = charts
    (folder / JSON_NAME).write_text(json.dumps(results, indent=1) + "\n")
    (folder / MARKDOWN_NAME).write_text(_markdown(results, charts))


def write_records(folder: Path, journal: list[tuple[str, Run]]) -> None:
    """Every request of every measured run (stays with the stamped run; latest/ gets the summary)."""
    origin = min((run.started for _, run in journal if run.records), default=0.0)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RECORDS_NAME, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["step", "mode", "idempotency_key", "expect_declined", "start_s", "end_s", "code",
                         "order_id", "terminal_seen_s"])
        for label, run in journal:
            for r in run.records:
                settled = "" if r.settled is None else f"{r.settled - origin:.4f}"
                writer.writerow([" ".join(label.split()), run.workload.mode, r.key, int(r.declined),
                                 f"{r.start - origin:.4f}", f"{r.end - origin:.4f}", r.code, r.order_id, settled])


def publish(folder: Path, latest: Path) -> None:
    """Replace latest/ with this run's report, data and charts (not the raw records, not the logs)."""
    shutil.rmtree(latest, ignore_errors=True)
    latest.mkdir(parents=True)
    for path in folder.iterdir():
        if path.suffix in PUBLISHED:
            shutil.copy2(path, latest / path.name)


def load(folder: Path) -> Results:
    found: Results = json.loads((folder / JSON_NAME).read_text())
    return found
