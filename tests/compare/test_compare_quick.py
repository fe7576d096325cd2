"""`python -m shopctl compare --quick`, end to end: the report is complete and its books balance.

Speed figures are not asserted (they depend on the machine); what is: both modes measured in every
scenario, every order accounted for, none lost or charged twice while payment is down, and the
results written as terminal table, Markdown, JSON and charts.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shopctl.load import percentile

pytestmark = pytest.mark.e2e

QUICK_BOUND_S = 100  # the quick comparison takes about 40 s on 2 cores
MODES = {"sync", "events"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "shopctl", "compare", "--quick", "--results", str(root)],
                          capture_output=True, text=True, timeout=QUICK_BOUND_S, check=False)
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    latest = root / "latest"
    return {"root": root, "latest": latest, "stdout": done.stdout,
            "results": json.loads((latest / "results.json").read_text())}


def all_books(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    books = [("latency", mode, found) for mode, found in results["latency"]["accounting"].items()]
    for scenario in ("outcome", "payment_slow"):
        books += [(scenario, row["mode"], row["accounting"]) for row in results[scenario]["rows"]]
    return books + [("payment_down", mode, results["payment_down"][mode]["accounting"]) for mode in MODES]


def test_both_modes_are_measured_in_every_scenario(quick: dict[str, Any]) -> None:
    results = quick["results"]
    levels = set(results["meta"]["sizes"]["levels"])
    assert {(r["mode"], r["in_flight"]) for r in results["latency"]["rows"]} == {(m, n) for m in MODES for n in levels}
    assert {r["mode"] for r in results["outcome"]["rows"]} == MODES
    assert {r["mode"] for r in results["payment_slow"]["rows"]} == MODES
    assert set(results["latency"]["cpu_ms_per_order"]) == MODES
    assert MODES <= set(results["payment_down"])


def test_every_order_placed_is_answered_and_every_accepted_order_ends_terminal(quick: dict[str, Any]) -> None:
    for scenario, mode, books in all_books(quick["results"]):
        assert books["placed"] > 0, (scenario, mode)
        assert books["placed"] == books["accepted"] + sum(books["failed"].values()), (scenario, mode, books)
        assert books["accepted"] == books["terminal"] + books["lost"], (scenario, mode, books)
        assert books["lost"] == books["wrong_outcome"] == books["not_charged"] == 0, (scenario, mode, books)
        assert books["charged_twice"] == 0, (scenario, mode, books)


def test_while_payment_is_down_events_accept_everything_and_nothing_is_lost_or_charged_twice(
        quick: dict[str, Any]) -> None:
    down = quick["results"]["payment_down"]
    assert down["events"]["failed"] == {}
    assert down["events"]["accepted"] == down["events"]["placed"] > 0
    assert down["events"]["backlog_peak"] > 0  # the outage was felt: work waited in the stream
    assert down["events"]["drain_s"] is not None
    for mode in MODES:
        assert down[mode]["accounting"]["lost"] == 0
        assert down[mode]["accounting"]["charged_twice"] == 0
    assert down["sync"]["retried"]["recovered"] == down["sync"]["retried"]["requests"]


def test_the_gateway_records_the_mode_each_request_asked_for(quick: dict[str, Any]) -> None:
    check = quick["results"]["mode_check"]
    assert check["ok"]
    assert check["events"] == {"answered": "FLOW_MODE_EVENTS", "stored": "FLOW_MODE_EVENTS"}
    assert check["sync"] == {"answered": "FLOW_MODE_SYNC", "stored": "FLOW_MODE_SYNC"}


def test_every_invariant_holds(quick: dict[str, Any]) -> None:
    assert quick["results"]["invariants"] and all(quick["results"]["invariants"].values())
    assert "Invariants: all hold" in quick["stdout"]


def test_results_are_written_as_markdown_json_and_charts_with_the_machine_and_settings(
        quick: dict[str, Any]) -> None:
    results, latest = quick["results"], quick["latest"]
    assert {"nproc", "cpu_model", "python", "grpcio", "redis", "redis_server"} <= set(results["meta"]["machine"])
    assert results["meta"]["sizes"]["name"] == "quick"
    for chart in results["charts"]:
        assert (latest / chart).read_bytes().startswith(PNG_MAGIC)
    markdown = (latest / "report.md").read_text()
    for section in ("PlaceOrder latency", "Time to outcome", "Payment slow", "Payment down", "CPU time per order",
                    "Accounting"):
        assert section in markdown and section in quick["stdout"]
    stamped = [p for p in Path(quick["root"]).iterdir() if p.name.startswith("compare-")]
    assert len(stamped) == 1 and (stamped[0] / "results.json").exists()
    with open(stamped[0] / "records.csv", newline="") as raw:
        rows = list(csv.DictReader(raw))
    assert {row["mode"] for row in rows} == MODES and all(row["code"] for row in rows)
    assert not (latest / "logs").exists() and not (latest / "records.csv").exists()  # they stay with the run


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
