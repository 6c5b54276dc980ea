"""Concurrency: 8 processes x 4 threads doing check(), refresh() and settings writes on one store.

No corruption (the store always decrypts), no deadlock (every process ends
in time), no lost license (check() works at the end), no false rollback
alarm; every call ends in a License or a LicenseError. 30 s in ``make
stress``, a few seconds in ``make test``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from software_dna import LicenseClient, LicenseError, StoreError
from software_dna.server.testing import LocalServer
from tests.security._family import Scale, Tally

# One worker process: 4 threads for `seconds`, then prints its counts as JSON.
_WORKER = """
import json, sys, threading, time, random
from software_dna import LicenseClient, LicenseError, StoreError
args = json.loads(sys.argv[1])
client = LicenseClient(product=args["product"], public_keys=args["keys"],
                       server_url=args["url"], store_path=args["store"], timeout=10.0)
counts = {"ok": 0, "license_errors": 0, "store_errors": [], "other": []}
lock = threading.Lock()
ends = time.monotonic() + args["seconds"]
def run(k):
    rng = random.Random(k)
    while time.monotonic() < ends:
        op = rng.choice(("check", "check", "refresh", "settings"))
        try:
            if op == "check":
                client.check()
            elif op == "refresh":
                client.refresh()
            else:
                client.settings = {"worker": args["n"], "thread": k, "at": time.time()}
            with lock:
                counts["ok"] += 1
        except StoreError as exc:
            with lock:
                counts["store_errors"].append(f"{op}: {type(exc).__name__}: {exc}"[:300])
        except LicenseError:
            with lock:
                counts["license_errors"] += 1
        except BaseException as exc:
            with lock:
                counts["other"].append(f"{op}: {type(exc).__name__}: {exc}"[:300])
threads = [threading.Thread(target=run, args=(k,)) for k in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(json.dumps(counts), flush=True)
"""


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (src, os.environ.get("PYTHONPATH")) if p)}


def hammer(server: LocalServer, store: Path, seconds: float, processes: int = 8) -> Tally:
    """Activate once, then run ``processes`` x 4 threads on the store for ``seconds``."""
    tally = Tally("concurrency")
    product = "cc-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, features=["pro"])
    key = server.admin.issue_license(product)["license_key"]
    args: dict[str, Any] = {"product": product, "keys": keys, "url": server.url,
                            "store": str(store), "seconds": seconds}
    with LicenseClient(product=product, public_keys=keys, server_url=server.url,
                       store_path=store) as first:
        first.activate(key)
    workers = [subprocess.Popen(  # our interpreter, our code
        [sys.executable, "-c", _WORKER, json.dumps({**args, "n": n})],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), text=True)
        for n in range(processes)]
    for n, worker in enumerate(workers):
        try:
            out, err = worker.communicate(timeout=seconds + 90)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()
            tally.check(False, f"process {n} did not finish: deadlock?")
            continue
        try:
            counts = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            tally.check(False, f"process {n} crashed: {err[-400:]}")
            continue
        tally.tried += counts["ok"] + counts["license_errors"]
        tally.expected += counts["ok"] + counts["license_errors"]
        for note in counts["store_errors"] + counts["other"]:
            tally.check(False, f"process {n}: {note}")
    # Nothing lost: the store decrypts and the license is there, offline and online.
    with LicenseClient(product=product, public_keys=keys, server_url=server.url,
                       store_path=store) as last:
        try:
            tally.check(last.check().product == product, "check() after the run")
            tally.check(isinstance(last.settings, dict), "settings after the run")
        except LicenseError as exc:
            tally.check(False, f"after the run: {type(exc).__name__}: {exc}")
    return tally


def family(scale: Scale) -> Tally:
    """8 processes x 4 threads on one store: 30 s (long) or 3 s (short)."""
    with tempfile.TemporaryDirectory(prefix="sdna-cc-") as folder, \
            LocalServer(Path(folder) / "server") as server:
        return hammer(server, Path(folder) / "store", scale.pick(3, 30))


def test_8_processes_x_4_threads_check_refresh_settings(server: LocalServer,
                                                        tmp_path: Path) -> None:
    tally = hammer(server, tmp_path / "store", 3.0)
    tally.assert_clean()
    assert tally.tried > 8  # every process got work done


def test_threads_in_one_process_share_one_client(server: LocalServer, tmp_path: Path) -> None:
    """The same client object from 16 threads: a License or a LicenseError, nothing else."""
    product = "cc1-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product)
    key = server.admin.issue_license(product)["license_key"]
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path)
    client.activate(key)
    problems: list[str] = []
    ends = time.monotonic() + 1.5

    def run(k: int) -> None:
        while time.monotonic() < ends:
            try:
                if k % 3 == 0:
                    client.refresh()
                elif k % 3 == 1:
                    client.settings = {"k": k}
                else:
                    client.check()
            except StoreError as exc:
                problems.append(repr(exc))
            except LicenseError:
                pass
            except Exception as exc:
                problems.append(repr(exc))

    threads = [threading.Thread(target=run, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert problems == []
    assert client.check().product == product
    client.close()
