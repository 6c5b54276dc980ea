"""``make stress``: every family of tests/security at full scale, one line each.

Usage: ``python -m tests.stress [FAMILY ...]`` (names as printed, or module
names such as ``test_token_attacks``). Prints one line per family with the
cases tried, refused (or held) as expected, and unexpected, then the first
unexpected cases; exits 1 if any case was unexpected, 2 if a family crashed.
"""

from __future__ import annotations

import importlib
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable

from tests.security._family import Scale, Tally

#: The families, in the order of the issue (module under tests/security).
FAMILIES = [
    "test_token_attacks",
    "test_rollback",
    "test_store_faults",
    "test_crash_safety",
    "test_concurrency",
    "test_network_faults",
    "test_server_faults",
    "test_schema_fuzz",
    "test_authorization",
    "test_password_guessing",
    "test_bad_bodies",
    "test_personal_data",
    "test_fuzz",
    "test_identity_invariants",
    "test_public_surface_cost",
    "test_hostile_server",
    "test_outbox",
    "node-failure",
]

#: Families kept beside what they test rather than under tests/security: name -> module.
ELSEWHERE = {"node-failure": "tests.deploy.test_high_availability"}


def _load(name: str) -> Callable[[Scale], Tally] | None:
    module_name = ELSEWHERE.get(name, f"tests.security.{name}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    family: Callable[[Scale], Tally] = module.family
    return family


def main(argv: list[str]) -> int:
    """Run the families named in ``argv`` (default all); returns the exit status."""
    # The SDK's rollback witness goes to a private folder, not the real home.
    os.environ.setdefault("SOFTWARE_DNA_STATE_HOME", tempfile.mkdtemp(prefix="sdna-stress-"))
    wanted = argv or FAMILIES
    status = 0
    tallies: list[Tally] = []
    for name in FAMILIES:
        family = _load(name)
        if family is None:
            continue
        if argv and name not in wanted and name.removeprefix("test_") not in wanted:
            continue
        started = time.monotonic()
        try:
            tally = family(Scale.LONG)
        except Exception:
            traceback.print_exc()
            tally = Tally(name.removeprefix("test_"))
            tally.check(False, "the family crashed (traceback above)")
            status = 2
        tallies.append(tally)
        print(f"{tally.line()}   ({time.monotonic() - started:.0f} s)", flush=True)
    for tally in tallies:
        for note in tally.notes:
            print(f"  unexpected in {tally.family}: {note}")
    if any(t.unexpected for t in tallies) and status == 0:
        status = 1
    print("stress: " + ("all as expected" if status == 0 else "UNEXPECTED RESULTS"))
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
