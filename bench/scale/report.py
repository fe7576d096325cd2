"""The tables of a run: per setup the twins' and the real stack's CPU per order and orders/s, each
against the single-Redis, one-instance figure of its own kind, and what Redis ran per order."""

from __future__ import annotations

from bench.common.load import IN_FLIGHT
from bench.common.twins import Aim
from bench.scale.run import Result, Setup

AIM = Aim(1.2)  # issue 24: CPU per order on the cluster and with 2 instances, x one Redis and one instance
LEAN = "twin, lean"
SHOWN_MIN = 0.005  # commands per order below this (a chore's, now and then) are left out


def _kinds(results: list[Result]) -> dict[Setup, dict[str, Result]]:
    found: dict[Setup, dict[str, Result]] = {}
    for r in results:
        found.setdefault(r.setup, {})["real" if r.kind == "real" else LEAN if r.kind == LEAN else "twin"] = r
    return found


def _vs(r: Result | None, base: Result | None) -> str:
    return f"{r.total_ms / base.total_ms:.2f}x" if r and base else "-"


def _ms(r: Result | None) -> str:
    return f"{r.total_ms:.2f}" if r else "-"


def _per_s(r: Result | None) -> str:
    return f"{r.per_s:.0f}" if r else "-"


def cost_table(results: list[Result]) -> str:
    by_setup = _kinds(results)
    base = next(iter(by_setup.values()))
    head = (f"{'setup':<15} {'inst':>4} | {'twin ms':>7} {'/s':>5} {'vs base':>7} | {'lean ms':>7} {'vs base':>7} | "
            f"{'real ms':>7} {'/s':>5} {'vs base':>7} {'aim ' + str(AIM):<16} | {'real/twin':>9} {'real/lean':>9}")
    lines = [f"CPU ms per order (services + Redis servers, backlog included) and orders/s, {IN_FLIGHT} in flight;",
             "twin: the durable twin over the real stack's transport; lean: over one lean connection per master",
             head, "-" * len(head)]
    for setup, kinds in by_setup.items():
        twin, lean, real = kinds.get("twin"), kinds.get(LEAN), kinds.get("real")
        ratio = real.total_ms / base["real"].total_ms if real and "real" in base else None
        aim = AIM.verdict(ratio) if ratio is not None and setup != next(iter(by_setup)) else ""
        lines.append(f"{setup.name:<15} {setup.instances:>4} | {_ms(twin):>7} {_per_s(twin):>5} "
                     f"{_vs(twin, base.get('twin')):>7} | {_ms(lean):>7} {_vs(lean, base.get('twin')):>7} | "
                     f"{_ms(real):>7} {_per_s(real):>5} {_vs(real, base.get('real')):>7} {aim:<16} | "
                     f"{_vs(real, twin):>9} {_vs(real, lean):>9}")
    return "\n".join(lines)


def split_lines(results: list[Result]) -> str:
    """Where each setup's real cost over the base goes: the twin's own growth, and ours on top."""
    by_setup = _kinds(results)
    base = next(iter(by_setup.values()))
    lines = []
    for setup, kinds in list(by_setup.items())[1:]:
        twin, lean, real = kinds.get("twin"), kinds.get(LEAN), kinds.get("real")
        if not (twin and real and "twin" in base and "real" in base):
            continue
        grown, ours = twin.total_ms / base["twin"].total_ms, (real.total_ms / twin.total_ms) / (
            base["real"].total_ms / base["twin"].total_ms)
        line = (f"{setup.name} x{setup.instances}: real {real.total_ms / base['real'].total_ms:.2f}x the base = "
                f"twin's {grown:.2f}x (the durable work there) x {ours:.2f}x (ours: real/twin there over real/twin "
                "at the base)")
        if lean:
            line += (f"; of the twin's, {lean.total_ms / base['twin'].total_ms:.2f}x is the cluster's own (lean) and "
                     f"{twin.total_ms / lean.total_ms:.2f}x redis-py's cluster client")
        lines.append(line)
    return "\n".join(lines)


def detail_lines(results: list[Result]) -> str:
    lines = [f"{'setup':<15} {'inst':>4} {'kind':<15} {'orders':>7} {'svc ms':>7} {'redis ms':>8}  "
             "Redis commands per order (every master, INFO commandstats; those the scripts run counted too)"]
    for r in results:
        commands = ", ".join(f"{name} {n:.2f}" for name, n in sorted(r.commands.items(), key=lambda kv: -kv[1])
                             if n >= SHOWN_MIN)
        failed = f" ({r.errors} calls failed)" if r.errors else ""
        lines.append(f"{r.setup.name:<15} {r.setup.instances:>4} {r.kind:<15} {r.orders:>7} "
                     f"{r.cpu_ms['services']:>7.2f} {r.cpu_ms['redis']:>8.2f}  {commands}{failed}")
    return "\n".join(lines)


def report(results: list[Result]) -> None:
    print("\n" + cost_table(results))
    print("\n" + split_lines(results))
    print("\n" + detail_lines(results))
