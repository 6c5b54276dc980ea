"""Crash safety: a process killed with SIGKILL at a random moment while writing the store.

Afterwards the store must always decrypt to either the old or the new
document (never a mix, never a torn file), and the next writer must not be
blocked by the dead process's lock.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from software_dna.store import Store
from tests.security._family import Scale, Tally

KEY = b"crash-safety-key-material-32-byt"
PRODUCT = "sec-crash"

# The child: rewrites the store as fast as it can; document n has n * 37 % 4000 padding bytes,
# so any mix of two documents is detectable. Prints its first written n, then loops.
_CHILD = """
import sys
from pathlib import Path
from software_dna.store import Store
store = Store(Path(sys.argv[1]), product=sys.argv[2], key_material=sys.argv[3].encode())
n = int(sys.argv[4])
store.write({"n": n, "pad": "x" * (n * 37 % 4000)})
print("ready", flush=True)
while True:
    n += 1
    with store.transaction() as data:
        data["n"] = n
        data["pad"] = "x" * (n * 37 % 4000)
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH")) if p)}


def kill_while_writing(path: Path, start: int, rng: random.Random) -> tuple[bool, str]:
    """Start a writer, SIGKILL it after a random delay; check the store. (ok, description)."""
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path), PRODUCT, KEY.decode(), str(start)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
    try:
        assert child.stdout is not None
        ready = child.stdout.readline()
        if ready.strip() != b"ready":
            return False, f"writer did not start: {child.stderr.read()[-300:]!r}"  # type: ignore[union-attr]
        time.sleep(rng.random() * 0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()
    store = Store(path, product=PRODUCT, key_material=KEY)
    data = store.read()
    if not isinstance(data, dict) or not isinstance(data.get("n"), int):
        return False, f"store after the kill: {data!r}"[:200]
    n = data["n"]
    if n < start or data.get("pad") != "x" * (n * 37 % 4000):
        return False, f"torn or mixed document: n={n}"
    store.lock_timeout = 5.0
    store.write({"n": n, "pad": "x" * (n * 37 % 4000)})  # the dead writer's lock is free
    return True, f"n={n}"


def family(scale: Scale) -> Tally:
    """SIGKILL a store writer at random points (200 times in the long run)."""
    tally = Tally("crash safety")
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="sdna-crash-") as folder:
        path = Path(folder) / f"{PRODUCT}.license"
        start = 0
        for i in range(scale.pick(8, 200)):
            try:
                ok, what = kill_while_writing(path, start, rng)
            except Exception as exc:  # StoreCorrupted, a timeout ...: all unexpected
                ok, what = False, f"{type(exc).__name__}: {exc}"
            tally.check(ok, f"seed {seed} kill #{i}: {what}")
            start += 100_000
    return tally


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_while_writing_leaves_old_or_new_content() -> None:
    family(Scale.SHORT).assert_clean()
