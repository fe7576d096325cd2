"""Under CI=true a skip fails the run, but for the TLS-to-Redis skips in the newcomer step: a real
pytest session (a subprocess with the plugin) over two skipping tests, one of them skipped by the
plugin because its fixture found no TLS-capable Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ci_skips
from tests.support import TLS_UNAVAILABLE

ROOT = Path(__file__).resolve().parents[2]
SESSION_TIMEOUT_S = 60  # a pytest session of two skipped tests starts and ends in about a second
TWO_SKIPS = '''
import pytest
from shopctl.local_redis.server import TlsUnavailable

@pytest.fixture
def tls_redis() -> None:
    raise TlsUnavailable("needs redis-server 7.0 or newer with TLS, and found none")

def test_tls(tls_redis: None) -> None:  # skipped by the plugin, as every fixture needing TLS where none is
    pass

def test_other() -> None:
    pytest.skip("{reason}")
'''


def _session(tmp_path: Path, other_reason: str, **env: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_two_skips.py").write_text(TWO_SKIPS.format(reason=other_reason))
    clean = {k: v for k, v in os.environ.items() if k not in ("CI", "SHOP_CI_STEP")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.ci_skips", "-p", "no:cacheprovider",
                           "--rootdir", str(tmp_path), "-c", os.devnull, str(tmp_path)],
                          cwd=ROOT, env={**clean, "PYTHONPATH": str(ROOT), **env}, capture_output=True, text=True,
                          timeout=SESSION_TIMEOUT_S)


def test_in_the_newcomer_step_a_skip_but_the_tls_one_fails_the_run(tmp_path: Path) -> None:
    done = _session(tmp_path, "no reason to run", CI="true", SHOP_CI_STEP="newcomer")
    assert "2 skipped" in done.stdout and done.returncode == 1, done.stdout[-2000:]
    assert "1 skipped test(s) fail this run" in done.stdout and "test_other: Skipped: no reason to run" in done.stdout


def test_outside_ci_the_same_skips_pass(tmp_path: Path) -> None:
    """The control: the same session without CI passes (the plugin, not the test file, fails it)."""
    done = _session(tmp_path, "no reason to run")
    assert "2 skipped" in done.stdout and done.returncode == 0, done.stdout[-2000:]


SKIPS = [("t::tls", f"{TLS_UNAVAILABLE}: found none"), ("t::other", "no reason to run")]


@pytest.mark.parametrize(("ci", "step", "refused"), [
    (False, "", []),
    (False, "newcomer", []),
    (True, "", ["t::tls", "t::other"]),  # the normal CI run allows no skip at all
    (True, "newcomer", ["t::other"]),
    (True, "other-step", ["t::tls", "t::other"]),
])
def test_which_skips_fail_a_run(ci: bool, step: str, refused: list[str]) -> None:
    assert [test for test, _ in ci_skips.disallowed(SKIPS, ci, step)] == refused
