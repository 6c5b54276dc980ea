"""Run the test suites on every Python the package claims, and the SDK suite on its floors.

``make test`` runs the whole suite in ``.venv`` (one Python), then this file:

- the Python versions claimed are read from pyproject.toml's classifiers
  (``Programming Language :: Python :: 3.x``); each gets its own virtual
  environment ``.venv-py3x`` with the package (editable), its ``server`` extra
  and its ``test`` extra, reinstalled when pyproject.toml changes;
- the **oldest** claimed Python's environment holds the SDK's runtime
  dependencies at **exactly their floors** (``name==floor`` from the ``>=`` of
  ``[project] dependencies``, given to pip as constraints), so the oldest Python
  meets the oldest dependencies; the server extra keeps its normal versions;
- on each of them the **SDK suite** runs (:data:`SDK_SUITE`) and the **server
  suite** (:data:`SERVER_SUITE`): the server extra claims the same Pythons;
- the Python ``.venv`` runs (``--skip VERSION``) is not run again, except the
  oldest, whose floors ``.venv`` does not have.

A claimed Python that cannot be found is reported and skipped; with ``CI=true``
that is a failure.  Interpreters are looked up as ``python3.x`` on ``PATH``, then
under ``$PYENV_ROOT/versions`` (default ``~/.pyenv``).

Usage::

    python tools/pythons.py claimed        # the versions, one line
    python tools/pythons.py floors         # name==floor, one per line
    python tools/pythons.py test [--skip 3.11] [--only 3.12] [-- PYTEST-ARGS]

Exit status: 0 when every suite run passed (and, with ``CI=true``, every
claimed Python was found), 1 otherwise, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the dev extra installs tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

# The tests that need the SDK only: the top of tests/ (the SDK talks to the
# reference server in this process, so its environment still has the server
# extra) and the local-state attacks; plus the check that a floors environment
# really holds the floors.
SDK_SUITE = ("tests/test_*.py", "tests/local_state_attacks", "tests/packaging/test_floors.py")
# The server's own suite: routes, services, CLI, control panel and portal, on
# SQLite and PostgreSQL. The attack and stress families, and the browser tests
# (Chromium renders the same HTML whatever Python wrote it), run once, in .venv.
SERVER_SUITE = ("tests/server", "tests/panel", "tests/portal")
SERVER_SUITE_IGNORE = ("tests/panel/browser", "tests/portal/browser")

# Set in the floors environment's test runs: tests/packaging/test_floors.py then
# checks that every SDK dependency is installed at exactly its floor.
FLOORS_ENV = "SOFTWARE_DNA_EXPECT_FLOORS"

_PYTHON_CLASSIFIER = re.compile(r"^Programming Language :: Python :: (3\.\d+)$")
_FLOOR = re.compile(
    r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*$")


class ToolError(Exception):
    """A problem this tool reports in one line (then exits 1)."""


def _project() -> dict[str, object]:
    data = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    project = data.get("project")
    if not isinstance(project, dict):
        raise ToolError(f"{PYPROJECT} has no [project] table")
    return project


def claimed_versions(project: dict[str, object] | None = None) -> list[str]:
    """The Python versions pyproject.toml's classifiers claim, oldest first.

    Args:
        project: the ``[project]`` table (dict); read from pyproject.toml when None.

    Returns:
        Versions as ``"3.x"`` strings, sorted numerically.

    Raises:
        ToolError: no ``Programming Language :: Python :: 3.x`` classifier.
    """
    classifiers = (project or _project()).get("classifiers", [])
    assert isinstance(classifiers, list)
    found = {m.group(1) for c in classifiers if (m := _PYTHON_CLASSIFIER.match(str(c)))}
    if not found:
        raise ToolError("pyproject.toml claims no Python version (classifiers)")
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def runtime_requirements(project: dict[str, object] | None = None) -> list[str]:
    """The SDK's runtime requirements, ``[project] dependencies``, as written.

    Args:
        project: the ``[project]`` table (dict); read from pyproject.toml when None.
    """
    dependencies = (project or _project()).get("dependencies", [])
    assert isinstance(dependencies, list)
    return [str(d) for d in dependencies]


def floors(project: dict[str, object] | None = None) -> dict[str, str]:
    """The SDK's runtime dependencies at their floors: ``{name: version}``.

    Args:
        project: the ``[project]`` table (dict); read from pyproject.toml when None.

    Returns:
        One entry per ``[project] dependencies`` requirement, in its order.

    Raises:
        ToolError: a dependency without a single ``>=`` floor (it could not be pinned).
    """
    result: dict[str, str] = {}
    for requirement in runtime_requirements(project):
        match = _FLOOR.match(requirement)
        if match is None:
            raise ToolError(f"dependency {requirement!r} has no single '>=' floor to pin")
        result[match.group(1)] = match.group(2)
    return result


def find_python(version: str) -> Path | None:
    """The interpreter of ``version`` (``"3.x"``): ``python3.x`` on PATH, else pyenv's newest.

    Returns:
        Its path, or None when none is found that reports this version.
    """
    candidates: list[Path] = []
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(Path(on_path))
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = sorted(pyenv.glob(f"{version}.*/bin/python{version}"),
                       key=lambda p: [int(x) if x.isdigit() else -1
                                      for x in re.split(r"[.]", p.parent.parent.name)],
                       reverse=True)
    candidates.extend(installed)
    for candidate in candidates:
        try:
            out = subprocess.run([str(candidate), "-c",
                                  "import sys; print('%d.%d' % sys.version_info[:2])"],
                                 capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and out.stdout.strip() == version:
            return candidate
    return None


class Plan(NamedTuple):
    """What runs on one Python: its venv, whether the SDK deps are at their floors, the suites."""

    version: str
    with_floors: bool
    suites: tuple[str, ...]

    @property
    def venv(self) -> Path:
        """The environment's folder, ``.venv-py3x`` at the top of the checkout."""
        return ROOT / f".venv-py{self.version.replace('.', '')}"


def plans(versions: Sequence[str], skip: str | None) -> list[Plan]:
    """The runs: the SDK and the server suites on every version but ``skip`` (``.venv``'s,
    which ran everything already).

    The oldest always runs (its floors are what it adds beyond ``.venv``), the SDK
    suite only when it is ``skip``; the suites a version runs are named ``"sdk"`` and
    ``"server"``.
    """
    oldest = versions[0]
    result = []
    for version in versions:
        if version == skip and version != oldest:
            continue
        suites = ("sdk",) if version == skip else ("sdk", "server")
        result.append(Plan(version, version == oldest, suites))
    return result


def _run(command: Sequence[str]) -> None:
    print("+", " ".join(command), flush=True)
    subprocess.run(list(command), check=True, cwd=ROOT)


def prepare(plan: Plan, python: Path, pins: dict[str, str]) -> Path:
    """Create or reuse ``plan.venv`` and install the package into it when pyproject.toml changed.

    Returns:
        The environment's python.

    Raises:
        subprocess.CalledProcessError: venv or pip failed.
    """
    constraints = "".join(f"{name}=={version}\n" for name, version in pins.items())
    wanted = hashlib.sha256(PYPROJECT.read_bytes() + b"\0" + constraints.encode()
                            + b"\0" + str(python).encode()).hexdigest()
    bin_python = plan.venv / "bin" / "python"
    stamp = plan.venv / ".installed-stamp"
    if bin_python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return bin_python
    if not bin_python.exists():
        _run([str(python), "-m", "venv", str(plan.venv)])
    pip = [str(bin_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "--upgrade", "pip"])
    extra: list[str] = []
    if constraints:
        constraint_file = plan.venv / "floors.txt"
        constraint_file.write_text(constraints)
        extra = ["--constraint", str(constraint_file)]
    _run([*pip, *extra, "-e", ".[server,test]"])
    stamp.write_text(wanted + "\n")
    return bin_python


def run_suite(bin_python: Path, plan: Plan, suite: str, pytest_args: Sequence[str]) -> bool:
    """Run one suite in the plan's environment (pytest -n 2); True when it passed."""
    paths = SDK_SUITE if suite == "sdk" else SERVER_SUITE
    ignore = () if suite == "sdk" else SERVER_SUITE_IGNORE
    expanded: list[str] = [f"--ignore={path}" for path in ignore]
    for pattern in paths:
        expanded.extend(sorted(str(p.relative_to(ROOT)) for p in ROOT.glob(pattern)))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the environment's own install, not another checkout's
    if plan.with_floors:
        env[FLOORS_ENV] = "1"
    command = [str(bin_python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "-n", "2", "--dist", "loadscope", *pytest_args, *expanded]
    floors_note = " (SDK dependencies at their floors)" if plan.with_floors else ""
    print(f"== Python {plan.version}{floors_note}: {suite} suite", flush=True)
    print("+", " ".join(command[:9]), "...", flush=True)
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode == 0


def test(skip: str | None, only: str | None, pytest_args: Sequence[str],
         versions: Sequence[str] | None = None) -> int:
    """Run the plans; print one line per run and a summary. Returns the exit status.

    Args:
        skip: the version ``.venv`` ran everything on ("3.x"), or None.
        only: run this version's plan alone ("3.x"), or None for all.
        pytest_args: more arguments for every pytest run.
        versions: the versions to test, oldest first; pyproject.toml's claims when None.
    """
    project = _project()
    versions = list(versions or claimed_versions(project))
    pins = floors(project)
    strict = os.environ.get("CI", "").lower() == "true"
    failed = False
    results: list[str] = []
    for plan in plans(versions, skip):
        if only and plan.version != only:
            continue
        python = find_python(plan.version)
        if python is None:
            line = (f"Python {plan.version} (claimed in pyproject.toml) not found: its tests "
                    f"did not run. Install it (e.g. `pyenv install {plan.version}`) or put "
                    f"python{plan.version} on PATH.")
            results.append(("FAILED (CI=true) " if strict else "MISSING ") + line)
            failed = failed or strict
            continue
        try:
            bin_python = prepare(plan, python, pins if plan.with_floors else {})
        except subprocess.CalledProcessError as exc:
            results.append(f"FAILED Python {plan.version}: installing into {plan.venv.name} "
                           f"failed ({exc.cmd[-1]})")
            failed = True
            continue
        for suite in plan.suites:
            start = time.monotonic()
            ok = run_suite(bin_python, plan, suite, pytest_args)
            failed = failed or not ok
            results.append(f"{'passed' if ok else 'FAILED'} Python {plan.version} {suite} suite"
                           f"{' (floors)' if plan.with_floors else ''} "
                           f"in {time.monotonic() - start:.0f} s")
    print("\n== Pythons claimed: " + " ".join(versions))
    for line in results:
        print(line)
    return 1 if failed else 0


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="tools/pythons.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("claimed", help="the Python versions pyproject.toml claims")
    commands.add_parser("floors", help="the SDK dependencies' floors as name==version")
    run = commands.add_parser("test", help="run the suites on every claimed Python")
    run.add_argument("--skip", help="the version .venv already ran the whole suite on")
    run.add_argument("--only", help="run this version's plan only")
    run.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    try:
        if args.command == "claimed":
            print(" ".join(claimed_versions()))
            return 0
        if args.command == "floors":
            for name, version in floors().items():
                print(f"{name}=={version}")
            return 0
        return test(args.skip, args.only, args.pytest_args)
    except ToolError as exc:
        print(f"tools/pythons.py: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
