"""The results as tables (title, columns, rows, note): rendered for the terminal and as Markdown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Cell = object
MODES = ("sync", "events")
ACCOUNTING = ("placed", "accepted", "failed", "terminal", "lost", "wrong_outcome", "charged_twice", "not_charged",
              "notified_wrong")


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    note: str = ""


def fmt(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "none"
    return str(value)


def _ms(summary: dict[str, float | None], *qs: str) -> list[Cell]:
    return [summary.get(q) for q in qs]


def mode_check(found: dict[str, Any]) -> Table:
    table = Table("Mode per request (PlaceOrder.mode)", ["requested", "answered", "stored (GetOrder)"],
                  note=f"gateway default: {found['default']}; as expected: {'yes' if found['ok'] else 'NO'}")
    for name in ("unspecified", *MODES):
        seen = found[name]
        table.rows.append([name, seen["answered"], seen["stored"]])
    return table


def latency(found: dict[str, Any], sizes: dict[str, Any]) -> Table:
    table = Table(f"PlaceOrder latency, closed loop ({sizes['rounds']} x {sizes['round_s']} s per row)",
                  ["in flight", "mode", "orders", "accepted/s", "settled/s", "p50 ms", "p95 ms", "p99 ms", "errors"],
                  note="settled/s counts until the streams drained (events mode finishes its work after answering)")
    for row in sorted(found["rows"], key=lambda r: (r["in_flight"], MODES.index(r["mode"]))):
        table.rows.append([row["in_flight"], row["mode"], row["ok"], row["throughput_per_s"], row["settled_per_s"],
                           *_ms(row["latency_ms"], "p50", "p95", "p99"), row["errors"]])
    return table


def outcome(found: dict[str, Any], title: str) -> Table:
    table = Table(f"{title}, open loop {found['rate']:g} orders/s, each order followed with WatchOrder",
                  ["mode", "orders", "accept p50", "accept p99", "terminal p50", "terminal p99", "receipt p50",
                   "receipt p99", "errors"],
                  note="ms from each order's slot in the schedule. terminal: sync = the answer; events = the first "
                       "WatchOrder message showing it terminal (watch opened on the answer). receipt: the payment "
                       "outcome notification's own timestamp")
    for row in found["rows"]:
        table.rows.append([row["mode"], row["ok"], *_ms(row["latency_ms"], "p50", "p99"),
                           *_ms(row["to_terminal_ms"], "p50", "p99"), *_ms(row["to_receipt_ms"], "p50", "p99"),
                           row["errors"]])
    return table


DOWN_ROWS: list[tuple[str, Callable[[dict[str, Any]], Cell]]] = [
    ("orders placed", lambda m: m["placed"]),
    ("accepted", lambda m: m["accepted"]),
    ("failed, by code", lambda m: m["failed"]),
    ("failed callers waited p50 / max ms", lambda m: f"{fmt(m['failed_wait_ms']['p50'])} / "
                                                     f"{fmt(m['failed_wait_ms']['p100'])}"),
    ("accepted: answer p99 ms", lambda m: m["accept_ms"]["p99"]),
    ("accepted: time to terminal p99 ms", lambda m: m["to_terminal_ms"]["p99"]),
    ("backlog peak (payment group lag+pending)", lambda m: m["backlog_peak"]),
    ("payment restarted: SERVING after, s", lambda m: m["start_up_s"]),
    ("payment restarted: backlog cleared after, s", lambda m: m["drain_s"]),
    ("payment restarted: last failure after, s", lambda m: m["last_failure_s"]),
    ("failed ones, already charged by the service itself", lambda m: m["retried"].get("charged_before_retry")),
    ("failed ones retried with their key: recovered", lambda m: f"{m['retried']['recovered']} of "
                                                                f"{m['retried']['requests']}"),
    ("orders lost", lambda m: m["accounting"]["lost"]),
    ("orders charged twice", lambda m: m["accounting"]["charged_twice"]),
]


def payment_down(found: dict[str, Any]) -> Table:
    table = Table(f"Payment down: stopped at {found['down_at_s']:g} s for {found['down_for_s']:g} s of a "
                  f"{found['run_s']:g} s run at {found['rate']:g} orders/s", ["", *MODES],
                  note="seconds from starting the payment process again; backlog cleared = no lag, nothing pending")
    table.rows = [[label, *(pick(found[mode]) for mode in MODES)] for label, pick in DOWN_ROWS]
    return table


def cpu(found: dict[str, dict[str, float]]) -> Table:
    names = [n for n in ("gateway", "order", "payment", "notification", "redis", "client", "total")
             if n in found["sync"]]
    other = "; ".join(f"{mode} {found[mode]['other_processes_cpu_s']:g} CPU-s in {found[mode]['wall_s']:g} s"
                      for mode in MODES)
    table = Table("CPU time per order, ms (latency scenario, until the streams drained)", ["mode", *names],
                  note="utime+stime from /proc/<pid>/stat; total = services + Redis; client = the load generator. "
                       f"Other processes on the machine meanwhile (noise): {other}")
    table.rows = [[mode, *(found[mode].get(n) for n in names)] for mode in MODES]
    return table


def books(results: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(scenario, mode, its Accounting as a dict) for every scenario and mode."""
    sources = [("latency", results["latency"]["accounting"]),
               *((name, {row["mode"]: row["accounting"] for row in results[name]["rows"]})
                 for name in ("outcome", "payment_slow")),
               ("payment_down", {mode: results["payment_down"][mode]["accounting"] for mode in MODES})]
    return [(name, mode, by_mode[mode]) for name, by_mode in sources for mode in MODES]


def accounting(results: dict[str, Any]) -> Table:
    table = Table("Accounting: every order", ["scenario", "mode", *ACCOUNTING],
                  note=f"dead letters at the end: {results['dead_letters']}; payment_down sync counts each failed "
                       "request by the answer to its retry with the same idempotency key")
    table.rows = [[name, mode, *(counts[column] for column in ACCOUNTING)] for name, mode, counts in books(results)]
    return table


def breakdown_parts(found: dict[str, Any]) -> list[str]:
    """Every part either mode has, hops first, then stream waits, commits and the totals."""
    names = {name for parts in found["ms"].values() for name in parts}
    rank = ("hop", "wait", "commit", "total")
    return sorted(names, key=lambda n: (next((i for i, r in enumerate(rank) if n.startswith(r)), len(rank)), n))


def breakdown(found: dict[str, Any]) -> Table:
    rows: list[list[Cell]] = [[name, *(found["ms"][mode].get(name) for mode in MODES)]
                              for name in breakdown_parts(found)]
    return Table("Where one order's time goes (from its trace)", ["part", "sync ms", "events ms"], rows,
                 f"median of {found['orders']} traced orders per mode, one at a time, on a traced stack of their "
                 "own; a hop is the caller's client span less the callee's server span")


def all_tables(results: dict[str, Any]) -> list[Table]:
    sizes = results["meta"]["sizes"]
    return [mode_check(results["mode_check"]), latency(results["latency"], sizes),
            outcome(results["outcome"], "Time to outcome"),
            outcome(results["payment_slow"], f"Payment slow (PAYMENT_DELAY_MS={sizes['delay_ms']})"),
            payment_down(results["payment_down"]), cpu(results["latency"]["cpu_ms_per_order"]),
            *([breakdown(results["breakdown"])] if "breakdown" in results else []), accounting(results)]


def _numeric(table: Table) -> list[bool]:
    """Columns whose every cell is a number (or missing): right-aligned."""
    return [all(isinstance(row[i], int | float) or row[i] is None for row in table.rows)
            for i in range(len(table.columns))]


def text(table: Table) -> str:
    cells = [[fmt(c) for c in row] for row in table.rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(table.columns)]
    right = _numeric(table)
    out = [table.title, "  ".join(h.ljust(w) for h, w in zip(table.columns, widths, strict=True)),
           "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.rjust(w) if right[i] else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
            for r in cells]
    out = [line.rstrip() for line in out]
    return "\n".join(out + ([f"({table.note})"] if table.note else []))


def markdown(table: Table) -> str:
    out = [f"### {table.title}", "", "| " + " | ".join(table.columns) + " |",
           "|" + "|".join("---:" if right else "---" for right in _numeric(table)) + "|"]
    out += ["| " + " | ".join(fmt(c) for c in row) + " |" for row in table.rows]
    return "\n".join(out + (["", f"_{table.note}_"] if table.note else []))
