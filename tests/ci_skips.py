"""A pytest plugin (loaded by tests/conftest.py): under CI=true a skipped test is a test that did
not run, so every skip fails the session, except those the CI step allows. In the step that runs
as a newcomer's machine with Python only (SHOP_CI_STEP=newcomer), TLS to Redis may skip: no
redis-server that comes from Python has TLS: a test whose set-up needs one is skipped (pytest_runtest_makereport)."""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

from shopctl.local_redis.server import TlsUnavailable
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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                            pytest.TestReport]:
    """A test whose set-up needs a TLS-capable Redis where none exists is skipped, saying which
    binaries were found and why not (whichever fixture or file asked, and each test of a shared one)."""
    report = yield
    if call.when == "setup" and call.excinfo is not None and call.excinfo.errisinstance(TlsUnavailable):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {TLS_UNAVAILABLE}: {call.excinfo.value}")
    return report


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
