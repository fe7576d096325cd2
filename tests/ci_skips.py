"""A pytest plugin (loaded by tests/conftest.py): under CI=true a skipped test is a test that did
not run, so every skip fails the session, except those the CI step allows. In the step that runs
as a newcomer's machine with Python only (SHOP_CI_STEP=newcomer), TLS to Redis may skip: no
redis-server that comes from Python has TLS."""

from __future__ import annotations

import os

import pytest

from shoplib import config
from tests.support import TLS_UNAVAILABLE

CI_STEP_ALLOWED_SKIPS = {"newcomer": (TLS_UNAVAILABLE,)}
_skipped: list[tuple[str, str]] = []  # (test id, reason) of every skip this session


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) else str(longrepr)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, _reason(report)))


def disallowed(skipped: list[tuple[str, str]], ci: bool, step: str) -> list[tuple[str, str]]:
    """The skips that fail this run: none outside CI; in CI all but those whose reason the step allows."""
    if not ci:
        return []
    allowed = CI_STEP_ALLOWED_SKIPS.get(step, ())
    return [(test, reason) for test, reason in skipped if not any(mark in reason for mark in allowed)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    refused = disallowed(_skipped, config.flag(os.environ.get("CI") or "0"), os.environ.get("SHOP_CI_STEP", ""))
    if not refused:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"CI=true: {len(refused)} skipped test(s) fail this run "
                            "(a skip is a test that did not run):", red=True)
        for test, reason in refused:
            reporter.write_line(f"  {test}: {reason}", red=True)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
