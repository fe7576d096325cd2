"""The profile's outputs: per mode, a markdown table of each service's CPU per order split by
bucket, and per service a text summary naming the hottest frames."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from bench.profile import buckets

BARE = "bare-"  # the bare twin's processes: their rows, files and sum are apart from ours
TOP_FRAMES = 25  # rows of each "hottest frames" list: enough to see past the event loop's own


def table(mode: str, cpu_ms: Mapping[str, float], split: Mapping[str, dict[str, float]], orders: int,
          header: str) -> str:
    """Markdown: one row per service, its CPU ms per order, then each bucket's ms (share)."""
    lines = [f"### {mode}: CPU ms per order by service, split by bucket "
             f"({orders} orders in an unsampled window; {header})", "",
             "| service | CPU ms/order | " + " | ".join(buckets.BUCKETS) + " |",
             "|---|---:|" + "---:|" * len(buckets.BUCKETS)]
    for name, ms in cpu_ms.items():
        cells = (f"{ms * split[name][b]:.3f} ({split[name][b]:.0%})" for b in buckets.BUCKETS)
        lines.append(f"| {name} | {ms:.3f} | " + " | ".join(cells) + " |")
    for label, names in (("our four", [n for n in cpu_ms if not n.startswith(BARE)]),
                         ("bare twin", [n for n in cpu_ms if n.startswith(BARE)])):
        lines.append(_sum_row(label, {n: cpu_ms[n] for n in names}, split))
    return "\n".join(lines) + "\n"


def _sum_row(label: str, cpu_ms: Mapping[str, float], split: Mapping[str, dict[str, float]]) -> str:
    total = sum(cpu_ms.values()) or float("nan")
    sums = (sum(cpu_ms[n] * split[n][b] for n in cpu_ms) for b in buckets.BUCKETS)
    return f"| **{label}** | **{total:.3f}** | " + " | ".join(f"{s:.3f} ({s / total:.0%})" for s in sums) + " |"


def summary(name: str, raw: list[str], samples: int, cpu_ms: float) -> str:
    """A service's text summary: its shares, then the frames samples are charged to, then our own
    functions inclusively (what calling them costs, callees included)."""
    split, _ = buckets.shares(raw)
    out = [f"{name}: {samples} samples, {cpu_ms:.3f} ms CPU per order", "", "shares:"]
    out += [f"  {share:6.1%}  {bucket}" for bucket, share in sorted(split.items(), key=lambda kv: -kv[1])]
    out += ["", "charged to (leaf-most claimed frame):"]
    out += [f"  {share:6.1%}  {frame}" for frame, share in buckets.hottest(raw, TOP_FRAMES)]
    out += ["", "our functions, inclusive:"]
    out += [f"  {share:6.1%}  {frame}" for frame, share in buckets.hottest(raw, TOP_FRAMES, ours_only=True)]
    return "\n".join(out) + "\n"


def write_summaries(folder: Path, raws: Mapping[str, list[str]], cpu_ms: Mapping[str, float]
                    ) -> dict[str, dict[str, float]]:
    """<service>.txt beside each flame graph; the shares by service."""
    split: dict[str, dict[str, float]] = {}
    for name, raw in raws.items():
        split[name], samples = buckets.shares(raw)
        (folder / f"{name}.txt").write_text(summary(name, raw, samples, cpu_ms[name]))
    return split
