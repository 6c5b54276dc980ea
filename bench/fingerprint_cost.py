"""What a fingerprint hash costs an attacker, and what collection costs the app.

A MAC address is 24 bits of manufacturer prefix (public) and 24 bits the
attacker must search: 2**24 candidates. Each costs one component hash
(scrypt, n=2**14, r=8, p=1, salted per product), so recovering one MAC from
its hash costs ``2**24 / (hashes per second on one core)`` per product,
printed here in core-days (issue 12 requires at least one core-day). The
machine id (128 random bits) is out of reach either way; the CPU model and
OS are public classes, not secrets.

Also measured: ``collect()`` cold (no cache: one scrypt per component
value), cold with an empty disk cache (the same, plus the write), and warm
from the disk cache (a new process on a machine that already ran the app:
no scrypt at all). Not a test: nothing fails on timing.

Usage: python bench/fingerprint_cost.py [--seconds S] [--runs N]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine_line, median, table

from software_dna import fingerprint as fp
from software_dna.fingerprint import _hashing

PRODUCT = "bench-product"
#: Addresses behind one manufacturer prefix (OUI): the low 24 bits.
PREFIX_SPACE = 2**24
REQUIRED_CORE_DAYS = 1.0


def hashes_per_second(seconds: float) -> tuple[float, int]:
    """Component hashes per second on this core (production cost), and how many were run."""
    n = _hashing.cost()
    assert n == fp.PRODUCTION_COST, "run without scrypt_cost_for_tests"
    count = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < seconds or count < 3:
        # one candidate MAC per call, as a brute-force search would try them
        _hashing.component_hash(PRODUCT, "mac", f"a4:bb:6d:00:{count >> 8 & 255:02x}:"
                                f"{count & 255:02x}", n)
        count += 1
        elapsed = time.perf_counter() - start
    return count / elapsed, count


def timed_collect(runs: int, cache: Path | None, *, reset_cache_dir: bool) -> float:
    """Median seconds of ``collect()`` in a "new process" (per-process cache cleared)."""
    samples = []
    for _ in range(runs):
        if reset_cache_dir and cache is not None:
            for path in cache.glob("fingerprint-v2-*.json"):
                path.unlink()
        fp._reset_caches()
        start = time.perf_counter()
        fp.collect(PRODUCT, cache_dir=cache)
        samples.append(time.perf_counter() - start)
    return median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long to measure the hash rate (default 5)")
    parser.add_argument("--runs", type=int, default=5, help="collect() rounds (medians)")
    args = parser.parse_args()

    print("Fingerprint hash cost (bench/fingerprint_cost.py)")
    print(machine_line())
    # scrypt's memory cost is r * n * 128 bytes (16 MiB); say what one call needs.
    print(f"scrypt n={_hashing.cost()}, r=8, p=1: "
          f"{128 * 8 * _hashing.cost() // 2**20} MiB of memory per hash, one core")
    rate, count = hashes_per_second(args.seconds)
    seconds = PREFIX_SPACE / rate
    core_days = seconds / 86400
    print()
    print(table(
        ["brute force", "value"],
        [
            ["hashes per second (one core)", f"{rate:.1f} ({count} hashes)"],
            ["one hash", f"{1000 / rate:.1f} ms"],
            ["one manufacturer prefix (2**24 MACs)", f"{core_days:.1f} core-days per product"],
            ["on 1,000 cores", f"{seconds / 1000 / 3600:.1f} hours per product"],
            ["required (issue 12)", f">= {REQUIRED_CORE_DAYS:.0f} core-day: "
             + ("met" if core_days >= REQUIRED_CORE_DAYS else "NOT MET on this machine")],
        ],
    ))
    # A sanity check of the figure: hashlib's own scrypt, the same parameters.
    start = time.perf_counter()
    hashlib.scrypt(b"x", salt=b"y", n=fp.PRODUCTION_COST, r=8, p=1, maxmem=64 * 2**20)
    print(f"(one bare hashlib.scrypt call: {(time.perf_counter() - start) * 1000:.1f} ms)")

    runs = max(1, args.runs)
    with tempfile.TemporaryDirectory(prefix="sdna-fp-") as folder:
        cache = Path(folder)
        cold = timed_collect(runs, None, reset_cache_dir=False)
        cold_disk = timed_collect(runs, cache, reset_cache_dir=True)
        fp._reset_caches()
        fp.collect(PRODUCT, cache_dir=cache)  # fill the disk cache once
        warm = timed_collect(runs, cache, reset_cache_dir=False)
        fp._reset_caches()
        values = len(fp.collect(PRODUCT).components)
    start = time.perf_counter()
    for _ in range(1000):
        fp.collect(PRODUCT)
    cached = (time.perf_counter() - start) / 1000
    print()
    print(table(
        ["collect() on this machine", "median"],
        [
            ["cold, no disk cache (one scrypt per value)", f"{cold * 1000:.0f} ms"],
            ["cold, empty disk cache (hash + write)", f"{cold_disk * 1000:.0f} ms"],
            ["new process, warm disk cache (no scrypt)", f"{warm * 1000:.2f} ms"],
            ["same process, cached", f"{cached * 1e6:.1f} us"],
        ],
    ))
    print(f"({values} components; {runs} rounds each)")


if __name__ == "__main__":
    main()
