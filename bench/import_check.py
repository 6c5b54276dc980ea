"""Cold start: a fresh process doing ``import software_dna`` plus one offline check().

Prints the median wall time of that, beside a fresh process that imports only
the SDK's third-party dependencies (the part we do not control) and a bare
``python -c pass``. The SDK's own share is (sdk - deps) / sdk; the target is at
most 20 %. This is a benchmark, not a test: it never fails on timing.

Usage: python bench/import_check.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from software_dna import LicenseClient  # noqa: E402
from software_dna.fingerprint import collect  # noqa: E402
from software_dna.wire.paseto import SecretKey  # noqa: E402
from tests.tokens import make_token  # noqa: E402

PRODUCT = "bench-product"

DEPS = (
    "import cryptography.hazmat.primitives.asymmetric.ed25519, "
    "cryptography.hazmat.primitives.ciphers.aead, cryptography.hazmat.primitives.kdf.hkdf, "
    "cryptography.hazmat.primitives.hashes, cryptography.exceptions, filelock"
)


# Installed packages come with compiled bytecode (pip compiles on install); this
# machine may set PYTHONDONTWRITEBYTECODE, which would recompile every module on
# every start and measure the compiler instead of the import.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def timed(code: str, runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=ENV)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    key = SecretKey.generate()
    with tempfile.TemporaryDirectory() as folder:
        client = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                               store_path=folder)
        client.install_token(make_token(key, PRODUCT, collect(PRODUCT)))
        sdk = (
            "import software_dna; "
            f"software_dna.LicenseClient(product={PRODUCT!r}, "
            f"public_keys=[{key.public_key.to_paserk()!r}], store_path={folder!r}).check()"
        )
        timed(sdk, 2)  # warm-up: writes the bytecode caches
        results: dict[str, list[float]] = {"bare": [], "deps": [], "sdk": []}
        for _ in range(args.runs):  # alternate so drift affects all alike
            results["bare"] += timed("pass", 1)
            results["deps"] += timed(DEPS, 1)
            results["sdk"] += timed(sdk, 1)
    med = {name: statistics.median(values) * 1000 for name, values in results.items()}
    share = (med["sdk"] - med["deps"]) / med["sdk"]
    print(f"median of {args.runs} fresh processes (ms):")
    print(f"  python -c pass                          {med['bare']:8.1f}")
    print(f"  import dependencies only                {med['deps']:8.1f}")
    print(f"  import software_dna + offline check()   {med['sdk']:8.1f}")
    print(f"  SDK's own share of the total: {share:.0%} (target: at most 20%)")


if __name__ == "__main__":
    main()
