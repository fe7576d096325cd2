"""Whether a lock file still holds every pin of pyproject.toml: `python -m shopctl.lockcheck LOCK [EXTRA...]`.

pyproject.toml pins each direct dependency exactly (`name==version`); `make lock` resolves the whole
tree from them into requirements/*.lock. A pin changed or added since (at a merge, say) without
`make lock` would install the old tree silently; this check names the pins the lock lacks and fails.
Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path("pyproject.toml")
# `name==version` (an optional [extra] and ; marker after it), as pyproject.toml and the locks write them.
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")


def canonical(name: str) -> str:
    """PEP 503's normalised name: `Foo_Bar.baz` -> `foo-bar-baz`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lines: list[str]) -> dict[str, str]:
    """{canonical name: version} of the `name==version` lines; anything else is ignored."""
    found = (_PIN.match(line) for line in lines)
    return {canonical(match[1]): match[2] for match in found if match}


def wanted(pyproject: dict[str, object], extras: list[str]) -> dict[str, str]:
    """The pins of [project] dependencies plus those of the named optional-dependency groups."""
    project = pyproject["project"]
    assert isinstance(project, dict)
    groups = project.get("optional-dependencies", {})
    unknown = [extra for extra in extras if extra not in groups]
    if unknown:
        raise SystemExit(f"pyproject.toml has no optional dependencies named {', '.join(unknown)}")
    lines = [*project["dependencies"], *(line for extra in extras for line in groups[extra])]
    return pins(lines)


def missing(lock_lines: list[str], want: dict[str, str]) -> list[str]:
    """`name==version` of each wanted pin the lock does not hold at that version, sorted."""
    held = pins(lock_lines)
    return sorted(f"{name}=={version}" for name, version in want.items() if held.get(name) != version)


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit("usage: python -m shopctl.lockcheck LOCK_FILE [EXTRA ...]")
    lock = Path(argv[0])
    if not lock.is_file():
        raise SystemExit(f"{lock} is missing: run `make lock`")
    want = wanted(tomllib.loads(PYPROJECT.read_text()), argv[1:])
    absent = missing(lock.read_text().splitlines(), want)
    if absent:
        print(f"{lock} is stale: pyproject.toml pins {', '.join(absent)}, which it lacks. "
              "Run `make lock` and commit the lock files.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
