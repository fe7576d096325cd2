"""`python -m shopctl compare --quick`, end to end: the report is complete and its books balance.

The tool's own verdict (its invariants, its exit status) is not what is checked here: the tests
check facts of their own, against the raw records (records.csv: every request, its answer and
when its outcome was seen) where they can. Speed figures are not asserted (they depend on the
machine); what is: both modes measured in every scenario, every summary counting exactly the
requests recorded for it, latencies that match those records, every order accounted for, the
payment outage felt and recovered from in both modes, and the results written as Markdown,
JSON, charts and records.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from collections import Counter
from typing import Any

import pytest

from shopctl.load import percentile

pytestmark = pytest.mark.e2e

QUICK_BOUND_S = 100  # the quick comparison takes about 40 s on 2 cores
MODES = {"sync", "events"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CHARTS = {"latency.png", "outcome.png", "payment_down.png", "time_breakdown.png"}
QUANTILES = ("p50", "p95", "p99", "p100")
# records.csv keeps times to 0.1 ms and results.json rounds to 0.01 ms: a latency recomputed from
# the records may differ from the reported one by this much, never more.
RECORD_RESOLUTION_MS = 0.2

Record = dict[str, str]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("results")
    done = subprocess.run([sys.executable, "-m", "shopctl", "compare", "--quick", "--results", str(root),
                           "--save", str(root / "latest")],
                          capture_output=True, text=True, timeout=QUICK_BOUND_S, check=False)
    latest = root / "latest"
    stamped = [p for p in root.iterdir() if p.name.startswith("compare-")]
    assert (latest / "results.json").exists() and len(stamped) == 1, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    with open(stamped[0] / "records.csv", newline="") as raw:
        records = list(csv.DictReader(raw))
    return {"latest": latest, "stamped": stamped[0], "records": records, "returncode": done.returncode,
            "stdout": done.stdout, "stderr": done.stderr, "results": json.loads((latest / "results.json").read_text())}


def recorded(quick: dict[str, Any], step: str) -> list[Record]:
    """The requests of the steps whose label starts with `step` (labels as in records.csv)."""
    found = [r for r in quick["records"] if r["step"].startswith(step)]
    assert found, f"no request recorded for {step!r}"
    return found


def latencies_ms(records: list[Record]) -> list[float]:
    return [(float(r["end_s"]) - float(r["start_s"])) * 1000 for r in records if r["code"] == "OK"]


def all_books(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    books = [("latency", mode, found) for mode, found in results["latency"]["accounting"].items()]
    for scenario in ("outcome", "payment_slow"):
        books += [(scenario, row["mode"], row["accounting"]) for row in results[scenario]["rows"]]
    return books + [("payment_down", mode, results["payment_down"][mode]["accounting"]) for mode in MODES]


def summaries(results: dict[str, Any]) -> list[tuple[str, dict[str, float | None]]]:
    """Every latency summary in the results, named."""
    found = [(f"latency {r['mode']} {r['in_flight']}", r["latency_ms"]) for r in results["latency"]["rows"]]
    for scenario in ("outcome", "payment_slow"):
        found += [(f"{scenario} {r['mode']} {name}", r[name]) for r in results[scenario]["rows"]
                  for name in ("latency_ms", "to_terminal_ms", "to_receipt_ms")]
    return found + [(f"payment_down {mode} {name}", results["payment_down"][mode][name]) for mode in MODES
                    for name in ("accept_ms", "to_terminal_ms")]


def test_both_modes_are_measured_in_every_scenario(quick: dict[str, Any]) -> None:
    results = quick["results"]
    levels = set(results["meta"]["sizes"]["levels"])
    assert {(r["mode"], r["in_flight"]) for r in results["latency"]["rows"]} == {(m, n) for m in MODES for n in levels}
    assert {r["mode"] for r in results["outcome"]["rows"]} == MODES
    assert {r["mode"] for r in results["payment_slow"]["rows"]} == MODES
    assert set(results["latency"]["cpu_ms_per_order"]) == MODES
    assert MODES <= set(results["payment_down"])
    assert {r["mode"] for r in quick["records"]} == MODES


def test_each_summary_counts_exactly_the_requests_recorded_for_it(quick: dict[str, Any]) -> None:
    results = quick["results"]
    rows = [(f"latency {r['mode']} {r['in_flight']} in flight,", r) for r in results["latency"]["rows"]]
    rows += [(f"outcome {r['mode']} round", r) for r in results["outcome"]["rows"]]
    delay = results["payment_slow"]["delay_ms"]
    rows += [(f"payment slow {delay} ms {r['mode']} round", r) for r in results["payment_slow"]["rows"]]
    for step, row in rows:
        found = recorded(quick, step)
        assert {r["mode"] for r in found} == {row["mode"]}, step
        assert row["requests"] == len(found), step
        assert row["ok"] == sum(r["code"] == "OK" for r in found), step
        assert row["errors"] == dict(Counter(r["code"] for r in found if r["code"] != "OK")), step
    for mode in MODES:
        assert results["latency"]["accounting"][mode]["placed"] == len(recorded(quick, f"latency {mode} "))
        down = recorded(quick, f"payment down {mode} (")
        assert results["payment_down"][mode]["placed"] == len(down)
        assert results["payment_down"][mode]["accounting"]["placed"] == len(down)


def test_latencies_are_positive_ordered_and_those_of_the_records(quick: dict[str, Any]) -> None:
    for name, summary in summaries(quick["results"]):
        values = [summary[q] for q in QUANTILES]
        assert all(v is not None and v > 0 for v in values), (name, summary)
        assert values == sorted(values), (name, summary)  # p50 <= p95 <= p99 <= max
    for row in quick["results"]["latency"]["rows"]:
        measured = latencies_ms(recorded(quick, f"latency {row['mode']} {row['in_flight']} in flight,"))
        for q in QUANTILES:
            expected = percentile(measured, float(q[1:]))
            assert expected is not None and abs(row["latency_ms"][q] - expected) <= RECORD_RESOLUTION_MS, (row, q)


def test_every_order_placed_is_answered_and_every_accepted_order_ends_terminal(quick: dict[str, Any]) -> None:
    for scenario, mode, books in all_books(quick["results"]):
        assert books["placed"] > 0, (scenario, mode)
        assert books["placed"] == books["accepted"] + sum(books["failed"].values()), (scenario, mode, books)
        assert books["accepted"] == books["terminal"] + books["lost"], (scenario, mode, books)
        assert books["lost"] == books["wrong_outcome"] == books["not_charged"] == 0, (scenario, mode, books)
        assert books["charged_twice"] == books["notified_wrong"] == 0, (scenario, mode, books)
    assert quick["results"]["dead_letters"] == 0


def test_every_followed_order_was_seen_terminal_after_its_answer_and_each_key_made_one_order(
        quick: dict[str, Any]) -> None:
    """From the records alone: in the scenarios that follow each order (time to outcome, payment
    slow, payment down), every accepted order was seen terminal, never before it was answered;
    and one idempotency key always got the same order, two keys never the same one."""
    followed = [r for step in ("outcome ", "payment slow ", "payment down ") for r in recorded(quick, step)]
    for record in (r for r in followed if r["code"] == "OK"):
        assert record["order_id"] and record["terminal_seen_s"], record
        assert float(record["terminal_seen_s"]) >= float(record["end_s"]), record
    orders = {(r["idempotency_key"], r["order_id"]) for r in quick["records"] if r["code"] == "OK"}
    assert len({key for key, _ in orders}) == len(orders) == len({order for _, order in orders})


def test_while_payment_is_down_sync_answers_unavailable_and_every_failed_request_completes_on_retry(
        quick: dict[str, Any]) -> None:
    down = quick["results"]["payment_down"]["sync"]
    during = recorded(quick, "payment down sync (")
    failed = [r for r in during if r["code"] != "OK"]
    assert failed, "no sync request failed: the outage was not felt"
    assert {r["code"] for r in failed} == {"UNAVAILABLE"}
    assert down["failed"] == {"UNAVAILABLE": len(failed)}
    retries = recorded(quick, "payment down sync retries")
    assert sorted(r["idempotency_key"] for r in retries) == sorted(r["idempotency_key"] for r in failed)
    assert all(r["code"] == "OK" and r["order_id"] for r in retries), [r for r in retries if r["code"] != "OK"]
    assert down["retried"]["requests"] == down["retried"]["recovered"] == len(failed)
    assert down["accounting"]["accepted"] == len(during)  # each failed request counted by its retry's answer


def test_while_payment_is_down_events_accept_everything_and_complete_it_once_payment_is_back(
        quick: dict[str, Any]) -> None:
    results = quick["results"]
    down = results["payment_down"]["events"]
    during = recorded(quick, "payment down events (")
    assert [r for r in during if r["code"] != "OK"] == []
    assert down["failed"] == {} and down["accepted"] == len(during)
    assert down["backlog_peak"] > 0  # the outage was felt: work waited in the stream
    assert down["drain_s"] is not None and down["drain_s"] >= 0
    # An order accepted just after payment stopped waits until payment is started again.
    marks, slot_s = down["marks"], 1 / results["payment_down"]["rate"]
    longest_s = max(float(r["terminal_seen_s"]) - float(r["start_s"]) for r in during)
    assert longest_s >= marks["start"] - marks["stopped"] - 2 * slot_s, (longest_s, marks)


def test_the_gateway_records_the_mode_each_request_asked_for(quick: dict[str, Any]) -> None:
    check = quick["results"]["mode_check"]
    assert check["events"] == {"answered": "FLOW_MODE_EVENTS", "stored": "FLOW_MODE_EVENTS"}
    assert check["sync"] == {"answered": "FLOW_MODE_SYNC", "stored": "FLOW_MODE_SYNC"}
    default = f"FLOW_MODE_{check['default'].upper()}"
    assert check["unspecified"] == {"answered": default, "stored": default}


def test_results_are_written_as_markdown_json_charts_and_records_with_the_machine_and_settings(
        quick: dict[str, Any]) -> None:
    results, latest, stamped = quick["results"], quick["latest"], quick["stamped"]
    assert {"nproc", "cpu_model", "python", "grpcio", "redis", "redis_server"} <= set(results["meta"]["machine"])
    assert results["meta"]["sizes"]["name"] == "quick"
    assert set(results["charts"]) == CHARTS
    for chart in CHARTS:
        assert (latest / chart).read_bytes().startswith(PNG_MAGIC)
    markdown = (latest / "report.md").read_text()
    for section in ("PlaceOrder latency", "Time to outcome", "Payment slow", "Payment down", "CPU time per order",
                    "Where one order's time goes", "Accounting"):
        assert section in markdown and section in quick["stdout"]
    assert json.loads((stamped / "results.json").read_text()) == results
    assert all(r["code"] and r["idempotency_key"] for r in quick["records"])
    assert not (latest / "logs").exists() and not (latest / "records.csv").exists()  # they stay with the run
    assert (stamped / "logs").is_dir()


def test_the_time_of_one_order_is_split_into_the_hops_and_stream_waits_of_its_mode(quick: dict[str, Any]) -> None:
    """From real traces: sync is four gRPC hops and no stream; events is one hop (gateway to
    order), then a wait in each stream per consuming group, and it answers before its outcome."""
    parts = quick["results"]["breakdown"]["ms"]
    hops = {mode: {name for name in parts[mode] if name.startswith("hop ")} for mode in MODES}
    assert hops["sync"] == {"hop gateway -> order", "hop order -> payment", "hop order -> notification",
                            "hop payment -> notification"}
    assert hops["events"] == {"hop gateway -> order"}
    assert not any(name.startswith("wait ") for name in parts["sync"])
    assert {name for name in parts["events"] if name.startswith("wait ")} == {
        "wait in order-events (payment)", "wait in order-events (notification)",
        "wait in payment-events (order)", "wait in payment-events (notification)"}
    assert all(parts[mode][f"commit ({service})"] > 0 for mode in MODES for service in ("order", "payment"))
    events_total = parts["events"]["total: PlaceOrder at the gateway"]
    assert parts["events"]["total: to the order's outcome (order settled)"] > events_total > 0


def test_the_exit_status_follows_the_invariants_the_report_states(quick: dict[str, Any]) -> None:
    """The tests above check the facts themselves; this one, that `make compare` fails exactly
    when the report says an invariant failed."""
    assert (quick["returncode"] == 0) == all(quick["results"]["invariants"].values()), quick["stderr"][-4000:]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (50, 95, 99, 100)] == [50.0, 95.0, 99.0, 100.0]
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
