"""The house in figures (issue 9's aim): function and module sizes by an AST count, and how many
times one events-mode order switches files inside each service's code.

    python -m shopctl house          (make house)

Sizes: every function and method, its lines from `def` to its last statement (docstrings
included), per group of packages. Switches: one order through each service's handler table on
the stream runtime's in-memory twin, traced with sys.setprofile; a switch is a distinct pair
(caller file, callee file) among our files, generated code excluded.
"""

from __future__ import annotations

import ast
import asyncio
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {
    "production (services + shoplib)": ("gateway", "order_svc", "payment_svc", "notification_svc", "shoplib"),
    "tools (shopctl + bench)": ("shopctl", "bench"),
}
AIM = "functions median <= 5 lines, p90 <= 12, none over 30; no production module over 200 lines"


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _lines(fn: ast.FunctionDef | ast.AsyncFunctionDef, with_docstring: bool) -> int:
    total = (fn.end_lineno or fn.lineno) - fn.lineno + 1
    first = fn.body[0]
    is_doc = (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
              and isinstance(first.value.value, str))
    return total if with_docstring or not is_doc else total - ((first.end_lineno or first.lineno) - first.lineno + 1)


Sized = list[tuple[int, str]]


def sizes(packages: tuple[str, ...], with_docstring: bool = True) -> tuple[Sized, Sized]:
    """(function lines, name) and (module lines, path) of every .py file under `packages`."""
    functions, modules = [], []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            text = path.read_text()
            modules.append((len(text.splitlines()), str(path.relative_to(ROOT))))
            for fn in _functions(ast.parse(text)):
                functions.append((_lines(fn, with_docstring), f"{path.relative_to(ROOT)}:{fn.name}"))
    return functions, modules


def _p90(lines: list[int]) -> int:
    return lines[int(len(lines) * 0.9)]


def size_report() -> list[str]:
    out = [f"aim: {AIM}", ""]
    for title, packages in GROUPS.items():
        functions, modules = sizes(packages)
        lines = sorted(n for n, _ in functions)
        code = sorted(n for n, _ in sizes(packages, with_docstring=False)[0])
        out.append(f"{title}: {len(lines)} functions, median {statistics.median(lines):g}, p90 {_p90(lines)}, "
                   f"max {lines[-1]} (docstrings left out: median {statistics.median(code):g}, p90 {_p90(code)}, "
                   f"max {code[-1]}); {len(modules)} modules, largest {max(modules)[0]} lines")
        out += [f"  function over 30: {name} ({n})" for n, name in sorted(functions, reverse=True) if n > 30]
        out += [f"  module over 200: {name} ({n})" for n, name in sorted(modules, reverse=True) if n > 200]
    return out


OURS = tuple(str(ROOT / package) for packages in GROUPS.values() for package in packages)


class SwitchCounter:
    """The distinct (caller file, callee file) pairs of calls between our files (generated code
    excluded): the file switches a reader makes who follows the order through the code."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str]] = set()

    @property
    def switches(self) -> int:
        return len(self.pairs)

    @property
    def path_switches(self) -> int:
        """Switches into files that call none of ours in turn (clock, log, ...) left out: the path."""
        callers = {caller for caller, _ in self.pairs}
        return sum(1 for _, callee in self.pairs if callee in callers)

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or frame.f_back is None:
            return
        callee, caller = frame.f_code.co_filename, frame.f_back.f_code.co_filename
        if callee != caller and callee.startswith(OURS) and caller.startswith(OURS):
            self.pairs.add((caller, callee))


async def _traced(step: Any, counter: SwitchCounter) -> Any:
    sys.setprofile(counter)
    try:
        return await step
    finally:
        sys.setprofile(None)


async def _one_order() -> dict[str, tuple[int, int]]:
    """File switches per process for one events-mode order: placing it (order), then each entry
    the broker delivers, attributed to the service of the group it went to."""
    from shop.v1 import order_service_pb2, types_pb2

    from order_svc import bootstrap as order_bootstrap
    from order_svc import handlers as order_handlers
    from shoplib.commit.unit_of_work import StreamPublisher
    from shoplib.testing import MemoryStore
    from tests.unit.test_events_flow_in_memory import broker

    store = MemoryStore()
    price = types_pb2.Money(currency_code="EUR", amount_minor=100)
    request = order_service_pb2.CreateOrderRequest(
        idempotency_key="house", customer_id="c", mode=types_pb2.FLOW_MODE_EVENTS,
        lines=[types_pb2.OrderLine(product_id="sku", quantity=1, unit_price=price)])
    per_process = {service: SwitchCounter() for service in ("order", "payment", "notification")}
    unit_of_work = order_bootstrap.unit_of_work(reader=store, committer=store, publisher=StreamPublisher("/house"))
    await _traced(order_handlers.place_order(request, unit_of_work), per_process["order"])
    events, group = broker(store), "order"
    while group is not None:
        counter = SwitchCounter()
        group = await _traced(events.step(), counter)
        if group is not None:
            per_process[group.split("-")[0]].pairs |= counter.pairs
    return {service: (counter.switches, counter.path_switches) for service, counter in per_process.items()}


def switch_report() -> list[str]:
    per = asyncio.run(_one_order())
    return ["", "one events-mode order (placed, charged, notified twice, settled), handler entry to commit,",
            "on the in-memory runtime (the real runtime adds its read loop and the commit's transport):",
            "  file switches per process, all / along the path (leaf helpers left out): "
            + ", ".join(f"{service} {n} / {path}" for service, (n, path) in sorted(per.items()))]


def main() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))
    sys.path.insert(0, str(ROOT))
    print("\n".join(size_report() + switch_report()))


if __name__ == "__main__":
    main()
