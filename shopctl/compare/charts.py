"""The comparison's charts, as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from shopctl.compare.tables import breakdown_parts

COLOURS = {"sync": "#1f77b4", "events": "#ff7f0e"}
MODES = ("sync", "events")
PERCENTILES = ("p50", "p95", "p99")
DPI = 110
LATENCY, OUTCOME, DOWN = "latency.png", "outcome.png", "payment_down.png"
BREAKDOWN = "time_breakdown.png"


def _bars(ax: Any, groups: list[str], values: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / len(values)
    for i, (label, heights) in enumerate(values.items()):
        xs = [g + (i - (len(values) - 1) / 2) * width for g in range(len(groups))]
        ax.bar(xs, [h or 0 for h in heights], width, label=label, color=COLOURS.get(label.split()[0]),
               alpha=1.0 if "slow" not in label else 0.5)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)


def latency(results: dict[str, Any], path: Path) -> None:
    """One panel per percentile: PlaceOrder latency by requests in flight, sync next to events."""
    rows = {(r["mode"], r["in_flight"]): r for r in results["latency"]["rows"]}
    levels = sorted({level for _, level in rows})
    fig, axes = plt.subplots(1, len(PERCENTILES), figsize=(12, 4), sharey=True)
    for ax, q in zip(axes, PERCENTILES, strict=True):
        _bars(ax, [f"{n} in flight" for n in levels],
              {mode: [rows[(mode, n)]["latency_ms"][q] for n in levels] for mode in MODES}, "ms" if q == "p50" else "")
        ax.set_title(f"PlaceOrder {q}")
        ax.set_yscale("log")
    axes[0].legend()
    fig.suptitle("Client-observed PlaceOrder latency (closed loop; lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def outcome(results: dict[str, Any], path: Path) -> None:
    """Acceptance vs time to outcome, with and without the injected payment delay."""
    columns = [("latency_ms", "accepted"), ("to_terminal_ms", "terminal"), ("to_receipt_ms", "receipt")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, q in zip(axes, ("p50", "p99"), strict=True):
        values = {}
        for name, label in (("outcome", ""), ("payment_slow", " slow")):
            by_mode = {row["mode"]: row for row in results[name]["rows"]}
            values.update({f"{mode}{label}": [by_mode[mode][key][q] for key, _ in columns] for mode in MODES})
        _bars(ax, [label for _, label in columns], values, "ms from PlaceOrder" if q == "p50" else "")
        ax.set_title(q)
    axes[0].legend(fontsize=8)
    delay = results["payment_slow"]["delay_ms"]
    fig.suptitle(f"Time to answer, to terminal status and to receipt; 'slow' = PAYMENT_DELAY_MS={delay}")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def _down_panel(ax: Any, mode: str, found: dict[str, Any], backlog_top: float) -> None:
    line = found["timeline"]
    xs = [i * line["bucket_s"] for i in range(len(line["accepted"]) + 1)]
    for key, style in (("accepted", "-"), ("completed", "--"), ("failed", ":")):
        ys = line[key] + line[key][-1:]  # the last bucket drawn to its end
        ax.step(xs, ys, style, where="post", label=f"{key}/s", linewidth=2 if key == "failed" else 1.5)
    marks = found["marks"]
    if marks.get("stop") is not None and marks.get("serving") is not None:
        ax.axvspan(marks["stop"], marks["serving"], color="grey", alpha=0.2, label="payment down")
    ax.set_ylabel("orders per second")
    ax.set_title(f"{mode} mode")
    ax.grid(alpha=0.3)
    backlog = ax.twinx()
    samples = line["backlog"]
    backlog.plot([s[0] for s in samples], [s[1] + s[2] for s in samples], color="red", alpha=0.6,
                 label="payment group backlog (lag+pending)")
    backlog.set_ylim(0, backlog_top)
    backlog.set_ylabel("backlog, orders")
    handles = ax.get_legend_handles_labels()[0] + backlog.get_legend_handles_labels()[0]
    ax.legend(handles=handles, loc="upper left", fontsize=8)


def payment_down(results: dict[str, Any], path: Path) -> None:
    down = results["payment_down"]
    top = max(1, *(down[mode]["backlog_peak"] for mode in MODES)) * 1.15  # one scale for both panels
    fig, axes = plt.subplots(2, 1, figsize=(11, 7), sharex=True, sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        _down_panel(ax, mode, down[mode], top)
    axes[-1].set_xlabel("seconds since the run started")
    fig.suptitle(f"Payment service down for {down['down_for_s']:g} s, open loop {down['rate']:g} orders/s "
                 "(grey: from stop to SERVING again)")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def breakdown(results: dict[str, Any], path: Path) -> None:
    """Median ms of each part of one order (hops, stream waits, commits, totals), sync next to events."""
    found = results["breakdown"]
    parts = breakdown_parts(found)
    fig, ax = plt.subplots(figsize=(10, 0.35 * len(parts) + 1.5))
    for i, mode in enumerate(MODES):
        ax.barh([y + (i - 0.5) * 0.4 for y in range(len(parts))], [found["ms"][mode].get(p, 0) for p in parts],
                0.4, label=mode, color=COLOURS[mode])
    ax.set_yticks(range(len(parts)), parts, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"ms (median of {found['orders']} traced orders per mode)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend()
    fig.suptitle("Where one order's time goes, from its trace")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def draw(results: dict[str, Any], folder: Path) -> list[str]:
    """Every chart into `folder`; returns their file names."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = [(LATENCY, latency), (OUTCOME, outcome), (DOWN, payment_down)]
    drawn += [(BREAKDOWN, breakdown)] if "breakdown" in results else []
    for name, chart in drawn:
        chart(results, folder / name)
    return [name for name, _ in drawn]
