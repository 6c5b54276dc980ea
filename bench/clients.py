"""Client SDKs side by side: software_dna, Cryptolens (``licensing``), LicenseSpring.

Each contestant does the same job as far as its public API allows, with no
hosted service: a license the bench signs (or writes) itself, checked offline.

- software_dna: a PASETO v4.public token signed with a generated Ed25519 key,
  stored in the encrypted local store; ``LicenseClient(...).check()``.
- Cryptolens: a license response (the JSON their server answers) signed with a
  generated RSA-2048 key, saved the way ``LicenseKey.save_as_string`` saves it;
  ``LicenseKey.load_from_string(pub, text, 30)`` (their offline loader: RSA
  signature, parse) + ``Helpers.IsOnRightMachine`` + ``Helpers.HasNotExpired``.
- LicenseSpring: a license file written by their own SDK
  (``LicenseManager.activate_license_offline`` on a response file the bench
  makes, guard file off); ``LicenseManager(conf).load_license()`` (decrypts the
  file: AES-GCM under a PBKDF2-SHA256 key derived from the shared key) +
  ``License.local_check()`` + ``is_valid()``. Their local check verifies no
  signature (the file's integrity is its AES-GCM tag): the output says so.

Figures, medians over ``--runs`` rounds (default 20); every round runs each
contestant once per figure, in a rotated order, so drift affects all alike:

1. cold start: a fresh process that imports the SDK and does one offline check
   (wall time of the whole process, interpreter start included);
2. warm check: the cheapest repeated offline check each API offers, in one
   process (per check; see "what each figure covers");
3. fingerprint: the machine code / hardware id, first call in a fresh process
   (after the import), then repeated calls (ours caches per process, so a
   fresh recomputation is shown too);
4. import alone (fresh process);

plus floors: a bare ``python -c pass`` and a bare Ed25519 verify with
``cryptography`` (a fresh process that imports it and verifies once, and one
verify in a warm process).

Run it in the bench environment (``make bench`` builds .venv-bench with the
other SDKs). A contestant that is not installed is reported as missing.
This is a benchmark, not a test: it never fails on timing.

Usage: python bench/clients.py [--runs N]
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ENV, machine_line, median, run_fresh, run_json, table

PRODUCT = "bench-product"
OURS, CRYPTOLENS, LICENSESPRING = "software_dna", "Cryptolens", "LicenseSpring"

# A measuring loop shared by the warm and fingerprint snippets: per-call seconds,
# median of 25 batches, each batch sized to last about 2 ms.
TIMER = """
import json as _json, statistics as _st, time as _t
def _per_call(fn):
    for _ in range(20):
        fn()
    t = _t.perf_counter(); fn(); one = max(_t.perf_counter() - t, 1e-7)
    n = max(1, min(10000, int(0.002 / one)))
    samples = []
    for _ in range(25):
        t = _t.perf_counter()
        for _ in range(n):
            fn()
        samples.append((_t.perf_counter() - t) / n)
    return _st.median(samples)
"""


class Contestant:
    """The code snippets that do one contestant's job in a fresh process."""

    def __init__(self, name: str, *, imports: str, setup: str, check: str, warm: str,
                 fingerprint_setup: str, fingerprint: str, fingerprint_fresh: str,
                 covers: dict[str, str]) -> None:
        self.name = name
        self.imports = imports          # import alone
        self.setup = setup              # build the checker (after imports)
        self.check = check              # one offline check (statements on one line)
        self.warm = warm                # the cheapest repeated check its API offers
        self.fingerprint_setup = fingerprint_setup
        self.fingerprint = fingerprint  # a call returning the machine code
        self.fingerprint_fresh = fingerprint_fresh  # a call that recomputes it
        self.covers = covers

    def cold_code(self) -> str:
        return f"{self.imports}\n{self.setup}\n{self.check}\n"

    def warm_code(self) -> str:
        return (f"{self.imports}\n{self.setup}\n{TIMER}\n"
                f"{self.check}\ndef _job():\n    {self.warm}\n"
                "print(_json.dumps({'warm': _per_call(_job)}))\n")

    def fingerprint_code(self) -> str:
        return (f"{TIMER}\n{self.fingerprint_setup}\n"
                f"_t0 = _t.perf_counter()\n_fp = {self.fingerprint}\n"
                "_first = _t.perf_counter() - _t0\n"
                f"assert _fp\n"
                f"_again = _per_call(lambda: {self.fingerprint})\n"
                f"_fresh = _per_call(lambda: {self.fingerprint_fresh})\n"
                "print(_json.dumps({'first': _first, 'again': _again, 'fresh': _fresh}))\n")


# --------------------------------------------------------------------------- set-up


def setup_ours(folder: Path) -> Contestant:
    from software_dna import LicenseClient
    from software_dna.fingerprint import collect
    from software_dna.wire.claims import Mode, Protection, issue_token
    from software_dna.wire.paseto import SecretKey

    key = SecretKey.generate()
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=1)
    fp = collect(PRODUCT)
    token = issue_token(
        key, issuer="bench", license_id="lic_bench", activation_id="act_bench",
        product=PRODUCT, fingerprint_id="fp_bench", fingerprint=dict(fp.components),
        fingerprint_algorithm=fp.algorithm, tolerance=1,
        mode=Mode.FULL, features=("pro",), protection=Protection.OPPORTUNISTIC,
        issued_at=now, refresh_by=now + timedelta(days=7), expires_at=now + timedelta(days=37),
        license_expires_at=now + timedelta(days=365), nonce=secrets.token_urlsafe(16),
    )
    store = folder / "ours"
    public = key.public_key.to_paserk()
    LicenseClient(product=PRODUCT, public_keys=[public], store_path=store).install_token(token)
    return Contestant(
        OURS,
        imports="import software_dna",
        setup=(f"_c = software_dna.LicenseClient(product={PRODUCT!r}, public_keys=[{public!r}], "
               f"store_path={str(store)!r})"),
        check="_c.check()",
        warm="_c.check()",
        fingerprint_setup="from software_dna.fingerprint import collect",
        # As the client calls it: with its store folder as the disk cache, so a fresh
        # process pays no scrypt (the first run ever on a machine does, once:
        # bench/fingerprint_cost.py measures that).
        fingerprint=f"collect({PRODUCT!r}, cache_dir={str(store)!r})",
        fingerprint_fresh=f"collect({PRODUCT!r}, refresh=True, cache_dir={str(store)!r})",
        covers={
            "check": "read the encrypted store (AES-GCM, machine-bound key), Ed25519 "
                     "signature, product (implicit assertion), kid, machine match, "
                     "not-before / expiry / refresh time, clock set-back mark",
            "warm": "check() again: store file unchanged (stat), the verified token "
                    "and machine match cached, every time-based check re-run",
            "fingerprint": "collect(): 4 components (machine id, OS/arch, CPU, one hash "
                           "per MAC), each a per-product scrypt hash read from this "
                           "machine's disk cache (the first run ever on a machine computes "
                           "them once: ~125 ms, bench/fingerprint_cost.py); cached per "
                           "process ('fresh' = refresh=True: the values re-read, the "
                           "hashes from the disk cache)",
        },
    )


def setup_cryptolens(folder: Path) -> Contestant:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    machine_code = subprocess.run(
        [sys.executable, "-c", "from licensing.methods import Helpers; "
                               "print(Helpers.GetMachineCode())"],
        check=True, capture_output=True, text=True, env=ENV).stdout.strip()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = private.public_key().public_numbers()

    def b64int(value: int) -> str:
        return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()

    public_xml = (f"<RSAKeyValue><Modulus>{b64int(numbers.n)}</Modulus>"
                  f"<Exponent>{b64int(numbers.e)}</Exponent></RSAKeyValue>")
    now = int(time.time())
    # The license object Cryptolens' Web API returns (fields as their LicenseKey reads them).
    license_object = {
        "ProductId": 4242, "ID": 1, "Key": "BENCH-KEYAA-BBBBB-CCCCC", "Created": now - 60,
        "Expires": now + 365 * 86400, "Period": 365, "F1": True, "F2": False, "F3": False,
        "F4": False, "F5": False, "F6": False, "F7": False, "F8": False, "Notes": None,
        "Block": False, "GlobalId": 1, "Customer": None,
        "ActivatedMachines": [{"IP": "127.0.0.1", "Mid": machine_code, "Time": now,
                               "FriendlyName": ""}],
        "TrialActivation": False, "MaxNoOfMachines": 1, "AllowedMachines": "",
        "DataObjects": [], "SignDate": now, "Reseller": None,
    }
    raw = json.dumps(license_object).encode("utf-8")
    signature = private.sign(raw, padding.PKCS1v15(), hashes.SHA256())
    saved = json.dumps({"signature": base64.b64encode(signature).decode(), "result": 0,
                        "message": "", "metadata": None,
                        "licenseKey": base64.b64encode(raw).decode()})
    path = folder / "cryptolens-license.json"
    path.write_text(saved, encoding="utf-8")
    return Contestant(
        CRYPTOLENS,
        imports="from licensing.models import LicenseKey\nfrom licensing.methods import Helpers",
        setup=f"_pub = {public_xml!r}\n_path = {str(path)!r}",
        check=("_lk = LicenseKey.load_from_string(_pub, open(_path, encoding='utf-8').read(), "
               "30); assert _lk is not None and Helpers.IsOnRightMachine(_lk) "
               "and Helpers.HasNotExpired(_lk)"),
        warm="assert Helpers.IsOnRightMachine(_lk) and Helpers.HasNotExpired(_lk)",
        fingerprint_setup="from licensing.methods import Helpers",
        fingerprint="Helpers.GetMachineCode()",
        fingerprint_fresh="Helpers.GetMachineCode()",
        covers={
            "check": "read the saved response, RSA-2048 PKCS#1 v1.5 signature (pure "
                     "Python pow), parse, machine code in the activated machines, expiry "
                     "(no store encryption, no clock set-back check)",
            "warm": "IsOnRightMachine + HasNotExpired on the LicenseKey loaded once (the "
                    "signature is not checked again; the machine code is recomputed)",
            "fingerprint": "GetMachineCode(): SHA-256 of /etc/machine-id + inode numbers "
                           "of 7 system folders; not cached",
        },
    )


def setup_licensespring(folder: Path) -> Contestant:
    api_key, shared_key = secrets.token_hex(16), secrets.token_urlsafe(24)
    files = folder / "licensespring"
    conf = (f"Configuration(product='benchprod', api_key={api_key!r}, "
            f"shared_key={shared_key!r}, file_path={str(files)!r}, is_guard_file_enabled=False)")
    imports = ("from licensespring.licensefile.config import Configuration\n"
               "from licensespring.licensefile.license_manager import LicenseManager")
    # Writes their license file with their own SDK: an offline activation from a
    # response file shaped like the one their service sends.
    make = f"""
import base64, json, os, datetime
{imports}
from licensespring.hardware import HardwareIdProviderSource
conf = {conf}
hw = HardwareIdProviderSource().get_id()
until = (datetime.datetime.utcnow() + datetime.timedelta(days=365)).isoformat() + 'Z'
resp = {{"request_id": "bench", "hardware_id": hw, "license_key": "BENCH-AAAA-BBBB-CCCC",
  "id": 1, "license_type": "time-limited", "validity_period": until,
  "product_details": {{"short_code": "benchprod", "prevent_vm": False, "product_id": 1,
     "product_name": "Bench", "allow_trial": False, "trial_days": 0,
     "authorization_method": "license-key", "metadata": {{}}}},
  "license_active": True, "license_enabled": True, "is_trial": False, "max_activations": 1,
  "times_activated": 1, "transfer_count": 0, "prevent_vm": False, "is_floating": False,
  "is_floating_cloud": False, "product_features": [], "custom_fields": [], "customer": {{}},
  "metadata": {{}}}}
os.makedirs({str(files)!r}, exist_ok=True)
path = os.path.join({str(files)!r}, 'ls_activation.lic')
with open(path, 'w') as f:
    f.write(base64.b64encode(json.dumps(resp).encode()).decode())
lic = LicenseManager(conf).activate_license_offline(path)
lic.local_check()
assert lic.is_valid()
"""
    subprocess.run([sys.executable, "-c", make], check=True, env=ENV,
                   capture_output=True, text=True)
    return Contestant(
        LICENSESPRING,
        imports=imports,
        setup=f"_conf = {conf}",
        check=("_lic = LicenseManager(_conf).load_license(); _lic.local_check(); "
               "assert _lic.is_valid()"),
        warm="_lic.local_check(); assert _lic.is_valid()",
        fingerprint_setup="from licensespring.hardware import HardwareIdProviderSource\n"
                          "_hw = HardwareIdProviderSource()",
        fingerprint="_hw.get_id()",
        fingerprint_fresh="_hw.get_id()",
        covers={
            "check": "load_license(): read + decrypt their license file (AES-GCM, key "
                     "from PBKDF2-SHA256, 100,000 iterations, per process), then "
                     "local_check(): product, hardware id (native library), status, VM, "
                     "floating, clock; no signature is verified by their local check",
            "warm": "local_check() + is_valid() on the License loaded once (the file "
                    "is not read again)",
            "fingerprint": "HardwareIdProviderSource().get_id() (their native hardware "
                           "id library; the recommended provider); not cached",
        },
    )


# --------------------------------------------------------------------------- floors


def floor_snippets() -> tuple[str, str]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    private = Ed25519PrivateKey.generate()
    message = secrets.token_bytes(600)  # about the size of a license token's signed bytes
    sig = private.sign(message)
    pub = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    cold = ("from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey\n"
            f"Ed25519PublicKey.from_public_bytes({pub!r}).verify({sig!r}, {message!r})\n")
    warm = (f"{TIMER}\nfrom cryptography.hazmat.primitives.asymmetric.ed25519 import "
            f"Ed25519PublicKey\n_k = Ed25519PublicKey.from_public_bytes({pub!r})\n"
            f"print(_json.dumps({{'warm': _per_call(lambda: _k.verify({sig!r}, "
            f"{message!r}))}}))\n")
    return cold, warm


# --------------------------------------------------------------------------- main


def fmt(value: float, unit: str) -> str:
    if value != value:  # NaN
        return "n/a"
    scale = {"ms": 1e3, "us": 1e6}[unit]
    number = value * scale
    return f"{number:,.0f}" if number >= 100 else f"{number:.1f}" if number >= 10 else \
        f"{number:.2f}"


def ratio(ours: float, theirs: float) -> str:
    if ours != ours or theirs != theirs or theirs <= 0:
        return "n/a"
    return f"{ours / theirs:.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds (medians over them)")
    args = parser.parse_args()
    runs = max(1, args.runs)

    with tempfile.TemporaryDirectory(prefix="sdna-bench-") as tmp:
        folder = Path(tmp)
        contestants = [setup_ours(folder)]
        missing: list[str] = []
        makers: list[tuple[str, str, Callable[[Path], Contestant]]] = [
            (CRYPTOLENS, "licensing", setup_cryptolens),
            (LICENSESPRING, "licensespring", setup_licensespring),
        ]
        for name, module, make in makers:
            if importlib.util.find_spec(module) is None:
                missing.append(f"{name} (pip package '{module}' is not installed here)")
                continue
            contestants.append(make(folder))
        cold_floor, warm_floor = floor_snippets()

        # Warm-up: bytecode caches written, files in the page cache.
        for c in contestants:
            run_fresh(c.cold_code())
            run_fresh(c.imports)
        run_fresh(cold_floor)

        keys = ("cold", "import", "warm", "fp_first", "fp_again", "fp_fresh")
        samples: dict[str, dict[str, list[float]]] = {
            c.name: {k: [] for k in keys} for c in contestants}
        floor: dict[str, list[float]] = {"pass": [], "ed_cold": [], "ed_warm": []}
        started = time.monotonic()
        for round_no in range(runs):
            shift = round_no % len(contestants)
            order = contestants[shift:] + contestants[:shift]
            floor["pass"].append(run_fresh("pass"))
            for c in order:
                samples[c.name]["cold"].append(run_fresh(c.cold_code()))
            floor["ed_cold"].append(run_fresh(cold_floor))
            for c in order:
                samples[c.name]["import"].append(run_fresh(c.imports))
            for c in order:
                samples[c.name]["warm"].append(run_json(c.warm_code())["warm"])
            floor["ed_warm"].append(run_json(warm_floor)["warm"])
            for c in order:
                got = run_json(c.fingerprint_code())
                samples[c.name]["fp_first"].append(got["first"])
                samples[c.name]["fp_again"].append(got["again"])
                samples[c.name]["fp_fresh"].append(got["fresh"])
        elapsed = time.monotonic() - started

    med = {name: {k: median(v) for k, v in figures.items()} for name, figures in samples.items()}
    fmed = {k: median(v) for k, v in floor.items()}
    others = [c.name for c in contestants if c.name != OURS]
    nan = float("nan")

    def row(label: str, key: str, unit: str) -> list[str]:
        cells = [label, fmt(med[OURS][key], unit)]
        for name in (CRYPTOLENS, LICENSESPRING):
            theirs = med[name][key] if name in med else nan
            cells += [fmt(theirs, unit), ratio(med[OURS][key], theirs)]
        return cells

    header = ["figure", "ours", CRYPTOLENS, "ours/CL", LICENSESPRING, "ours/LS"]
    rows = [
        row("cold start: import + 1 offline check (ms)", "cold", "ms"),
        row("warm check, per check (us)", "warm", "us"),
        row("fingerprint, first call (ms)", "fp_first", "ms"),
        row("fingerprint, repeated call (us)", "fp_again", "us"),
        row("fingerprint, recomputed (us)", "fp_fresh", "us"),
        row("import alone (ms)", "import", "ms"),
        ["floor: python -c pass (ms)", fmt(fmed["pass"], "ms"), "", "", "", ""],
        ["floor: fresh process, import cryptography + 1 Ed25519 verify (ms)",
         fmt(fmed["ed_cold"], "ms"), "", "", "", ""],
        ["floor: 1 Ed25519 verify, warm (us)", fmt(fmed["ed_warm"], "us"), "", "", "", ""],
    ]
    print(f"Client SDKs, medians of {runs} rounds (contestants alternated; "
          f"{elapsed:.0f} s of measuring)")
    print(machine_line())
    print()
    print(table(header, rows))
    print()
    for name in missing:
        print(f"missing: {name}")
    print("What each figure covers:")
    for c in contestants:
        print(f"  {c.name}:")
        for what, text in c.covers.items():
            print(f"    {what}: {text}")
    print("  cold start and import: wall time of a fresh process, interpreter start "
          "included (see the python -c pass floor).")
    print()
    ours = med[OURS]
    checks = [
        ("warm check <= 50 us", ours["warm"] <= 50e-6, fmt(ours["warm"], "us") + " us"),
        ("fingerprint first call <= 10 ms", ours["fp_first"] <= 10e-3,
         fmt(ours["fp_first"], "ms") + " ms"),
        ("fingerprint repeated call <= 1 ms", ours["fp_again"] <= 1e-3,
         fmt(ours["fp_again"], "us") + " us"),
    ]
    if CRYPTOLENS in med:
        checks.append(("cold start <= 1.0x Cryptolens",
                       ours["cold"] <= med[CRYPTOLENS]["cold"],
                       ratio(ours["cold"], med[CRYPTOLENS]["cold"])))
    if LICENSESPRING in med:
        checks.append(("cold start <= 0.25x LicenseSpring",
                       ours["cold"] <= 0.25 * med[LICENSESPRING]["cold"],
                       ratio(ours["cold"], med[LICENSESPRING]["cold"])))
    print("Targets (informational; a benchmark never fails):")
    for label, met, value in checks:
        print(f"  {'met    ' if met else 'NOT met'}  {label}: {value}")
    if others:
        print()


if __name__ == "__main__":
    main()
