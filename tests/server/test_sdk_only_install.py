"""The SDK installed without the ``server`` extra: a fresh virtual environment holding this
checkout (``pip install --no-deps -e``) and the SDK's own dependencies only.

Its ``software-dna`` console script must answer every command with one line on
stderr saying what to install (exit 1, no traceback), and still print its
version and a short help. A real venv and real processes, because what is
tested is what pip installs and what the console script imports; the import
blocker of tests/server/test_cli.py simulates the same in this interpreter.

The venv needs the SDK's dependencies from the package index pip is configured
with; when pip cannot get them the module is skipped (failed when CI=true).
"""

from __future__ import annotations

import os
import subprocess
import venv
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import requires
from pathlib import Path

import pytest
import typer
from packaging.requirements import Requirement

from software_dna.server.cli.app import app

ROOT = Path(__file__).resolve().parents[2]


def _commands() -> list[list[str]]:
    """Every command path of the CLI (groups and leaves), from the Typer app itself."""
    paths: list[list[str]] = [[]]

    def walk(command: object, path: list[str]) -> None:
        subcommands = getattr(command, "commands", None)
        if path:
            paths.append(path)
        if subcommands:
            for name, sub in sorted(subcommands.items()):
                walk(sub, [*path, name])
    walk(typer.main.get_command(app), [])
    return paths


@pytest.fixture(scope="module")
def sdk_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``bin`` folder of a venv with the SDK alone."""
    folder = tmp_path_factory.mktemp("sdk-only") / "venv"
    venv.EnvBuilder(with_pip=True).create(folder)
    bin_dir = folder / "bin"
    pip = [str(bin_dir / "python"), "-m", "pip", "install", "-q",
           "--disable-pip-version-check"]
    requirements = [text for text in requires("software-dna") or []
                    if Requirement(text).marker is None]  # the SDK's: no "extra ==" marker
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for step in ([*pip, *requirements], [*pip, "--no-deps", "-e", str(ROOT)]):
        done = subprocess.run(step, capture_output=True, text=True, env=env, timeout=300,
                              check=False)
        if done.returncode != 0:
            reason = f"pip could not set up an SDK-only venv: {done.stderr.strip()[-300:]}"
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    yield bin_dir


def _run(bin_dir: Path, argv: list[str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(bin_dir / "software-dna"), *argv], capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def test_the_venv_holds_the_sdk_and_not_the_server_extra(sdk_only: Path) -> None:
    code = ("import importlib.util as u, software_dna; "
            "print([m for m in ('typer', 'fastapi', 'sqlalchemy', 'pydantic') if u.find_spec(m)])")
    done = subprocess.run([str(sdk_only / "python"), "-c", code], capture_output=True, text=True,
                          timeout=60, check=False, cwd=sdk_only)
    assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


def test_every_command_says_in_one_line_what_to_install(sdk_only: Path) -> None:
    commands = _commands()
    assert len(commands) > 50  # the walk found the command tree
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda argv: (argv, _run(sdk_only, argv)), commands))
    for argv, done in results:
        assert done.returncode == 1, (argv, done.stderr)
        assert done.stdout == "", argv
        assert done.stderr.count("\n") == 1, (argv, done.stderr)
        assert done.stderr.startswith("software-dna: ") and "software-dna[server]" in done.stderr
        assert "Traceback" not in done.stderr


def test_version_and_help_still_answer(sdk_only: Path) -> None:
    version = _run(sdk_only, ["--version"])
    assert (version.returncode, version.stderr) == (0, "")
    assert version.stdout.startswith("software-dna ") and "unknown" not in version.stdout
    helped = _run(sdk_only, ["--help"])
    assert (helped.returncode, helped.stderr) == (0, "")
    assert "software-dna[server]" in helped.stdout
