"""A waterfall as a PNG (matplotlib, Agg backend: no display needed): one bar a span, coloured by
service, the time its entry waited in a stream drawn hatched before a consumer span."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from shopctl.waterfall import INDENT, Row

COLOURS = {"gateway": "#1f77b4", "order": "#ff7f0e", "payment": "#2ca02c", "notification": "#9467bd"}
OTHER = "#7f7f7f"
DPI = 110
ROW_INCHES = 0.28  # height of one span's row
MIN_HEIGHT_INCHES = 2.5


def write(table: Sequence[Row], title: str, path: Path) -> None:
    """Draw `table` (shopctl.waterfall.rows) to `path`, first span at the top."""
    fig, ax = plt.subplots(figsize=(12, max(MIN_HEIGHT_INCHES, ROW_INCHES * len(table) + 1.2)))
    for y, row in enumerate(table):
        colour = COLOURS.get(row.service, OTHER)
        if row.wait_ms:
            ax.barh(y, row.wait_ms, left=row.start_ms - row.wait_ms, color="white", edgecolor=colour, hatch="//")
        ax.barh(y, max(row.duration_ms, 0.01), left=row.start_ms, color=colour)
    ax.set_yticks(range(len(table)), [f"{r.service}: {INDENT * r.depth}{r.name}" for r in table], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ms from the first span (hatched: waiting in a stream)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
