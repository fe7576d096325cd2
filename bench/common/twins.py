"""Three columns side by side: the bare twin (nothing stored), the durable bare twin (what we store,
done the cheapest way: bench.common.durable) and the real stack, with real/durable and real/bare,
each against its aim (issue 24 against the durable twin; the older absolute aims against bare)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Aim:
    """A bound on real/twin: a ratio at most `bound` (latency, CPU), or a share at least it (rates)."""

    bound: float
    share: bool = False  # a rate: real/twin as a share, at least `bound`

    def __str__(self) -> str:
        return f">= {self.bound:.0%}" if self.share else f"<= {self.bound}x"

    def met(self, ratio: float) -> bool:
        return ratio >= self.bound if self.share else ratio <= self.bound

    def verdict(self, ratio: float) -> str:
        return f"{self} ({'met' if self.met(ratio) else 'not met'})"


@dataclass(frozen=True)
class Row:
    metric: str
    bare: float
    durable: float
    real: float
    vs_durable: Aim | None = None
    vs_bare: Aim | None = None
    share: bool = False  # a rate: the ratios shown as shares

    def ratio(self, twin: float) -> str:
        value = self.real / twin if twin else float("nan")
        return f"{value:.0%}" if self.share else f"{value:.2f}x"

    def aim(self, aim: Aim | None, twin: float) -> str:
        return aim.verdict(self.real / twin) if aim and twin else ""


WIDTH = 30


def table(rows: list[Row], names: tuple[str, str, str] = ("bare", "durable", "real")) -> str:
    """The rows, one line each: the three values, both ratios, both aims."""
    head = (f"{'metric':<{WIDTH}} {names[0]:>9} {names[1]:>9} {names[2]:>9} {'real/dur':>9} {'real/bare':>9}"
            f"   {'aim vs durable':<20} aim vs bare")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r.metric:<{WIDTH}} {r.bare:>9.2f} {r.durable:>9.2f} {r.real:>9.2f} {r.ratio(r.durable):>9} "
                     f"{r.ratio(r.bare):>9}   {r.aim(r.vs_durable, r.durable):<20} {r.aim(r.vs_bare, r.bare)}")
    return "\n".join(lines)
