"""A bench's headline figures beside those of the code before issue 13's changes.

Each full run writes its figures to `results/bench/<bench>.json`; the figures of the code before
(commit 89126f5, measured by the same bench on a quiet machine, load average below 1) are kept in
`results/bench/<bench>.before.json`. The table shows both, the change, and the issue's aim.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[2] / "results" / "bench"


@dataclass(frozen=True)
class Figure:
    """One headline figure: its key in the JSON, how it reads, and its aim (text and test)."""

    key: str
    label: str
    unit: str  # printed after the value: "ms", "x", "/s", "%"
    aim: str
    lower_is_better: bool = True
    limit: float | None = None  # the aim as a bound on the value (None: no numeric aim)
    of_before: float | None = None  # or the aim as a share of the value before (0.5: halve it)

    def met(self, value: float, before: float | None) -> str:
        limit = self.limit if self.limit is not None else (
            before * self.of_before if before is not None and self.of_before is not None else None)
        if limit is None:
            return ""
        ok = value <= limit if self.lower_is_better else value >= limit
        return "yes" if ok else "NO"

    def show(self, value: float | None) -> str:
        if value is None:
            return "-"
        if self.unit == "%":
            return f"{value:.0%}"
        if self.unit == "/s":
            return f"{value:,.0f}/s"
        return f"{value:,.{3 if value < 1 else 2}f}{self.unit}"


def save(bench: str, figures: dict[str, float]) -> Path:
    """Write this run's figures (with the commit and the load it ran under) to results/bench/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{bench}.json"
    path.write_text(json.dumps({"commit": _commit(), "load_average": round(os.getloadavg()[0], 2),
                                "figures": figures}, indent=2) + "\n")
    return path


def table(bench: str, figures: dict[str, float], rows: list[Figure]) -> str:
    """The figures beside the ones before (when kept), with the change and the aim."""
    before_file = RESULTS / f"{bench}.before.json"
    kept = json.loads(before_file.read_text()) if before_file.exists() else {}
    before = kept.get("figures", {})
    width = max(len(f.label) for f in rows)
    lines = [f"{'figure':<{width}} | {'before':>10} | {'now':>10} | {'change':>7} | aim", "-" * (width + 52)]
    for row in rows:
        old, new = before.get(row.key), figures.get(row.key)
        change = f"{new / old - 1:+.0%}" if old and new is not None else ""
        met = row.met(new, old) if new is not None else ""
        lines.append(f"{row.label:<{width}} | {row.show(old):>10} | {row.show(new):>10} | {change:>7} | "
                     f"{row.aim}{f' ({met})' if met else ''}")
    source = (f"before: {before_file.name}, commit {kept.get('commit')}, load average {kept.get('load_average')}"
              if before else f"no {before_file.name}: nothing to compare with")
    now = f"now: load average {os.getloadavg()[0]:.2f}; CPU per order grows with the machine's load, so compare " \
          "like with like (docs/measurements.md, Speed: runs interleaved with the old commit)"
    return "\n".join([*lines, f"({source}; {now})"])


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=RESULTS.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
