"""The validation load from wrk (a C load generator) instead of this Python process.

On a 2-core machine the load generator competes with the server and the
database for the same CPUs; bench/server.py's asyncio client costs a few
hundred microseconds of CPU per request, wrk a few tens. When ``wrk`` is on
the PATH (Debian: ``apt-get install wrk``) bench/server.py drives the
validations with it, and says so in its output; otherwise it uses its own
client. The activations are always made by the Python client (each needs a
new random fingerprint and its answer is kept).

The Lua script below goes round-robin over the activations made before
(each wrk thread starting at its own offset) and sends every request with a
fresh nonce, as the SDK does. wrk counts an answer with a status of 400 or
more as an error; connection errors and timeouts (30 s) are counted too.
Latency percentiles are wrk's (send to last byte, per request).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

SCRIPT = r"""
-- software_dna bench: POST /validate round-robin over activations, fresh nonce each time.
local requests_file = nil
local items = {}
local position = 0
local stride = 1
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local next_id = 0

function setup(thread)
  thread:set("offset", next_id)
  next_id = next_id + 1
end

local close = false

function init(args)
  requests_file = args[1]
  stride = tonumber(args[2])
  close = args[3] == "close"
  position = tonumber(offset) or 0
  math.randomseed(os.time() * 1000 + position)
  for line in io.lines(requests_file) do
    local path, secret, fp = line:match("^([^\t]+)\t([^\t]+)\t(.+)$")
    items[#items + 1] = {path = path, secret = secret, fp = fp}
  end
end

local function nonce()
  local out = {}
  for i = 1, 22 do
    local k = math.random(1, 64)
    out[i] = alphabet:sub(k, k)
  end
  return table.concat(out)
end

function request()
  local item = items[(position % #items) + 1]
  position = position + stride
  local body = '{"fingerprint":' .. item.fp .. ',"nonce":"' .. nonce() .. '"}'
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. item.secret,
  }
  if close then
    headers["Connection"] = "close"
  end
  return wrk.format("POST", item.path, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRK-RESULT {"requests": %d, "seconds": %.6f, "p50": %.6f, "p99": %.6f, ' ..
    '"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e6,
    latency:percentile(99) / 1e6, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout))
end
"""


def wrk_path() -> str | None:
    """The wrk executable on the PATH, or None."""
    return shutil.which("wrk")


@dataclass
class WrkRun:
    """What one measured wrk run reported."""

    requests: int
    seconds: float
    p50: float  # seconds
    p99: float  # seconds
    error_kinds: dict[str, int]
    server_cpu: float | None
    db_cpu: float | None


CpuProbe = Callable[[], tuple[float | None, dict[int, float] | None]]


def run_validations(url: str, clients: int, items: Sequence[tuple[str, str, dict[str, object]]],
                    *, duration: float, warmup: float, cpu: CpuProbe | None,
                    keep_alive: bool = True) -> WrkRun:
    """``clients`` connections sending validations for ``duration`` seconds.

    ``keep_alive=False``: every request asks ``Connection: close``, so each
    validation comes on a new TCP connection (wrk reconnects), as an app's
    periodic check does.

    ``items``: (path, activation secret, fingerprint as sent) per activation.
    A first run of ``warmup`` seconds is not counted. CPU use of the server
    (and its database) is read before and after the measured run.
    """
    wrk = wrk_path()
    if wrk is None:
        raise RuntimeError("wrk is not on the PATH")
    threads = min(2, clients)
    with tempfile.TemporaryDirectory(prefix="sdna-wrk-") as folder:
        script = Path(folder) / "validate.lua"
        script.write_text(SCRIPT, encoding="utf-8")
        listing = Path(folder) / "requests.tsv"
        listing.write_text("".join(
            f"{path}\t{secret}\t{json.dumps(fp, separators=(',', ':'))}\n"
            for path, secret, fp in items), encoding="utf-8")

        def once(seconds: float) -> dict[str, float]:
            done = subprocess.run(
                [wrk, "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s",
                 "--timeout", "30s", "-s", str(script), url, "--", str(listing), str(threads),
                 "keep-alive" if keep_alive else "close"],
                capture_output=True, text=True, check=True)
            for line in done.stdout.splitlines():
                if line.startswith("WRK-RESULT "):
                    parsed: dict[str, float] = json.loads(line.removeprefix("WRK-RESULT "))
                    return parsed
            raise RuntimeError(f"wrk printed no result: {done.stdout[-500:]} {done.stderr[-500:]}")

        if warmup > 0:
            once(warmup)
        before = cpu() if cpu is not None else (None, None)
        got = once(duration)
        after = cpu() if cpu is not None else (None, None)
    server_cpu = after[0] - before[0] if before[0] is not None and after[0] is not None else None
    db_cpu = None
    if before[1] is not None and after[1] is not None:
        start = before[1]
        db_cpu = sum(used - start.get(pid, 0.0) for pid, used in after[1].items())
    kinds = {name: int(got[name]) for name in ("connect", "read", "write", "status", "timeout")
             if got[name]}
    return WrkRun(requests=int(got["requests"]), seconds=float(got["seconds"]),
                  p50=float(got["p50"]), p99=float(got["p99"]), error_kinds=kinds,
                  server_cpu=server_cpu, db_cpu=db_cpu)
