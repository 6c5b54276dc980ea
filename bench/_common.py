"""Helpers shared by the benchmarks in bench/ (timing fresh processes, tables, machine facts).

Benchmarks are not tests: nothing here fails on timing.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Installed packages come with compiled bytecode (pip compiles on install); this
# machine may set PYTHONDONTWRITEBYTECODE, which would recompile every module on
# every start and measure the compiler instead of the import.
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_fresh(code: str, *, python: str | None = None) -> float:
    """Wall time (seconds) of a fresh ``python -c code`` process, start to exit."""
    start = time.perf_counter()
    subprocess.run([python or sys.executable, "-c", code], check=True, env=ENV,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_json(code: str, *, python: str | None = None) -> dict[str, float]:
    """Run ``python -c code`` in a fresh process; its last stdout line is a JSON object."""
    done = subprocess.run([python or sys.executable, "-c", code], check=True, env=ENV,
                          capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"no output from the measuring process: {done.stderr[-500:]}")
    result: dict[str, float] = json.loads(lines[-1])
    return result


def median(values: Sequence[float]) -> float:
    """The median (NaN for no values)."""
    return statistics.median(values) if values else float("nan")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    rank = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def cpu_model() -> str:
    """The CPU model name (Linux: /proc/cpuinfo), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_line() -> str:
    """One line naming the date, the machine and the Python used."""
    load = ""
    if hasattr(os, "getloadavg"):
        load = " | load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    return (f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC | {os.cpu_count()} CPUs, "
            f"{cpu_model()} | Python {platform.python_version()} "
            f"({platform.python_implementation()}) on {platform.system()} "
            f"{platform.machine()}{load}")


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table (first column left-aligned, the others right-aligned)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        out = [str(cells[0]).ljust(widths[0])]
        out += [str(c).rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process (Linux /proc), None when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    return (int(fields[11]) + int(fields[12])) / ticks


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc; just ``[pid]`` elsewhere)."""
    children: dict[int, list[int]] = {}
    try:
        entries = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return [pid]
    for child in entries:
        try:
            stat = Path(f"/proc/{child}/stat").read_text(encoding="ascii")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def cpu_seconds(pids: Sequence[int]) -> float | None:
    """Total CPU seconds used so far by ``pids`` (None when /proc cannot tell)."""
    total = 0.0
    for pid in pids:
        used = _proc_cpu(pid)
        if used is None:
            return None
        total += used
    return total
