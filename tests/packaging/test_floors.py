"""The SDK's dependency floors: derived from pyproject.toml, and really installed where claimed.

``make test`` (tools/pythons.py) runs the SDK suite, this module included, on the
oldest claimed Python with every SDK runtime dependency at exactly its floor
and sets ``SOFTWARE_DNA_EXPECT_FLOORS``: this module then proves the suite ran
against the floors, not against whatever pip preferred.
"""

from __future__ import annotations

import os
from importlib.metadata import version

import pytest
from packaging.requirements import Requirement
from packaging.version import Version
from tools.pythons import FLOORS_ENV, floors, runtime_requirements


def _sdk_requirements() -> list[Requirement]:
    """pyproject.toml's runtime requirements (what the wheel's metadata is built from)."""
    return [Requirement(r) for r in runtime_requirements()]


def test_every_sdk_dependency_has_a_floor() -> None:
    """Invariant: each runtime dependency has one lower bound and no marker, so the floors
    environment can pin them all, and tools/pythons.py pins exactly those bounds."""
    requirements = _sdk_requirements()
    assert {r.name for r in requirements} >= {"cryptography", "requests", "platformdirs",
                                              "py-machineid", "filelock"}
    for requirement in requirements:
        bounds = [s for s in requirement.specifier if s.operator == ">="]
        assert len(bounds) == 1 and requirement.marker is None, str(requirement)
    assert floors() == {r.name: next(s.version for s in r.specifier if s.operator == ">=")
                        for r in requirements}


@pytest.mark.parametrize(("name", "excluded", "floor"), [
    # Before 43, loading the OpenSSL backend imported x509 (dataclasses, inspect, socket,
    # random...): the start-up budget (test_package) fails; 43.0.0 bundles a vulnerable OpenSSL.
    ("cryptography", "43.0.0", "43.0.1"),
    # Before 2.32.0 a session kept verify=False (CVE-2024-35195); 2.32.0-2.32.1 are yanked;
    # before 2.32.4 a crafted URL could leak .netrc credentials (CVE-2024-47081).
    ("requests", "2.32.3", "2.32.4"),
    # 4.6.0 honours XDG_* on macOS; 4.11.8 ignores a relative XDG_* value (the XDG rule):
    # both are the rules client/locations.py computes without platformdirs (test_locations).
    ("platformdirs", "4.11.7", "4.11.8"),
    # 0.5 raised a bare Exception where 0.6 raises MachineIdNotFound (a RuntimeError),
    # which the BSD fallback (fingerprint._machineid_library) catches.
    ("py-machineid", "0.5.1", "0.6.0"),
    # FileLock(..., poll_interval=) in the constructor (software_dna.files) came in 3.24.0.
    ("filelock", "3.23.0", "3.24.0"),
])
def test_floor_excludes_known_bad_versions(name: str, excluded: str, floor: str) -> None:
    specifier = next(r.specifier for r in _sdk_requirements() if r.name == name)
    assert excluded not in specifier
    assert floor in specifier


@pytest.mark.skipif(os.environ.get(FLOORS_ENV) != "1",
                    reason=f"not a floors environment ({FLOORS_ENV} unset; make test sets it)")
def test_floors_environment_holds_exactly_the_floors() -> None:
    """In the floors environment every SDK dependency is installed at exactly its floor."""
    pins = floors()
    assert pins
    for name, floor in pins.items():
        assert Version(version(name)) == Version(floor), name
