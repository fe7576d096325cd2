"""`python -m shopctl chaos --quick`: each scenario of issues 5 and 8 passes at the reduced size, and each
control run (the protection under test disabled) is caught by the checker: a checker that cannot
fail proves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from shopctl.chaos.scenarios import SCENARIOS

# The reduced sizes take about two and a half minutes on 2 cores (28 runs, each with its own Redis and stack).
QUICK_BOUND_S = 360
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(QUICK_BOUND_S + 60)]
IDS = [f"{sc.number}-{sc.key}" for sc in SCENARIOS]


@pytest.fixture(scope="module")
def chaos(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, bool], dict[str, Any]]:
    out = tmp_path_factory.mktemp("chaos") / "chaos.json"
    done = subprocess.run([sys.executable, "-m", "shopctl", "chaos", "--quick", "--json", str(out)],
                          capture_output=True, text=True, timeout=QUICK_BOUND_S, check=False)
    assert out.exists(), f"no results written\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    runs = json.loads(Path(out).read_text())["runs"]
    return {(int(r["scenario"].split(".")[0]), r["control"] is not None): r for r in runs}


def _why(run: dict[str, Any]) -> str:
    return json.dumps({k: run[k] for k in ("verdict", "failures", "proof", "counts", "log_dir")}, indent=1)[:3000]


@pytest.mark.parametrize("number", [sc.number for sc in SCENARIOS], ids=IDS)
def test_scenario_passes_with_its_fault_fired(chaos: dict[tuple[int, bool], dict[str, Any]], number: int) -> None:
    run = chaos[(number, False)]
    assert run["verdict"] == "PASS", _why(run)
    assert run["counts"]["orders"] == run["counts"]["completed"] > 0, _why(run)
    assert run["counts"]["faults"] > 0 and run["proof"], _why(run)


@pytest.mark.parametrize("number", [sc.number for sc in SCENARIOS], ids=IDS)
def test_control_run_is_caught_by_the_checker(chaos: dict[tuple[int, bool], dict[str, Any]], number: int) -> None:
    run = chaos[(number, True)]
    assert run["verdict"] == "FAIL" and run["caught"], _why(run)
    assert any(f["kind"] == run["expect"] for f in run["failures"]), _why(run)
