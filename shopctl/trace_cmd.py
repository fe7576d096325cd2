"""python -m shopctl trace --order ORDER_ID: that order's waterfall from the spans kept under
TRACE_DIR (default results/traces, where `TRACE=1 make up` and the demos keep them), printed,
and written as a PNG beside them; then each trace joined to it by a span link (a reclaim, a
retried call), printed after it. Work resumed for the order later is in its own trace."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from shopctl import waterfall
from shoplib.observability import span_file

DEFAULT_DIR = "results/traces"


def trace_dir() -> Path:
    return Path(os.environ.get("TRACE_DIR") or DEFAULT_DIR)


def show(order_id: str, folder: Path, png: Path | None = None) -> str:
    """The waterfall's text for `order_id` (raises LookupError when no recorded span is about it);
    the PNG goes to `png`, else to `folder/<order_id>.png`."""
    spans = span_file.read(folder)
    trace_id = waterfall.trace_of_order(spans, order_id)
    if trace_id is None:
        raise LookupError(f"no span about order {order_id} under {folder}/ (was the stack run with TRACE=1?)")
    mine = [s for s in spans if s["trace_id"] == trace_id]
    title = f"order {order_id}  trace {trace_id}  ({len(mine)} spans)"
    from shopctl import waterfall_chart

    waterfall_chart.write(waterfall.rows(mine), title, png or folder / f"{order_id}.png")
    text = [waterfall.render(mine, title)]
    for other in waterfall.linked_traces(spans, trace_id):  # its reclaims, retried calls: joined by a link
        theirs = [s for s in spans if s["trace_id"] == other]
        text.append(waterfall.render(theirs, f"linked trace {other}  ({len(theirs)} spans)"))
    return "\n\n".join(text)


def cli(order_id: str, png: str | None) -> None:
    folder = trace_dir()
    try:
        text = show(order_id, folder, Path(png) if png else None)
    except LookupError as error:
        print(f"shopctl trace: {error}", file=sys.stderr)
        sys.exit(1)
    print(text)
    print(f"\nPNG: {png or folder / f'{order_id}.png'}")
