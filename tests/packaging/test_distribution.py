"""The published files: the sdist and the wheel built from this checkout, as an index gets them.

Builds both once for the module with ``python -m build`` (the sdist, then the
wheel from the sdist, in the isolated build environment pyproject.toml
declares), then checks what a package index and a vendor see: the licence in
both, docs and examples in the sdist, the metadata fields, ``twine check
--strict``, a long description with no relative link, and a wheel that installs
into a fresh virtual environment where ``import software_dna`` works.
Real processes: the build, twine and pip are what is tested. Needs the package
index (or pip's cache) for the build requirements and the SDK's dependencies.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import venv
import zipfile
from collections.abc import Iterator
from email.message import Message
from email.parser import Parser
from pathlib import Path

import pytest
from tools.pythons import claimed_versions

ROOT = Path(__file__).resolve().parents[2]
NAME = "software_dna"
# Without PYTHONPATH: a checkout's src on it would make pip find the package "installed".
CLEAN_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """``{"sdist": path, "wheel": path}``, built once for the module."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    sdists = list(out.glob(f"{NAME}-*.tar.gz"))
    wheels = list(out.glob(f"{NAME}-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in out.iterdir())
    yield {"sdist": sdists[0], "wheel": wheels[0]}


def _sdist_names(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        # Drop the top folder ("software_dna-X/").
        return {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}


def _wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(archive.read(name).decode("utf-8"))


def test_licence_is_in_the_sdist_and_the_wheel(dist: dict[str, Path]) -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    with tarfile.open(dist["sdist"]) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("/LICENSE")
                      and m.name.count("/") == 1)
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read().decode("utf-8") == licence
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = [n for n in archive.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
        assert len(names) == 1, archive.namelist()
        assert archive.read(names[0]).decode("utf-8") == licence


def test_sdist_carries_docs_examples_and_catalogue_sources(dist: dict[str, Path]) -> None:
    names = _sdist_names(dist["sdist"])
    for folder in ("docs", "examples"):
        expected = {p.relative_to(ROOT).as_posix() for p in (ROOT / folder).rglob("*")
                    if p.is_file() and "__pycache__" not in p.parts}
        assert expected, folder
        assert expected <= names, sorted(expected - names)
    assert {"docs/installation.md", "README.md", "setup.py", "tools/catalogues.py"} <= names
    assert any(n.endswith(".po") for n in names)
    # Build artefacts stay out (compiled catalogues, bytecode), and so does the test suite.
    assert not [n for n in names if n.endswith((".mo", ".pyc")) or "__pycache__" in n]
    assert not [n for n in names if n.startswith("tests/")]


def test_wheel_holds_the_package_and_nothing_else(dist: dict[str, Path]) -> None:
    with zipfile.ZipFile(dist["wheel"]) as archive:
        names = archive.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {NAME, next(t for t in tops if t.endswith(".dist-info"))}
    assert f"{NAME}/py.typed" in names
    assert any(n.endswith("LC_MESSAGES/software_dna.mo") for n in names)  # compiled at build
    assert not [n for n in names if n.endswith((".po", ".pot", ".cfg"))]


def test_metadata_is_complete(dist: dict[str, Path]) -> None:
    meta = _wheel_metadata(dist["wheel"])
    assert meta["Name"] == "software-dna"
    assert meta["License-Expression"] == "LicenseRef-Proprietary"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert meta["Requires-Python"] == ">=3.10"
    assert meta["Description-Content-Type"] == "text/markdown"
    assert meta["Summary"] and meta["Keywords"] and meta["Author"]
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= set(urls)
    assert all(u.startswith("https://") for u in urls.values())
    classifiers = set(meta.get_all("Classifier") or [])
    # Every claimed version is a classifier, and the claims start at Requires-Python.
    versions = claimed_versions()
    assert versions[0] == "3.10"
    for version in versions:
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert {"Typing :: Typed", "Operating System :: OS Independent"} <= classifiers
    assert any(c.startswith("Topic :: ") for c in classifiers)
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"server", "test"} <= extras


def test_twine_check_passes(dist: dict[str, Path]) -> None:
    """The long description renders on a package index (twine uses readme_renderer)."""
    out = subprocess.run([sys.executable, "-m", "twine", "check", "--strict",
                          str(dist["sdist"]), str(dist["wheel"])],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


# A Markdown link or image target: ](target) or ](<target>).
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)")


def test_long_description_has_no_relative_link(dist: dict[str, Path]) -> None:
    """Relative links break on a package index: every link is absolute or an anchor."""
    body = _wheel_metadata(dist["wheel"]).get_payload()
    assert isinstance(body, str) and "pip install" in body
    targets = _LINK.findall(body)
    assert targets
    relative = [t for t in targets if not t.startswith(("https://", "http://", "#", "mailto:"))]
    assert relative == []


def test_wheel_installs_into_a_fresh_venv_and_imports(
    dist: dict[str, Path], tmp_path: Path
) -> None:
    """The wheel alone (no server extra), as a vendor's app installs it, in a new venv."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet",
                    "--disable-pip-version-check", str(dist["wheel"])],
                   check=True, capture_output=True, text=True, timeout=600, env=CLEAN_ENV)
    code = (
        "import importlib.metadata as m, software_dna, sys\n"
        "from software_dna.wire.paseto import SecretKey\n"
        "assert software_dna.__file__.startswith(sys.prefix), software_dna.__file__\n"
        "key = SecretKey.generate()\n"
        "print(m.version('software-dna'), key.public_key.to_paserk()[:10])\n"
    )
    out = subprocess.run([str(python), "-I", "-c", code], capture_output=True, text=True,
                         timeout=120, check=False, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    version = dist["wheel"].name.split("-")[1]
    assert out.stdout.split() == [version, "k4.public."]
