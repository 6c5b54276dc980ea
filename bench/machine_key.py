"""What the machine key costs the app: creating it, opening it at a start, after drift.

The local store's key comes from a random machine key kept in a keyring
(docs/fingerprint.md, "The machine key"). Measured at the production scrypt
cost on a simulated machine (one machine id, two network cards, OS, CPU):

1. create: the first store write on a machine (a new key, one scrypt per
   component value to wrap it);
2. open, nothing changed: what every later start pays (the quick wrap: one
   HMAC, no scrypt), the machine's reading included;
3. open after a network card changed: quick wrap, then a re-wrap that
   hashes only the new address;
4. open after the machine id changed: the slow path (one scrypt per current
   value) and a re-wrap.

Not a test: nothing fails on timing.

Usage: python bench/machine_key.py [--runs N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, median, table

from software_dna.fingerprint import PRODUCTION_COST
from software_dna.testing import SimulatedMachine

PRODUCT = "bench-product"


def _timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return (time.perf_counter() - start) * 1000


def one_round(folder: Path) -> dict[str, float]:
    machine = SimulatedMachine(folder / "machine", macs=["00:1b:21:00:00:01", "3c:22:fb:12:34:56"],
                               cost=PRODUCTION_COST)
    keyring = [folder / "bench.keyring"]

    def open_key() -> None:
        machine.forget()  # a new process: nothing cached
        machine.machine_key(PRODUCT, keyring, create=False)

    figures = {"create": _timed(lambda: machine.machine_key(PRODUCT, keyring, create=True))}
    figures["open"] = _timed(open_key)
    machine.set(macs=["00:1b:21:00:00:01", "a4:bb:6d:00:00:02"])
    figures["card"] = _timed(open_key)
    machine.set(machine_id="0f" * 16)
    figures["machine_id"] = _timed(open_key)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rounds = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as folder:
            rounds.append(one_round(Path(folder)))
    labels = {
        "create": "create (first store write on a machine)",
        "open": "open at a start, nothing changed",
        "card": "open after a network card changed (+ re-wrap)",
        "machine_id": "open after the machine id changed (+ re-wrap)",
    }
    rows = [[label, f"{median([r[key] for r in rounds]):.1f}"] for key, label in labels.items()]
    print(machine_line())
    print(f"machine key, production scrypt cost, median of {args.runs} rounds")
    print(table(["figure", "ms"], rows))


if __name__ == "__main__":
    main()
