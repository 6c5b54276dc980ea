"""What the metrics middleware costs per request (CPU on the event loop).

A bare ASGI app that answers at once (the validate route's template in its
scope, as the router leaves it) is called in a loop, with and without
``MetricsMiddleware`` around it; the difference per request is the
middleware's cost: two clock reads, the label look-up, a counter and a
histogram, the validation counter, and on an error answer the parse of its
code.  Measured in memory (one worker) and in multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``: the values live in memory-mapped files), each in
a fresh process because prometheus-client picks its storage at import.  With
``--access-log`` the JSON access line (``SOFTWARE_DNA_LOG_FORMAT=json``) is
added, written to /dev/null.  Not a test: nothing fails on timing.

Usage: python bench/metrics_cost.py [--requests N] [--runs R]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ENV, machine_line, table

_CHILD = r"""
import asyncio, json, logging, sys, time
from software_dna.server.api.metrics import MetricsMiddleware, MULTIPROCESS
from software_dna.server.logconfig import JsonFormatter

N, RUNS, STATUS, ACCESS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
if ACCESS:
    handler = logging.StreamHandler(open("/dev/null", "w"))
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("software_dna.server.access")
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False

class Route:
    path = "/v1/activations/{activation_id}/validate"

ROUTE = Route()
BODY = (b'{"token":"' + b"x" * 400 + b'"}' if STATUS < 400 else
        b'{"error":{"code":"unauthorized","message":"Missing or wrong activation secret."}}')
START = {"type": "http.response.start", "status": STATUS,
         "headers": [(b"content-type", b"application/json")]}
END = {"type": "http.response.body", "body": BODY}

async def bare(scope, receive, send):
    scope["route"] = ROUTE
    await send(START)
    await send(END)

async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}

async def send(message):
    pass

def scope():
    return {"type": "http", "method": "POST", "path": "/v1/activations/act_x/validate",
            "headers": []}

async def timed(app):
    start = time.perf_counter()
    for _ in range(N):
        await app(scope(), receive, send)
    return (time.perf_counter() - start) / N

async def main():
    wrapped = MetricsMiddleware(bare, access_log=ACCESS)
    await timed(bare); await timed(wrapped)  # warm up
    bare_t, with_t = [], []
    for _ in range(RUNS):
        bare_t.append(await timed(bare))
        with_t.append(await timed(wrapped))
    bare_t.sort(); with_t.sort()
    print(json.dumps({"bare": bare_t[len(bare_t) // 2], "with": with_t[len(with_t) // 2],
                      "multiprocess": MULTIPROCESS}))

asyncio.run(main())
"""


def measure(requests: int, runs: int, status: int, access: bool,
            multiproc: str | None) -> dict[str, float]:
    """Median seconds per request, bare and with the middleware, in a fresh process."""
    env = dict(ENV)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    if multiproc is not None:
        env["PROMETHEUS_MULTIPROC_DIR"] = multiproc
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(requests), str(runs), str(status),
         "1" if access else "0"],
        check=True, env=env, capture_output=True, text=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per run")
    parser.add_argument("--runs", type=int, default=7, help="runs (the median is shown)")
    args = parser.parse_args()
    print(machine_line())
    rows = []
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as folder:
        for mode in ("in memory", "multiprocess"):
            for status, access in ((200, False), (401, False), (200, True)):
                multiproc = None
                if mode == "multiprocess":
                    multiproc = os.path.join(folder, f"{status}-{int(access)}")
                    os.makedirs(multiproc)
                figures = measure(args.requests, args.runs, status, access, multiproc)
                cost = (figures["with"] - figures["bare"]) * 1e6
                rows.append([mode, str(status), "json" if access else "off",
                             f"{figures['bare'] * 1e6:.2f}", f"{figures['with'] * 1e6:.2f}",
                             f"{cost:.2f}"])
    print(table(["storage", "status", "access log", "bare µs", "with µs", "cost µs/request"],
                rows))
    print("At 2,000 validations/s on 2 cores (1,000 per core), 10 µs per request is 1% "
          "of a core.")


if __name__ == "__main__":
    main()
