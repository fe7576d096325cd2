"""`make trace`'s waterfall, rendered from spans recorded by a real `TRACE=1` events demo: the
first order (16 spans) and its repeat with the same idempotency key (another trace)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shopctl import trace_cmd, waterfall
from shoplib.observability import span_file

RECORDED = Path(__file__).with_name("recorded")
ORDER = "ord_p1_7de80a33aab3491aa959d86d"
FIRST_TRACE = "f0b8b58669d3b4d98bce55239fdb623d"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    shutil.copy(RECORDED / "demo_events_trace.jsonl", tmp_path / "demo-1.jsonl")
    (tmp_path / "torn-1.jsonl").write_bytes(b'{"trace_id": "cut sho')  # a process killed mid-line
    return tmp_path


def test_an_order_is_found_in_the_trace_that_first_mentions_it(folder: Path) -> None:
    spans = span_file.read(folder)
    assert waterfall.trace_of_order(spans, ORDER) == FIRST_TRACE  # not the later repeat's trace
    assert waterfall.trace_of_order(spans, "ord_p1_unknown") is None


def test_rows_nest_each_span_under_its_parent_in_start_order(folder: Path) -> None:
    rows = waterfall.rows([s for s in span_file.read(folder) if s["trace_id"] == FIRST_TRACE])
    assert len(rows) == 16
    assert (rows[0].service, rows[0].name, rows[0].depth, rows[0].start_ms) == (
        "gateway", "shop.v1.GatewayService/PlaceOrder", 0, 0.0)
    assert [(r.service, r.depth) for r in rows[1:4]] == [("gateway", 1), ("order", 2), ("order", 3)]
    consumers = [r for r in rows if r.kind == "CONSUMER"]
    assert len(consumers) == 4 and all(r.wait_ms is not None and r.wait_ms > 0 for r in consumers)
    assert all(r.wait_ms is None for r in rows if r.kind != "CONSUMER")


def test_a_grpc_span_shows_without_the_instrumentations_leading_slash() -> None:
    span = {"trace_id": "t", "span_id": "s", "parent_id": "", "name": "/shop.v1.GatewayService/PlaceOrder",
            "kind": "SERVER", "service": "gateway", "start_ns": 0, "end_ns": 2_000_000, "status": "UNSET",
            "attributes": {}, "events": [], "links": []}
    [row] = waterfall.rows([span])
    assert (row.name, row.duration_ms) == ("shop.v1.GatewayService/PlaceOrder", 2.0)
    assert waterfall.label("commit") == "commit"


def test_the_text_shows_service_span_offsets_and_stream_waits(folder: Path, tmp_path: Path) -> None:
    text = trace_cmd.show(ORDER, folder, tmp_path / "w.png")
    lines = text.splitlines()
    assert lines[0] == f"order {ORDER}  trace {FIRST_TRACE}  (16 spans)"
    assert lines[1].split()[:6] == ["service", "span", "kind", "start", "ms", "dur"]
    payment = next(line for line in lines if "payment" in line and "process order-events" in line)
    columns = payment.split()
    assert columns[4:7] == ["2.57", "2.57", "1.35"]  # start ms, duration ms, waited in the stream ms
    assert columns[7].startswith(".") and "#" in columns[7]  # the wait, then the span, on the timeline
    assert (tmp_path / "w.png").read_bytes().startswith(PNG_MAGIC)


def test_an_order_without_spans_is_said_plainly(folder: Path) -> None:
    with pytest.raises(LookupError, match="no span about order ord_p1_nope"):
        trace_cmd.show("ord_p1_nope", folder)
