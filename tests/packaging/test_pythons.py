"""tools/pythons.py: which Pythons `make test` runs, what runs on each, and a missing one."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from tools import pythons
from tools.pythons import Plan, claimed_versions, find_python, plans

ROOT = Path(__file__).resolve().parents[2]


def test_claimed_versions_are_the_classifiers_and_start_at_requires_python() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    versions = claimed_versions()
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert re.findall(r'^requires-python = "(.*)"$', text, re.MULTILINE) == [f">={versions[0]}"]


def test_every_claimed_python_runs_the_sdk_and_the_server_suites() -> None:
    versions = ["3.10", "3.11", "3.12", "3.13"]
    assert plans(versions, skip="3.11") == [
        Plan("3.10", True, ("sdk", "server")),
        Plan("3.12", False, ("sdk", "server")),
        Plan("3.13", False, ("sdk", "server")),
    ]
    # .venv on the newest: that one is not run again (its server suite ran there).
    assert [p.version for p in plans(versions, skip="3.13")] == ["3.10", "3.11", "3.12"]
    # .venv on the oldest: the floors still run (.venv has the newest dependencies),
    # the server suite does not run twice.
    assert plans(versions, skip="3.10")[0] == Plan("3.10", True, ("sdk",))


def test_each_python_has_its_own_environment() -> None:
    assert Plan("3.12", False, ("sdk",)).venv == ROOT / ".venv-py312"


@pytest.fixture
def no_python_3_99(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No python3.99 on PATH or under PYENV_ROOT."""
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))


@pytest.mark.usefixtures("no_python_3_99")
def test_missing_python_is_reported_and_skipped_outside_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert find_python("3.99") is None
    assert pythons.test(None, None, [], versions=["3.99"]) == 0
    out = capsys.readouterr().out
    assert "MISSING Python 3.99" in out and "did not run" in out


@pytest.mark.usefixtures("no_python_3_99")
def test_missing_python_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CI", "true")
    assert pythons.test(None, None, [], versions=["3.99"]) == 1
    assert "FAILED (CI=true) Python 3.99" in capsys.readouterr().out


def test_a_python_on_path_that_is_another_version_is_not_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shim named python3.99 that is really another interpreter is refused."""
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "python3.99").symlink_to(sys.executable)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    assert find_python("3.99") is None


def test_floors_pin_each_dependency_at_its_lower_bound() -> None:
    pins = pythons.floors({"dependencies": ["a>=1.2", "b-c[x] >= 3", "d>=0.6"]})
    assert pins == {"a": "1.2", "b-c": "3", "d": "0.6"}
    with pytest.raises(pythons.ToolError, match="no single '>=' floor"):
        pythons.floors({"dependencies": ["e<2"]})
