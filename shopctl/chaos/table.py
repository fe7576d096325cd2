"""The chaos table: one row per run, the counts the issue asks for, then what proved and what failed."""

from __future__ import annotations

from shopctl.chaos.harness import Outcome

COLUMNS = ("orders", "completed", "lost", "duplicated", "stuck", "reclaimed", "dead_lettered", "faults")
HEADERS = ("orders", "completed", "lost", "dup", "stuck", "reclaimed", "dead-let", "faults")
DETAIL_CHARS = 300


def result(outcome: Outcome) -> str:
    if not outcome.control:
        return outcome.verdict
    if outcome.caught:
        return f"FAIL: {outcome.expect} (caught)"
    return "NOT CAUGHT" if outcome.proof else "NOT CAUGHT (its fault did not fire)"


def render(outcomes: list[Outcome]) -> str:
    head = f"{'scenario':<34}{'run':<9}" + "".join(f"{h:>10}" for h in HEADERS) + f"{'secs':>6}  result"
    lines = [head, "-" * len(head)]
    previous = ""
    for o in outcomes:
        name = o.title if o.scenario != previous else ""
        label = f"{o.scenario.split('.')[0]}. {name}" if name else ""
        previous = o.scenario
        counts = "".join(f"{getattr(o.counts, c):>10}" for c in COLUMNS)
        lines.append(f"{label:<34}{'control' if o.control else 'test':<9}{counts}{o.seconds:>6.0f}  {result(o)}")
    return "\n".join(lines)


def details(outcomes: list[Outcome]) -> str:
    """Per run: the proof that its fault fired, the control's disabled protection, and any failure."""
    out = []
    for o in outcomes:
        run = f"{o.scenario} {'control: ' + o.control if o.control else 'test'}"
        out.append(f"{run}\n  fault fired: {'; '.join(o.proof) or 'NO (inconclusive)'}")
        if summary := o.notes.get("summary"):
            out.append(f"  measured: {summary}")
        shown = [f for f in o.failures if not o.control or f.kind == o.expect] or o.failures
        for failure in shown[:4]:
            out.append(f"  {'caught' if o.control else 'FAILED'} [{failure.kind}] {failure.detail[:DETAIL_CHARS]}")
    return "\n".join(out)
