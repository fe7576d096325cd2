"""deploy/Dockerfile, checked without a Docker engine: its instructions are parsed, the image's
file tree is built by doing what its COPY instructions say into a temporary folder, and every
service module the manifests and the CMD run is imported from that tree alone.

How the tree is built: each COPY from the build context is copied from the repository into the
stage's folder; `COPY --from=<stage>` copies from that stage's folder. The virtualenv the build
stage fills from the lock file (`pip install --no-deps -r requirements/runtime.lock`) is stood in
for by this test's own environment, which `make venv` installs from the same lock; the import runs
with `python -S` so that nothing of the repository leaks in through the editable install's hook,
and with the image's PYTHONPATH mapped onto the tree. When requirements/runtime.lock is absent
(`make lock` writes it), the tree gets one from this environment's `pip freeze`, and the test says so.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LOCK = "requirements/runtime.lock"
IMPORT_BOUND_S = 120  # importing four services takes ~3 s; room for a loaded host


@dataclass
class Stage:
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def all(self, kind: str) -> list[str]:
        return [args for k, args in self.instructions if k == kind]


def parse(text: str) -> list[Stage]:
    """The stages of a Dockerfile: comments dropped, continuation lines joined."""
    stages: list[Stage] = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        kind, _, args = line.partition(" ")
        kind = kind.upper()
        if kind == "FROM":
            words = args.split()
            stages.append(Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages))))
        if stages:
            stages[-1].instructions.append((kind, args.strip()))
    return stages


def copy_args(args: str) -> tuple[str | None, list[str], str]:
    """(--from stage or None, sources, destination) of a COPY."""
    words = shlex.split(args)
    source_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
    paths = [w for w in words if not w.startswith("--")]
    return source_stage, paths[:-1], paths[-1]


def env_of(stage: Stage) -> dict[str, str]:
    found: dict[str, str] = {}
    for args in stage.all("ENV"):
        for word in shlex.split(args):
            key, _, value = word.partition("=")
            found[key] = value
    return found


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text())


def test_the_image_is_built_in_stages_and_runs_as_an_unprivileged_user(stages: list[Stage]) -> None:
    assert len(stages) >= 2, "one stage: the build tools would ship in the image"
    final = stages[-1]
    [user] = final.all("USER")[-1:]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: not a numeric non-root id (runAsNonRoot checks numbers)"
    assert not final.all("RUN") or all("pip install" not in run for run in final.all("RUN")), \
        "the final stage installs packages: they belong in the build stage"


def test_the_lock_file_is_what_gets_installed_and_nothing_beside_it(stages: list[Stage]) -> None:
    copied = {dest: sources for stage in stages for source_stage, sources, dest in map(copy_args, stage.all("COPY"))
              if source_stage is None}
    lock_dest = next(dest for dest, sources in copied.items() if sources == [LOCK])
    installs = [run for stage in stages for run in stage.all("RUN") if "pip install" in run]
    assert installs == [next(r for r in installs if f"-r {lock_dest}" in r)], installs
    assert "--no-deps" in installs[0], "without --no-deps pip may resolve packages the lock does not hold"


def test_every_runtime_dependency_is_pinned_in_the_lock(lock: Path) -> None:
    pinned = {line.split("==")[0].strip().lower().replace("_", "-") for line in lock.read_text().splitlines()
              if "==" in line and not line.lstrip().startswith("#")}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split("==")[0].split("[")[0].strip().lower().replace("_", "-") for d in declared}
    assert names <= pinned, f"not in {LOCK}: {sorted(names - pinned)}"


@pytest.fixture(scope="module")
def lock(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's lock file, or (absent) one frozen from this environment, said in a warning."""
    if (ROOT / LOCK).is_file():
        return ROOT / LOCK
    warnings.warn(f"{LOCK} is absent (make lock writes it): using this environment's pip freeze", stacklevel=1)
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True, timeout=IMPORT_BOUND_S).stdout
    path = tmp_path_factory.mktemp("lock") / "runtime.lock"
    path.write_text(frozen)
    return path


def _build_tree(stages: list[Stage], lock: Path, root: Path) -> dict[str, Path]:
    """Each stage's file tree under root/<stage>, as its COPY instructions make it."""
    trees: dict[str, Path] = {}
    for stage in stages:
        tree = trees[stage.name] = root / stage.name
        for run in stage.all("RUN"):  # the virtualenv: made empty here, this environment stands in for it
            words = run.split()
            if "venv" in words and words.index("venv") >= 1 and words[words.index("venv") - 1] == "-m":
                (tree / words[words.index("venv") + 1].lstrip("/")).mkdir(parents=True, exist_ok=True)
        for source_stage, sources, dest in map(copy_args, stage.all("COPY")):
            for source in sources:
                origin = (trees[source_stage] / source.lstrip("/") if source_stage is not None
                          else lock if source == LOCK else ROOT / source)
                where = f"stage {source_stage}" if source_stage else "repository"
                assert origin.exists(), f"COPY {source}: not in the {where}"
                target = tree / dest.lstrip("/")
                if origin.is_dir():
                    shutil.copytree(origin, target, dirs_exist_ok=True,
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(origin, target / origin.name if dest.endswith("/") else target)
    return trees


def _modules_run(stages: list[Stage]) -> set[str]:
    """The modules `python -m` runs: the image's CMD and every manifest's command."""
    cmd = json.loads(stages[-1].all("CMD")[-1])
    found = {cmd[cmd.index("-m") + 1]}
    for path in sorted((ROOT / "deploy" / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                command = doc["spec"]["template"]["spec"]["containers"][0]["command"]
                found.add(command[command.index("-m") + 1])
    return found


def _import_services(stages: list[Stage], lock: Path, root: Path) -> subprocess.CompletedProcess[str]:
    """Import each service's __main__ from the final stage's tree, in a fresh interpreter."""
    final = _build_tree(stages, lock, root)[stages[-1].name]
    image_path = [str(final / entry.lstrip("/")) for entry in env_of(stages[-1])["PYTHONPATH"].split(":")]
    modules = _modules_run(stages)
    probe = ("import importlib, sys\n"
             f"for name in {sorted(modules)!r}:\n"
             "    module = importlib.import_module(name + '.__main__')\n"
             f"    assert module.__file__.startswith({str(final)!r}), module.__file__\n"
             "print('imported', len(sys.modules))\n")
    site = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]  # stands in for /opt/venv
    return subprocess.run([sys.executable, "-S", "-B", "-c", probe], cwd=final,
                          env={"PYTHONPATH": ":".join([*image_path, *site]), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=IMPORT_BOUND_S, check=False)


def test_every_service_the_manifests_run_imports_from_the_images_file_tree(
        stages: list[Stage], lock: Path, tmp_path: Path) -> None:
    assert _modules_run(stages) == {"gateway", "order_svc", "payment_svc", "notification_svc"}
    done = _import_services(stages, lock, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("imported")


def test_an_image_without_the_shared_library_fails_the_import_control(lock: Path, tmp_path: Path) -> None:
    """Control: the same check on the Dockerfile less its `COPY shoplib/` finds the hole."""
    text = DOCKERFILE.read_text().replace("COPY shoplib/ /app/shoplib/\n", "")
    assert text != DOCKERFILE.read_text()
    done = _import_services(parse(text), lock, tmp_path)
    assert done.returncode != 0 and "No module named 'shoplib'" in done.stderr


def test_a_copy_of_a_missing_source_is_caught(stages: list[Stage], lock: Path, tmp_path: Path) -> None:
    """Control: the tree builder refuses a COPY whose source the repository lacks."""
    broken = parse(DOCKERFILE.read_text() + "\nCOPY no_such_dir/ /app/no_such_dir/\n")
    with pytest.raises(AssertionError, match="COPY no_such_dir/: not in the repository"):
        _build_tree(broken, lock, tmp_path)
