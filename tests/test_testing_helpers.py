"""The vendor's test helpers: the pytest plugin and docs/testing.md, used as a vendor would.

tests/conftest.py enables ``software_dna.testing.plugin`` the way a vendor's
conftest does. Every docs/testing.md code block that defines a test is
extracted and executed here, so each example in the doc runs as written
(tracebacks point at the doc's lines); the other blocks are checked too.
The rest pins what the doc promises about the helpers themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna.testing import SimulatedClock
from software_dna.testing.plugin import Machines, Product

from . import conftest

DOC = Path(__file__).resolve().parents[1] / "docs" / "testing.md"
SRC = str(Path(__file__).resolve().parents[1] / "src")
PLUGIN_LINE = 'pytest_plugins = ["software_dna.testing.plugin"]'
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def doc_blocks() -> list[tuple[int, str]]:
    """The doc's ```python blocks: (line of the block's first line, code)."""
    text = DOC.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start(1)) + 1, m[1]) for m in _BLOCK.finditer(text)]


def doc_tests() -> dict[str, Callable[..., None]]:
    """Every test function the doc's blocks define, each block run in its own namespace."""
    found: dict[str, Callable[..., None]] = {}
    for line, code in doc_blocks():
        if "def test_" not in code:
            continue
        namespace: dict[str, Any] = {"__name__": __name__}
        # Padding keeps the doc's line numbers in tracebacks.
        exec(compile("\n" * (line - 1) + code, str(DOC), "exec"), namespace)
        for name, value in namespace.items():
            if name.startswith("test_"):
                assert name not in found, f"two examples in {DOC.name} are named {name}"
                found[name] = value
    return found


DOC_TESTS = doc_tests()
globals().update(DOC_TESTS)  # collected by pytest as this module's own tests


def test_every_doc_block_is_run_or_is_the_plugin_line() -> None:
    blocks = [code.strip() for _, code in doc_blocks()]
    assert PLUGIN_LINE in blocks
    others = [code for code in blocks if code != PLUGIN_LINE]
    assert others and all("def test_" in code for code in others)
    assert len(DOC_TESTS) == 9  # seats, 3 drift, clone, 2 containers, grace, copied store
    # The project's conftest enables the plugin as the doc tells a vendor to.
    assert "software_dna.testing.plugin" in conftest.pytest_plugins


def test_doc_is_linked_from_the_readme() -> None:
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert "/docs/testing.md)" in readme  # absolute: README is the package index page


# --------------------------------------------------------------------------- SDK-only install


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120, check=False)


def test_simulated_machine_imports_neither_pytest_nor_the_server(tmp_path: Path) -> None:
    done = run_python("""
        import sys
        import software_dna.testing
        from software_dna import LicenseClient
        machine = software_dna.testing.SimulatedMachine("home")
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("pytest", "_pytest", "fastapi", "sqlalchemy")
                       or m.startswith("software_dna.server"))
        print(heavy)
    """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_license_server_without_the_server_extra_says_how_to_install_it(
        tmp_path: Path) -> None:
    """A vendor's test run where fastapi is not installed (blocked before the plugin loads)."""
    (tmp_path / "conftest.py").write_text(textwrap.dedent(f"""
        import sys
        sys.modules["fastapi"] = None  # as if the server extra were not installed
        {PLUGIN_LINE}
    """))
    (tmp_path / "test_vendor.py").write_text(textwrap.dedent("""
        def test_needs_the_server(license_server):
            pass

        def test_machines_need_no_server(machines):
            assert machines("laptop").home.is_dir()
    """))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-p", "no:randomly", str(tmp_path)],
        cwd=tmp_path, env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=300, check=False)
    assert "1 passed, 1 error" in done.stdout, done.stdout + done.stderr
    assert 'pip install "software_dna[server]"' in done.stdout
    assert "missing: fastapi" in done.stdout


# --------------------------------------------------------------------------- fixtures


def test_machines_by_name_are_the_same_machine(machines: Machines, tmp_path: Path) -> None:
    laptop = machines("laptop", macs=["02:00:00:00:00:01"])
    assert machines("laptop") is laptop
    assert laptop.home == tmp_path / "machines" / "laptop" and laptop.home.is_dir()
    assert machines("desktop").home != laptop.home
    with pytest.raises(ValueError, match="exists"):
        machines("laptop", cpu="Other")
    with pytest.raises(ValueError, match="machine name"):
        machines("../escape")


def test_machines_clone_copies_identifiers_and_disk(machines: Machines) -> None:
    desk = machines("desk")
    (desk.home / "notes.txt").write_text("on the disk")
    vm = machines.clone(desk, "vm")
    assert machines("vm") is vm and vm.home != desk.home
    assert (vm.machine_id, vm.macs, vm.cpu, vm.os_arch) == (
        desk.machine_id, desk.macs, desk.cpu, desk.os_arch)
    assert (vm.home / "notes.txt").read_text() == "on the disk"
    with pytest.raises(ValueError, match="already"):
        machines.clone(desk, "desk")


def test_machines_account_shares_identifiers_not_files(machines: Machines) -> None:
    pc = machines("pc")
    (pc.home / "notes.txt").write_text("ana's")
    ben = machines.account(pc, "ben")
    assert (ben.machine_id, ben.macs, ben.cpu) == (pc.machine_id, pc.macs, pc.cpu)
    assert ben.home != pc.home and not (ben.home / "notes.txt").exists()


def test_machines_container_with_and_without_the_host_id(machines: Machines) -> None:
    host = machines("host")
    mounted = machines.container("box", host=host)
    bare = machines.container("bare")
    assert mounted.machine_id == host.machine_id and mounted.macs == []
    assert bare.machine_id is None and bare.macs == []
    assert machines("box") is mounted


def test_license_product_is_a_new_product_each_time(
        license_product: Callable[..., Product], license_server: Any) -> None:
    first, second = license_product(), license_product(fingerprint_tolerance=0)
    assert first.name != second.name
    assert first.public_keys and all(k.startswith("k4.public.") for k in first.public_keys)
    name, keys = second  # unpacks as (product id, public keys)
    assert license_server.admin.get_product(name)["fingerprint_tolerance"] == 0
    assert keys == license_server.admin.public_keys(name)


def test_app_clock_moves_only_when_told(app_clock: SimulatedClock) -> None:
    before = app_clock()
    assert before.tzinfo is not None and app_clock() == before
    assert app_clock.advance(hours=2) == before + timedelta(hours=2)
    assert app_clock.advance(timedelta(minutes=-30)) == before + timedelta(minutes=90)
    with pytest.raises(TypeError):
        app_clock.advance()
    with pytest.raises(TypeError):
        app_clock.advance(timedelta(1), hours=1)


def test_simulated_clock_needs_a_timezone() -> None:
    start = datetime(2030, 1, 1, tzinfo=timezone.utc)
    assert SimulatedClock(start)() == start
    with pytest.raises(ValueError, match="timezone"):
        SimulatedClock(datetime(2030, 1, 1))

