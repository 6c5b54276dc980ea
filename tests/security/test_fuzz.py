"""The atheris (libFuzzer) target fuzz/fuzz_token.py, run for a bounded number of inputs.

Coverage-guided: libFuzzer mutates towards new branches of the token parser,
the claims layer and check(). The target itself raises on any violation of the
property (a license for anything but the genuine token, or an exception that is
not a LicenseError), which makes libFuzzer exit non-zero.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.security._family import Scale, Tally

TARGET = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_token.py"


def run_fuzzer(runs: int) -> tuple[int, int, str]:
    """Run the target for ``runs`` inputs: (exit status, inputs run, output tail)."""
    with tempfile.TemporaryDirectory(prefix="sdna-fuzz-") as corpus:
        src = str(TARGET.parents[1] / "src")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (src, os.environ.get("PYTHONPATH")) if p)}
        done = subprocess.run(
            [sys.executable, str(TARGET), f"-runs={runs}", "-max_len=4096", corpus],
            capture_output=True, text=True, env=env, timeout=max(120, runs // 20), check=False)
    output = done.stdout + done.stderr
    found = re.search(r"Done (\d+) runs", output)
    return done.returncode, int(found.group(1)) if found else 0, output[-2000:]


def family(scale: Scale) -> Tally:
    """Coverage-guided fuzzing: 300 inputs (short) or 200,000 (long)."""
    tally = Tally("fuzz (atheris)")
    status, runs, tail = run_fuzzer(scale.pick(300, 200_000))
    tally.tried = runs
    tally.expected = runs if status == 0 else max(0, runs - 1)
    if status != 0 or runs == 0:
        tally.unexpected += 1
        tally.notes.append(f"libFuzzer exit {status}: {tail}")
    return tally


def test_atheris_short_run() -> None:
    pytest.importorskip("atheris", reason="atheris is not installed (Linux dev extra)")
    family(Scale.SHORT).assert_clean()
