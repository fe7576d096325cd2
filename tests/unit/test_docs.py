"""The README and docs/ say only what is there: every `make` target they name is one of the Makefile's,
every repository path and module they name in code exists, every link to a local file resolves
(and its #section too), and the README stays a newcomer's page: 200 lines at most. Reads files
only: no server, no subprocess."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_MAX_LINES = 200  # issue 21, item 5: one screenful of orientation, the rest in docs/

FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
MAKE_TARGET = re.compile(r"(?:^|[\s;(&|`])make(?:\s+-s)?\s+([a-z][\w-]*)", re.MULTILINE)
MAKEFILE_RULE = re.compile(r"^([A-Za-z0-9_.$()/%-][^:=\n]*?)\s*:(?!=)", re.MULTILINE)
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
# A repository path: starts with a top-level entry (folder or file) and has a folder separator or
# is a top-level file; ends at the first character that cannot be part of a path.
PATH_TOKEN = re.compile(r"(?<![\w./-])((?:\.?[\w-]+/)+[\w.*-]*|[\w-]+\.(?:py|md|toml|yaml|yml|json|lua|lock))")
PLACEHOLDERS = ("<", "...", "*")
MODULE_TOKEN = re.compile(r"(?<![\w.])((?:shoplib|shopctl|bench|gateway|order_svc|payment_svc|notification_svc)"
                          r"(?:\.\w+)+)")


@dataclass(frozen=True)
class Page:
    path: Path

    @property
    def text(self) -> str:
        return self.path.read_text()

    @property
    def name(self) -> str:
        return str(self.path.relative_to(ROOT))

    def code(self) -> list[str]:
        """What the page shows as code: fenced blocks, then inline spans outside them."""
        blocks = FENCE.findall(self.text)
        prose = FENCE.sub("", self.text)
        return [*blocks, *CODE_SPAN.findall(prose)]

    def links(self) -> list[str]:
        return [target for target in LINK.findall(FENCE.sub("", self.text))
                if not re.match(r"[a-z][\w+.-]*:", target)]  # http:, https:, mailto: are not ours


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    rules = {name for line in MAKEFILE_RULE.findall(text) for name in line.split()}
    phony = re.search(r"^\.PHONY:((?:.*\\\n)*.*)$", text, re.MULTILINE)
    return rules | set((phony.group(1).replace("\\\n", " ") if phony else "").split())


def ignore_rules() -> list[tuple[str, bool]]:
    """.gitignore's patterns in order, each with whether it ignores (a `!` pattern keeps)."""
    lines = [line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()]
    rules = [line for line in lines if line and not line.startswith("#")]
    return [(line.lstrip("!").rstrip("/"), not line.startswith("!")) for line in rules]


def glob_match(path: str, pattern: str) -> bool:
    """git's globbing: `*` stays within one folder, `**` crosses folders."""
    parts = re.split(r"(\*\*/?|\*|\?)", pattern)
    wild = {"**": ".*", "**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}
    return re.fullmatch("".join(wild.get(part, re.escape(part)) for part in parts), path) is not None


def is_ignored(path: str) -> bool:
    """Whether git ignores `path`, as .gitignore says (the last matching pattern wins, and what is
    under an ignored folder is ignored): a path a run writes (certs/, results/traces/, .venv/bin)
    need not exist in a checkout."""
    parts = Path(path).parts
    for n in range(1, len(parts) + 1):
        prefix, verdict = "/".join(parts[:n]), False
        for pattern, ignores in ignore_rules():
            target = prefix if "/" in pattern else parts[n - 1]
            if glob_match(target, pattern):
                verdict = ignores
        if verdict:
            return True
    return False


def repository_paths(page: Page) -> set[str]:
    top = {entry.name for entry in ROOT.iterdir()}
    found = set()
    for code in page.code():
        for token in PATH_TOKEN.findall(code):
            token = token.rstrip(".")
            if token.split("/")[0] in top and not any(mark in token for mark in PLACEHOLDERS):
                found.add(token)
    return found


def module_exists(dotted: str) -> bool:
    """shoplib.commit.dispatch.Dispatcher: the longest prefix that is a module, the rest a name in it."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:n])
        module = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if module.exists():
            rest = parts[n:]
            return not rest or re.search(rf"\b(?:def|class)\s+{rest[0]}\b|^{rest[0]}\b", module.read_text(),
                                         re.MULTILINE) is not None
    return False


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors: a heading lowercased, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+\s+(.+)$", FENCE.sub("", path.read_text()), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-") for heading in headings}


def link_problem(page: Page, target: str) -> str | None:
    file_part, _, anchor = target.partition("#")
    resolved = (page.path.parent / file_part).resolve() if file_part else page.path
    if not resolved.exists():
        return f"{target}: no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}"
    if anchor and resolved.suffix == ".md" and anchor not in heading_anchors(resolved):
        return f"{target}: no heading #{anchor} in {resolved.name}"
    return None


PAGE_IDS = [str(page.relative_to(ROOT)) for page in PAGES]


def test_docs_holds_the_pages_the_readme_sends_readers_to() -> None:
    assert {"operations.md", "semantics.md", "measurements.md", "faults.md"} <= {page.name for page in DOCS}


def test_the_readme_fits_a_newcomer_in_200_lines() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines; move the rest to docs/"


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_every_make_target_a_page_names_is_in_the_makefile(path: Path) -> None:
    page, targets = Page(path), makefile_targets()
    named = {target for code in page.code() for target in MAKE_TARGET.findall(code)}
    assert named, f"{page.name} names no make target: the pattern broke"
    assert not named - targets, f"{page.name} names make targets the Makefile lacks: {sorted(named - targets)}"


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_every_repository_path_a_page_names_exists(path: Path) -> None:
    page = Page(path)
    missing = sorted(token for token in repository_paths(page) if not (ROOT / token).exists() and not is_ignored(token))
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_every_module_a_page_names_exists(path: Path) -> None:
    page = Page(path)
    named = {token for code in page.code() for token in MODULE_TOKEN.findall(code)}
    missing = sorted(token for token in named if not module_exists(token))
    assert not missing, f"{page.name} names modules or names that do not exist: {missing}"


@pytest.mark.parametrize("path", PAGES, ids=PAGE_IDS)
def test_every_local_link_resolves(path: Path) -> None:
    page = Page(path)
    problems = [problem for target in page.links() if (problem := link_problem(page, target))]
    assert not problems, f"{page.name}: {problems}"


def layout_block() -> str:
    text = README.read_text()
    section = text[text.index("## Layout"):]
    return FENCE.findall(section)[0]


def test_the_readme_layout_names_every_top_level_folder_every_shoplib_package_and_every_test_folder() -> None:
    block = layout_block()
    # A line's head is what precedes its description; top-level folders start at column 0, and
    # shoplib's packages, indented by two, sit under it.
    heads = [(len(line) - len(line.lstrip()), re.split(r"\s{2,}", line.strip())[0]) for line in block.splitlines()]
    named = {name for indent, head in heads if indent == 0 for name in re.findall(r"([\w.-]+)/", head)}
    nested = {name for indent, head in heads if indent == 2 for name in re.findall(r"([\w.-]+)/", head)}
    folders = {entry.name for entry in ROOT.iterdir()
               if entry.is_dir() and not entry.name.startswith(".") and not is_ignored(entry.name)}
    packages = {entry.name for entry in (ROOT / "shoplib").iterdir() if (entry / "__init__.py").exists()}
    assert not folders - named, f"the README's layout leaves out {sorted(folders - named)}"
    assert not packages - nested, f"the README's layout leaves out shoplib/{sorted(packages - nested)}"
    tests_line = re.search(r"^tests/\s+(.*)$", block, re.MULTILINE)
    listed = set(re.findall(r"\w+", tests_line.group(1))) if tests_line else set()
    suites = {entry.name for entry in (ROOT / "tests").iterdir() if (entry / "__init__.py").exists()}
    assert not suites - listed, f"the README's tests/ line leaves out {sorted(suites - listed)}"
