"""The reference license server under load, on SQLite and on PostgreSQL.

The server runs as ``software-dna server run`` (uvicorn) through
:class:`~software_dna.server.testing.LocalServer` on 127.0.0.1, in its own
process(es). The validations are sent by wrk when it is installed
(bench/_wrk.py: a C load generator costs the 2 shared CPUs a tenth of what a
Python one does; ``make bench`` installs it on Debian as root), else by this
process: a small asyncio HTTP/1.1 client. Both keep connections alive with one
request in flight per connection. The activations always come from this
process (each needs a new random fingerprint, and the answers are kept).

Measured, for each configuration (SQLite with 1 worker; PostgreSQL with 1 and
2 workers), with the server's production defaults (access log on, a pool of
5 + 10 connections per worker):

- activations first: ``POST /v1/activations`` with 16 concurrent clients, every
  request a new machine (new activation, seat counted under the license row
  lock, the license's rate-limit counter updated, audit entry): activations
  per second. All requests come from 127.0.0.1, like the apps of an office
  behind one NAT address: the per-network limit keeps its production
  default, which real keys do not use up (only guesses count toward it); the
  per-license limit is raised so that nothing is refused;
- then validations: ``POST /v1/activations/{id}/validate`` (authenticate, load
  the license and product, check status and machine, sign a fresh token,
  write ``last_seen_at``) with 1, 16 and 64 concurrent clients, going
  round-robin over every activation made before, so that most validations
  find ``last_seen_at`` older than a second and write it, as in the field:
  validations per second, p50 and p99 latency (send to last byte), errors
  (any answer that is not the expected status, and failed connections);
  with wrk, also with a new TCP connection for every validation (16 and 64
  clients): an app's periodic checks come hours apart, so in the field each
  validation opens a connection. With several workers the server's
  dispatcher hands the connections to them in turn (docs/performance.md);
- for each run, the CPU time the server's processes used per request, and
  (PostgreSQL) that of the database's backends (/proc; backends that ended
  during the run are not counted).

Each run lasts ``--duration`` seconds after a short warm-up (and stops early
at ``--max-requests``). The machine's Ed25519 signing rate (one token-sized
message, one core, ``cryptography``) is printed as the ceiling: every
validation and activation signs one token. ``--profile`` samples the server
with py-spy (installed in the bench environment) during the 16-client
validations of the last configuration and prints where its CPU goes.

PostgreSQL: ``SOFTWARE_DNA_TEST_PG`` (default
``postgresql://postgres@127.0.0.1:5432/test``) names a database used only to
create and drop the bench's own databases (``sdna_bench_<pid>_<hex>_<n>``).
When it cannot be reached the PostgreSQL rows are skipped with the reason.

This is a benchmark, not a test: it never fails on timing.

At the end, each headline figure (PostgreSQL, 2 workers, 16 clients:
validations/s, their p99, activations/s) is printed beside the ceiling and
their ratio, with the targets.

Usage: python bench/server.py [--duration S] [--only sqlite,pg1,pg2] [--profile]
                              [--generator auto|wrk|python]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import cpu_seconds, machine_line, percentile, process_tree, table
from _wrk import run_validations, wrk_path

from software_dna.server.testing import LocalServer

PRODUCT = "bench-server"
PG_ADMIN_URL = os.environ.get("SOFTWARE_DNA_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
CONCURRENCY = (1, 16, 64)
ACTIVATION_CLIENTS = 16
PROFILE_NOTES: list[str] = []


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def fake_fingerprint() -> dict[str, Any]:
    """A fingerprint as the SDK sends it (algorithm 2): component hashes only (random here)."""
    components: dict[str, Any] = {name: b64(secrets.token_bytes(32))
                                  for name in ("machine_id", "os_arch", "cpu")}
    components["mac"] = [b64(secrets.token_bytes(32))]
    return {"algorithm": 2, "components": components}


# --------------------------------------------------------------------------- HTTP client


class Connection:
    """One keep-alive HTTP/1.1 connection; one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def post(self, path: str, body: bytes, bearer: str | None = None) -> tuple[int, bytes]:
        """POST a JSON body (GET when ``body`` is empty); returns (status, body).

        Reconnects when the connection dropped.
        """
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        auth = f"Authorization: Bearer {bearer}\r\n" if bearer else ""
        if body:
            head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                    f"{auth}\r\n")
        else:
            head = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{auth}\r\n"
        self.writer.write(head.encode("latin-1") + body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        payload = await self.reader.readexactly(length) if length else b""
        if close:
            self.close()
        return status, payload


@dataclass
class RunResult:
    """What one load run measured."""

    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    error_kinds: dict[str, int] = field(default_factory=dict)
    server_cpu: float | None = None  # CPU seconds of the server's processes while measured
    db_cpu: float | None = None  # CPU seconds of the database's server processes (PostgreSQL)
    given: dict[float, float] = field(default_factory=dict)  # quantile -> s, from wrk

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def quantile(self, q: float) -> float:
        if q in self.given:
            return self.given[q]
        return percentile(sorted(self.latencies), q)


def wrk_load(url: str, clients: int, items: list[tuple[str, str, dict[str, Any]]], *,
             duration: float, warmup: float, cpu: CpuProbe | None,
             keep_alive: bool = True) -> RunResult:
    """The validations driven by wrk (bench/_wrk.py), as a :class:`RunResult`."""
    got = run_validations(url, clients, items, duration=duration, warmup=warmup, cpu=cpu,
                          keep_alive=keep_alive)
    return RunResult(requests=got.requests, errors=sum(got.error_kinds.values()),
                     seconds=got.seconds, error_kinds=dict(got.error_kinds),
                     server_cpu=got.server_cpu, db_cpu=got.db_cpu,
                     given={0.50: got.p50, 0.99: got.p99})


RequestFactory = Callable[[int], tuple[str, bytes, str | None]]
ResponseHook = Callable[[int, int, bytes], None]
CpuProbe = Callable[[], tuple[float | None, dict[int, float] | None]]


async def _load(url: str, clients: int, make: RequestFactory, *, duration: float,
                warmup: float, max_requests: int, expect: tuple[int, ...],
                cpu: CpuProbe | None, seen: ResponseHook | None) -> RunResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    result = RunResult()
    measuring = False
    stop = False
    sent = 0

    async def client(index: int) -> None:
        nonlocal sent
        conn = Connection(host, port)
        try:
            while not stop:
                path, body, bearer = make(index)
                start = time.perf_counter()
                try:
                    status, answer = await conn.post(path, body, bearer)
                except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                    conn.close()
                    status, kind = 0, type(exc).__name__
                else:
                    kind = str(status)
                    if seen is not None:
                        seen(index, status, answer)
                elapsed = time.perf_counter() - start
                if not measuring:
                    continue
                sent += 1
                result.requests += 1
                if status in expect:
                    result.latencies.append(elapsed)
                else:
                    result.errors += 1
                    result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1
        finally:
            conn.close()

    tasks = [asyncio.create_task(client(i)) for i in range(clients)]
    await asyncio.sleep(warmup)
    before = cpu() if cpu is not None else (None, None)
    measuring = True
    begin = time.perf_counter()
    deadline = begin + duration
    while time.perf_counter() < deadline and sent < max_requests:
        await asyncio.sleep(0.02)
    result.seconds = time.perf_counter() - begin
    measuring = False
    after = cpu() if cpu is not None else (None, None)
    if before[0] is not None and after[0] is not None:
        result.server_cpu = after[0] - before[0]
    if before[1] is not None and after[1] is not None:
        # Backends that ended meanwhile are not counted (an undercount, never negative).
        start = before[1]
        result.db_cpu = sum(used - start.get(pid, 0.0) for pid, used in after[1].items())
    stop = True
    await asyncio.gather(*tasks, return_exceptions=True)
    return result


def load(url: str, clients: int, make: RequestFactory, *, duration: float, warmup: float,
         max_requests: int, expect: tuple[int, ...] = (200,),
         cpu: CpuProbe | None = None, seen: ResponseHook | None = None) -> RunResult:
    """Run ``clients`` concurrent request loops against ``url``; see :func:`_load`."""
    return asyncio.run(_load(url, clients, make, duration=duration, warmup=warmup,
                             max_requests=max_requests, expect=expect, cpu=cpu, seen=seen))


def cpu_probe(srv: LocalServer) -> CpuProbe:
    """CPU seconds used so far by the server's processes and by its PostgreSQL backends."""
    proc = srv._proc  # the server process (its workers are its children)
    pg_url = srv.database_url if srv.database_url.startswith("postgresql") else None

    def probe() -> tuple[float | None, dict[int, float] | None]:
        server = cpu_seconds(process_tree(proc.pid)) if proc is not None else None
        database: dict[int, float] | None = None
        if pg_url is not None:
            import psycopg

            name = pg_url.rsplit("/", 1)[1]
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                pids = [int(r[0]) for r in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
            database = {}
            for pid in pids:
                used = cpu_seconds([pid])
                if used is not None:
                    database[pid] = used
        return server, database

    return probe


# --------------------------------------------------------------------------- set-up


@dataclass
class Activation:
    id: str
    secret: str
    fingerprint: dict[str, Any]


def activate(srv: LocalServer, license_key: str) -> Activation:
    """One activation through the public API (the SDK's request)."""
    import requests

    fp = fake_fingerprint()
    body = {"product": PRODUCT, "license_key": license_key, "fingerprint": fp,
            "nonce": secrets.token_urlsafe(16), "idempotency_key": secrets.token_urlsafe(16)}
    answer = requests.post(f"{srv.url}/v1/activations", json=body, timeout=30)
    answer.raise_for_status()
    data = answer.json()
    return Activation(data["activation_id"], data["activation_secret"], fp)


@contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database (dropped afterwards); yields its SQLAlchemy URL."""
    import psycopg
    from psycopg import sql

    name = f"sdna_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            base, _, _ = PG_ADMIN_URL.rpartition("/")
            yield base.replace("postgresql://", "postgresql+psycopg://", 1) + "/" + name
        finally:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s AND pid <> pg_backend_pid()", (name,))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def pg_reason() -> str | None:
    """Why PostgreSQL cannot be used (None: it can)."""
    try:
        import psycopg

        psycopg.connect(PG_ADMIN_URL, connect_timeout=5).close()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
    return None


PROFILE_GROUPS = (
    ("software_dna", "software_dna (service, tokens, schemas)"),
    ("sqlalchemy", "SQLAlchemy (ORM, engine, pool)"),
    ("psycopg", "psycopg"),
    ("sqlite3", "sqlite3"),
    ("pydantic", "pydantic"),
    ("fastapi", "FastAPI (routing, dependencies, validation)"),
    ("starlette", "Starlette"),
    ("anyio", "anyio (thread pool hand-offs)"),
    ("uvicorn", "uvicorn (HTTP protocol, access log)"),
    ("h11", "h11 (HTTP parsing)"),
    ("logging", "logging (access log)"),
    ("cryptography", "cryptography"),
    ("asyncio", "asyncio event loop"),
    ("threading", "threading"),
    ("json", "json"),
)


def start_profile(srv: LocalServer, seconds: float, out: Path) -> subprocess.Popen[bytes] | str:
    """py-spy on the server's processes (GIL holders only: where Python CPU goes)."""
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists() or srv._proc is None:
        return "py-spy is not installed next to this Python (make bench installs it)"
    return subprocess.Popen(
        [str(spy), "record", "--gil", "--subprocesses", "--nonblocking", "-r", "200", "-f", "raw",
         "-d", str(max(1, round(seconds))), "-o", str(out), "--pid", str(srv._proc.pid)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def summarize_profile(raw: Path) -> list[str]:
    """Share of the sampled (GIL-holding) stacks per package, innermost known frame."""
    groups: dict[str, int] = {}
    ours: dict[str, int] = {}
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        label = "other"
        for frame in reversed(frames):
            parts = frame.rpartition(" (")[2].split(":")[0].split("/")
            hit = next((name for key, name in PROFILE_GROUPS
                        if key in parts[:-1] or parts[-1] == f"{key}.py"), None)
            if hit is not None:
                label = hit
                break
        groups[label] = groups.get(label, 0) + int(count)
        seen: set[str] = set()
        for frame in frames:
            function, _, where = frame.rpartition(" (")
            path = where.split(":")[0]
            if "software_dna/" in path and not path.endswith("cli.py"):
                name = f"{function} ({path.split('software_dna/')[-1]})"
                if name not in seen:
                    seen.add(name)
                    ours[name] = ours.get(name, 0) + int(count)
    if not total:
        return ["  (no samples)"]
    lines = [f"  {count / total:6.1%}  {label}"
             for label, count in sorted(groups.items(), key=lambda kv: -kv[1])]
    lines.append("  inclusive, software_dna functions:")
    lines += [f"  {count / total:6.1%}  {name}"
              for name, count in sorted(ours.items(), key=lambda kv: -kv[1])[:8]]
    return lines


def measure_server(label: str, srv: LocalServer, args: argparse.Namespace,
                   profile: Path | None = None) -> list[list[str]]:
    """Activations first (they make the activations to validate), then validations.

    With ``profile``, the server is sampled with py-spy during the 16-client
    validation run and a summary is printed.
    """
    srv.admin.setup_product(PRODUCT, features=["pro"])
    workers = str(srv.workers)
    keys = [srv.admin.issue_license(PRODUCT, seats=100000)["license_key"]
            for _ in range(ACTIVATION_CLIENTS)]
    pending: dict[int, dict[str, Any]] = {}
    made: list[Activation] = []

    def activation(index: int) -> tuple[str, bytes, str | None]:
        pending[index] = fake_fingerprint()
        body = {"product": PRODUCT, "license_key": keys[index], "fingerprint": pending[index],
                "nonce": secrets.token_urlsafe(16),
                "idempotency_key": secrets.token_urlsafe(16)}
        return "/v1/activations", json.dumps(body).encode(), None

    def created(index: int, status: int, body: bytes) -> None:
        if status == 201:
            data = json.loads(body)
            made.append(Activation(data["activation_id"], data["activation_secret"],
                                   pending[index]))

    got = load(srv.url, ACTIVATION_CLIENTS, activation, duration=args.duration,
               warmup=args.warmup, max_requests=args.max_requests, expect=(201,),
               cpu=cpu_probe(srv), seen=created)
    activate_row = row(label, workers, "activate", ACTIVATION_CLIENTS, got)
    print(f"  {label} workers={workers} activate clients={ACTIVATION_CLIENTS}: "
          f"{got.rate:,.0f}/s", flush=True)

    # Validations go round-robin over every activation made above, so that (as in
    # the field) most validations find last_seen_at older than a second and write it.
    while len(made) < 4 * max(CONCURRENCY):
        made.append(activate(srv, keys[0]))
    turn = itertools.count()
    requests = [(f"/v1/activations/{a.id}/validate", a.fingerprint, a.secret) for a in made]

    def validate(index: int) -> tuple[str, bytes, str | None]:
        path, fp, secret = requests[next(turn) % len(requests)]
        body = json.dumps({"fingerprint": fp, "nonce": secrets.token_urlsafe(16)})
        return path, body.encode(), secret

    rows: list[list[str]] = []
    for clients in CONCURRENCY:
        spy: subprocess.Popen[bytes] | str | None = None
        if profile is not None and clients == 16:
            spy = start_profile(srv, args.warmup + args.duration, profile)
        if args.generator == "wrk":
            got = wrk_load(srv.url, clients, [(path, secret, fp) for path, fp, secret in requests],
                           duration=args.duration, warmup=args.warmup, cpu=cpu_probe(srv))
        else:
            got = load(srv.url, clients, validate, duration=args.duration, warmup=args.warmup,
                       max_requests=args.max_requests, cpu=cpu_probe(srv))
        if isinstance(spy, str):
            PROFILE_NOTES.append(f"profile unavailable: {spy}")
        elif spy is not None:
            _, err = spy.communicate(timeout=60)
            if spy.returncode != 0 or not profile or not profile.exists():
                PROFILE_NOTES.append("profile unavailable: py-spy failed: "
                                     + err.decode(errors="replace").strip()[-300:])
            else:
                PROFILE_NOTES.append(f"Profile of the server, {label} with {workers} worker(s), "
                                     f"validations at 16 clients (py-spy --gil: the share of "
                                     f"samples in which a server thread held the GIL, by the "
                                     f"innermost package on the stack):")
                PROFILE_NOTES.extend(summarize_profile(profile))
        rows.append(row(label, workers, "validate", clients, got))
        print(f"  {label} workers={workers} validate clients={clients}: {got.rate:,.0f}/s "
              f"(over {len(requests):,} activations)", flush=True)
    if args.generator == "wrk":
        # An app's periodic check comes hours apart: in the field every validation is a
        # new TCP connection (an idle keep-alive connection is closed after 5 s).
        for clients in CONCURRENCY[1:]:
            got = wrk_load(srv.url, clients, [(path, secret, fp) for path, fp, secret in requests],
                           duration=args.duration, warmup=args.warmup, cpu=cpu_probe(srv),
                           keep_alive=False)
            rows.append(row(label, workers, "validate, new conn.", clients, got))
            print(f"  {label} workers={workers} validate (a new connection each) "
                  f"clients={clients}: {got.rate:,.0f}/s", flush=True)
    return [*rows, activate_row]


def row(label: str, workers: str, what: str, clients: int, got: RunResult) -> list[str]:
    errors = str(got.errors)
    if got.error_kinds:
        errors += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(got.error_kinds.items())) + ")"
    def per_request(seconds: float | None) -> str:
        if seconds is None or not got.requests:
            return "n/a"
        return f"{seconds / got.requests * 1e3:.2f}"

    return [label, workers, what, str(clients), f"{got.rate:,.0f}",
            f"{got.quantile(0.50) * 1e3:.1f}", f"{got.quantile(0.99) * 1e3:.1f}",
            per_request(got.server_cpu), per_request(got.db_cpu), f"{got.requests:,}", errors]


def signing_ceiling(seconds: float = 1.0) -> tuple[float, float]:
    """Ed25519 signatures per second on one core: (bare cryptography, our issue_token)."""
    from datetime import datetime, timedelta, timezone

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from software_dna.wire.claims import Mode, Protection, issue_token
    from software_dna.wire.paseto import SecretKey

    private = Ed25519PrivateKey.generate()
    message = secrets.token_bytes(600)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            private.sign(message)
        count += 100
    bare = count / (time.perf_counter() - start)

    key = SecretKey.generate()
    fp = fake_fingerprint()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            issue_token(key, issuer="bench", license_id="lic_1", activation_id="act_1",
                        product=PRODUCT, fingerprint_id="fp_bench",
                        fingerprint=fp["components"], tolerance=1, mode=Mode.FULL,
                        features=("pro",), protection=Protection.OPPORTUNISTIC, issued_at=now,
                        refresh_by=now + timedelta(days=1), expires_at=now + timedelta(days=8),
                        license_expires_at=None, nonce=secrets.token_urlsafe(16))
        count += 20
    return bare, count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0,
                        help="seconds measured per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0,
                        help="seconds of load before measuring (default 1)")
    parser.add_argument("--max-requests", type=int, default=200_000,
                        help="stop a run after this many measured requests")
    parser.add_argument("--only", default="sqlite,pg1,pg2",
                        help="configurations, comma-separated: sqlite, pg1, pg2")
    parser.add_argument("--profile", action="store_true",
                        help="sample the server with py-spy during the 16-client validations "
                             "of the last configuration and print where its CPU goes")
    parser.add_argument("--log-level", default="info",
                        help="the server's log level (default info, the access log on, as "
                             "`software-dna server run` runs by default)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto",
                        help="what sends the validations: wrk (C, if on the PATH), this "
                             "process (asyncio), or auto: wrk when installed (default)")
    args = parser.parse_args()
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    if args.generator == "auto":
        args.generator = "wrk" if wrk_path() else "python"
    elif args.generator == "wrk" and not wrk_path():
        parser.error("wrk is not on the PATH (Debian: apt-get install wrk)")

    print("License server under load")
    if args.generator == "wrk":
        print("load generator: validations from wrk (bench/_wrk.py: round-robin over the "
              "activations, a fresh nonce each); activations from this process (asyncio)")
    else:
        print("load generator: this process, asyncio HTTP/1.1 (wrk not used: install it for "
              "a generator that costs the shared CPUs less)")
    print(machine_line())
    bare, tokens = signing_ceiling()
    cores = os.cpu_count() or 1
    print(f"ceiling: Ed25519 signatures/s on one core: {bare:,.0f} bare (cryptography), "
          f"{tokens:,.0f} whole license tokens (issue_token: claims, JSON, PASETO, sign); "
          f"x{cores} cores = {bare * cores:,.0f} / {tokens * cores:,.0f}")
    print(f"each run: {args.warmup:g} s warm-up, then {args.duration:g} s measured "
          f"(at most {args.max_requests:,} requests); server log level {args.log_level}")
    print()

    rows: list[list[str]] = []
    notes: list[str] = []
    configs: list[tuple[str, str, int]] = [("sqlite", "SQLite", 1), ("pg1", "PostgreSQL", 1),
                                          ("pg2", "PostgreSQL", 2)]
    reason = pg_reason() if wanted & {"pg1", "pg2"} else None
    runnable = [key for key, label, _ in configs if key in wanted
                and (label == "SQLite" or reason is None)]
    # The server's production defaults for the connection pool (LocalServer uses
    # smaller ones for the test suite, which runs many servers at once).
    from software_dna.server.config import Settings

    defaults = Settings.from_env({})
    env = {"SOFTWARE_DNA_DB_POOL_SIZE": str(defaults.db_pool_size),
           "SOFTWARE_DNA_DB_MAX_OVERFLOW": str(defaults.db_max_overflow)}

    def server(folder: str, workers: int, url: str | None = None) -> LocalServer:
        return LocalServer(Path(folder) / "srv", database_url=url, workers=workers,
                           log_level=args.log_level, env=env, rate_limit_attempts=10**9,
                           rate_limit_address_attempts=defaults.rate_limit_address_attempts,
                           rate_limit_window=defaults.rate_limit_window)

    for key, label, workers in configs:
        if key not in wanted:
            continue
        if label == "PostgreSQL" and reason is not None:
            notes.append(f"{label} with {workers} worker(s) skipped: not reachable at "
                         f"{PG_ADMIN_URL} ({reason})")
            continue
        with tempfile.TemporaryDirectory(prefix="sdna-bench-server-") as folder:
            profile = (Path(folder) / "profile.txt"
                       if args.profile and runnable and key == runnable[-1] else None)
            if label == "SQLite":
                with server(folder, workers) as srv:
                    rows += measure_server(label, srv, args, profile)
            else:
                with pg_database() as url, server(folder, workers, url) as srv:
                    rows += measure_server(label, srv, args, profile)

    print()
    header = ["database", "workers", "request", "clients", "per second", "p50 ms", "p99 ms",
              "server CPU ms/req", "db CPU ms/req", "requests", "errors"]
    print(table(header, rows))
    for note in notes:
        print(note)
    print()
    for note in PROFILE_NOTES:
        print(note)
    if PROFILE_NOTES:
        print()
    print(ceiling_table(rows, bare))


#: The targets (informational: a benchmark never fails on timing), PostgreSQL, 2 workers,
#: 16 clients: validations/s, their p99 (ms), activations/s of licenses without a password.
TARGET_VALIDATIONS = 2000.0
TARGET_P99_MS = 25.0
TARGET_ACTIVATIONS = 150.0


def ceiling_table(rows: list[list[str]], bare: float) -> str:
    """Each headline figure beside the ceiling the same run measured, and their ratio.

    The ceiling is bare Ed25519 signatures per second on one core
    (``cryptography``): every validation and activation signs one token, so
    the ratio says how far the server is from doing nothing but signing.
    """
    lines = [f"Targets (informational; a benchmark never fails): PostgreSQL, 2 workers, "
             f"16 clients: >= {TARGET_VALIDATIONS:,.0f} validations/s with p99 < "
             f"{TARGET_P99_MS:g} ms, >= {TARGET_ACTIVATIONS:,.0f} activations/s, no errors. "
             f"Ceiling: {bare:,.0f} bare Ed25519 signatures/s on one core (this run)."]
    table_rows: list[list[str]] = []
    for r in rows:
        if not (r[0] == "PostgreSQL" and r[1] == "2" and r[3] == "16"):
            continue
        rate = float(r[4].replace(",", ""))
        ratio = f"{rate / bare:.3f}" if bare else "n/a"
        if r[2] == "activate":
            met = rate >= TARGET_ACTIVATIONS and r[10] == "0"
            table_rows.append(["activations/s", r[4], f"{bare:,.0f}", ratio,
                               "met" if met else "NOT met"])
            continue
        how = "keep-alive" if r[2] == "validate" else "new connection each"
        p99 = float(r[6])
        met = rate >= TARGET_VALIDATIONS and r[10] == "0"
        table_rows.append([f"validations/s ({how})", r[4], f"{bare:,.0f}", ratio,
                           "met" if met else "NOT met"])
        table_rows.append([f"  p99 ms ({how})", r[6], "", "",
                           "met" if p99 < TARGET_P99_MS else "NOT met"])
    if not table_rows:
        return lines[0] + "\n(no PostgreSQL 2-worker rows in this run)"
    return "\n".join([*lines, table(["figure (PostgreSQL, 2 workers, 16 clients)", "measured",
                                      "ceiling (sign/s, 1 core)", "ratio", "target"],
                                     table_rows)])

if __name__ == "__main__":
    main()
