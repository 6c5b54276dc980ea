"""The public surface's cost: what cheap or unauthenticated requests cost the server.

A real server process (uvicorn, one worker, SQLite) behind a trusted proxy
(``X-Forwarded-For`` from 127.0.0.1 is believed, so the attackers can come
from many networks), and these attackers:

- erasure requests with free credentials (a new trial's), each from its own
  network, and floods of one activation's erasure (refused: rate limited);
- 1 MiB bodies to ``/v1/admin/*`` without the admin key (a real route and a
  404 path): refused 401 before the body is read;
- container bombs (``[{},{},...]``) and deep nesting to the public routes,
  within the 64 KiB limit: refused 400 by the byte scan before parsing;
- 1 MiB bodies to a public route: 413 from the ``Content-Length``.

Measured, per kind of request, sent alone: the server process's CPU time
(``/proc/<pid>/stat``, user + system) per request.  Then all of them at
once while a paying user validates in a loop: the worst and median
latency of those validations.

A case is unexpected when an answer is not the designed one, when (long
run, ``make stress``) a request refused for its body or credentials costs on
average more than :data:`REFUSED_CPU_BOUND` of server CPU (an erasure refused
by the rate limits: :data:`RATE_LIMITED_CPU_BOUND`), or a paying user's
validation takes longer than :data:`VALIDATION_BOUND`.  The short run inside ``make test``
checks the answers only: timing is measured in ``make stress``.  The figures
are printed (docs/security.md quotes them).
"""

from __future__ import annotations

import json
import secrets
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from software_dna.server.testing import LocalServer
from tests.security._family import Scale, Tally
from tests.server.helpers import fingerprint, nonce

MB = 1024 * 1024
#: Server CPU a request refused for its body or its credentials may cost on average (seconds).
REFUSED_CPU_BOUND = 0.005
#: ... and an erasure refused by the rate limits: two short write transactions of the
#: database's rate limiter (the network's count, then the activation's), as for activations.
RATE_LIMITED_CPU_BOUND = 0.010
#: How long a paying user's validation may take while the attackers run (seconds).
VALIDATION_BOUND = 1.0
#: The server's erasure limits in this family (per activation, per network, per hour).
ERASURE_ATTEMPTS = 3
ERASURE_ADDRESS_ATTEMPTS = 20


@dataclass
class Surface:
    """The server under attack and what the attackers need."""

    server: LocalServer
    product: str
    license_key: str
    networks: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def network(self) -> str:
        """A new client network (an IPv4 /32 or an IPv6 /64 of its own), for X-Forwarded-For."""
        with self.lock:
            self.networks += 1
            n = self.networks
        if n % 2:
            return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"
        return f"2001:db8:{(n >> 16) & 0xffff:x}:{n & 0xffff:x}::1"


# --------------------------------------------------------------------------- the requests


def _raw(surface: Surface, head: bytes, body: bytes = b"") -> bytes:
    """One request on its own connection; the whole answer (what came before it broke).

    The refusals that must come before the body is read are sent without it:
    a server that waited for the body would never answer (then b"").
    """
    with socket.create_connection(("127.0.0.1", surface.server.port), timeout=30) as s:
        reply = b""
        try:
            s.sendall(head + body)
            while chunk := s.recv(65536):  # Connection: close: the answer ends at EOF
                reply += chunk
        except OSError:
            pass
        return reply


def _head(path: str, length: int, auth: str | None = None) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: x", "Content-Type: application/json",
             f"Content-Length: {length}", "Connection: close"]
    if auth is not None:
        lines.append(f"Authorization: {auth}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


_ADMIN_BOMB = b"[" + b"{}," * (MB // 3 - 1) + b"{}]"
_PUBLIC_BOMB = b"[" + b"{}," * 20_000 + b"{}]"
_PUBLIC_DEEP = b'{"nonce": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"
_HASH = "A" * 43
_FINGERPRINT = {"algorithm": 2, "components": {"machine_id": _HASH, "os_arch": _HASH,
                                               "cpu": _HASH, "mac": [_HASH]}}
#: Bodies within the byte scan's container and depth limits that were once costly to
#: refuse (one validation error per member): refused now on a cheap path.
_SHAPED = [
    # 6,000 unknown keys in one object (the member limit refuses it).
    ("/v1/activations", ("{" + ",".join(f'"k{i}":0' for i in range(6000)) + "}").encode()),
    # A container bomb in UTF-16 (not UTF-8: refused before parsing).
    ("/v1/activations", ('{"x": [' + ",".join(["[]"] * 10_800) + "]}").encode("utf-16-le")),
    # 985 registration details with control characters (refused as too many, in one error).
    ("/v1/activations", json.dumps({
        "product": "p-x1234", "license_key": "ABCD-EFGH", "nonce": "n" * 20,
        "idempotency_key": "i" * 20, "fingerprint": _FINGERPRINT, "consent": True,
        "registration": {f"\x01{i:x}": "\x01" for i in range(985)}}).encode()),
]


def _status(reply: bytes) -> int:
    try:
        return int(reply.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def admin_bomb(surface: Surface, tally: Tally) -> None:
    """1 MiB of ``[{},...]`` to an admin route without a key: 401, the body never read."""
    path = secrets.choice(["/v1/admin/products", "/v1/admin/licenses",
                           f"/v1/admin/nothing-here-{secrets.token_hex(2)}"])
    auth = secrets.choice([None, "Bearer " + secrets.token_urlsafe(32)])
    reply = _raw(surface, _head(path, len(_ADMIN_BOMB), auth))
    tally.check(_status(reply) == 401 and b"unauthorized" in reply,
                f"1 MiB admin body to {path} without the key: {reply[:120]!r}")


def public_bomb(surface: Surface, tally: Tally) -> None:
    """A 60 KB container bomb or 30,000 levels of nesting to a public route: 400."""
    body = secrets.choice([_PUBLIC_BOMB, _PUBLIC_DEEP])
    path = secrets.choice(["/v1/activations", "/v1/trials",
                           f"/v1/activations/act_{secrets.token_hex(4)}/validate"])
    reply = _raw(surface, _head(path, len(body)), body)
    tally.check(_status(reply) == 400 and b"invalid_request" in reply,
                f"{len(body)}-byte bomb to {path}: {reply[:120]!r}")


def shaped_body(surface: Surface, tally: Tally) -> None:
    """A body within the container limits once costly to refuse (``_SHAPED``): 400."""
    path, body = secrets.choice(_SHAPED)
    reply = _raw(surface, _head(path, len(body)), body)
    tally.check(_status(reply) == 400 and b"invalid_request" in reply,
                f"{len(body)}-byte shaped body to {path}: {reply[:120]!r}")


def public_oversized(surface: Surface, tally: Tally) -> None:
    """1 MiB to a public route: 413 from the Content-Length."""
    reply = _raw(surface, _head("/v1/activations", len(_ADMIN_BOMB)))
    tally.check(_status(reply) == 413, f"1 MiB public body: {reply[:120]!r}")


def _trial(http: requests.Session, surface: Surface, network: str) -> dict[str, Any] | None:
    answer = http.post(f"{surface.url}/v1/trials", timeout=30,
                       headers={"X-Forwarded-For": network},
                       json={"product": surface.product, "nonce": nonce(),
                             "fingerprint": fingerprint("t-" + secrets.token_hex(8))})
    if answer.status_code != 201:
        return None
    body: dict[str, Any] = answer.json()
    return body


def _erase(http: requests.Session, surface: Surface, activation: dict[str, Any],
           network: str) -> requests.Response:
    return http.post(f"{surface.url}/v1/activations/{activation['activation_id']}/erasure",
                     json={"nonce": nonce()}, timeout=30,
                     headers={"X-Forwarded-For": network,
                              "Authorization": f"Bearer {activation['activation_secret']}"})


def erasure_flood(surface: Surface, http: requests.Session, tally: Tally,
                  trials: list[dict[str, Any]]) -> int:
    """Erase a trial, then flood the same activation from new networks; returns requests."""
    if not trials:
        time.sleep(0.05)
        return 0
    trial = trials.pop()
    sent = 0
    for n in range(5):
        answer = _erase(http, surface, trial, surface.network())
        sent += 1
        want = (200,) if n < ERASURE_ATTEMPTS else (429,)
        tally.check(answer.status_code in want,
                    f"erasure #{n + 1} of one activation: HTTP {answer.status_code} "
                    f"{answer.text[:120]}")
    return sent


# --------------------------------------------------------------------------- the run


@dataclass
class Figures:
    """What the run measured."""

    sent: dict[str, int] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)
    validations: list[float] = field(default_factory=list)
    validation_failures: int = 0

    def lines(self) -> list[str]:
        out = [f"  {kind:<34} sent {self.sent[kind]:>6}" + (
               f"   server CPU {self.cpu_ms[kind]:6.2f} ms/request"
               if kind in self.cpu_ms else "") for kind in self.sent]
        if self.validations:
            out.append(f"  paying user's validations meanwhile: {len(self.validations)}, "
                       f"median {statistics.median(self.validations) * 1000:.1f} ms, worst "
                       f"{max(self.validations) * 1000:.1f} ms, failed "
                       f"{self.validation_failures}")
        return out


def _measure(surface: Surface, figures: Figures, kind: str, count: int,
             send: Callable[[], int]) -> None:
    """Send ``count`` requests of one kind, nothing else running; CPU per request."""
    before = surface.server.cpu_seconds()
    sent = 0
    for _ in range(count):
        sent += send()
    spent = surface.server.cpu_seconds() - before
    figures.sent[kind] = figures.sent.get(kind, 0) + sent
    figures.cpu_ms[kind] = spent * 1000 / max(1, sent)


def _make_trials(surface: Surface, http: requests.Session, count: int) -> list[dict[str, Any]]:
    trials = []
    for _ in range(count):
        trial = _trial(http, surface, surface.network())
        if trial is not None:
            trials.append(trial)
    return trials


def run(surface: Surface, scale: Scale, tally: Tally) -> Figures:
    """Each kind alone (CPU per request), then everything while a paying user validates."""
    figures = Figures()
    n = scale.pick(10, 300)
    timed = scale is Scale.LONG
    with requests.Session() as http:
        # Warm-up: code paths loaded, connections pooled, before measuring.
        admin_bomb(surface, Tally("warm-up"))
        public_bomb(surface, Tally("warm-up"))
        http.get(f"{surface.url}/v1/health", timeout=30)

        def health() -> int:
            tally.check(http.get(f"{surface.url}/v1/health", timeout=30).status_code == 200,
                        "health")
            return 1

        def one(fn: Callable[[Surface, Tally], None]) -> Callable[[], int]:
            def send() -> int:
                fn(surface, tally)
                return 1
            return send

        _measure(surface, figures, "health (a cheap request)", n, health)
        _measure(surface, figures, "1 MiB admin, no key (401)", n, one(admin_bomb))
        _measure(surface, figures, "public bomb (400)", n, one(public_bomb))
        _measure(surface, figures, "1 MiB public (413)", n, one(public_oversized))
        _measure(surface, figures, "shaped body (400)", n, one(shaped_body))
        trials = _make_trials(surface, http, n)
        tally.check(len(trials) == n, f"only {len(trials)} of {n} trials started")
        erasures = list(trials)

        def erase_new() -> int:
            trial = erasures.pop()
            answer = _erase(http, surface, trial, surface.network())
            tally.check(answer.status_code == 200,
                        f"erasure of a new trial: HTTP {answer.status_code} {answer.text[:120]}")
            return 1

        _measure(surface, figures, "erasure (trial credentials)", n, erase_new)
        flood = _make_trials(surface, http, n)
        for trial in flood:  # used up: every further erasure of these is refused
            for _ in range(ERASURE_ATTEMPTS):
                _erase(http, surface, trial, surface.network())

        def erase_refused() -> int:
            trial = secrets.choice(flood)
            answer = _erase(http, surface, trial, surface.network())
            tally.check(answer.status_code == 429, f"erasure past the activation's limit: "
                                                   f"HTTP {answer.status_code}")
            return 1

        _measure(surface, figures, "erasure, rate limited (429)", n, erase_refused)
        if timed:
            for kind, bound in (("1 MiB admin, no key (401)", REFUSED_CPU_BOUND),
                                ("public bomb (400)", REFUSED_CPU_BOUND),
                                ("1 MiB public (413)", REFUSED_CPU_BOUND),
                                ("shaped body (400)", REFUSED_CPU_BOUND),
                                ("erasure, rate limited (429)", RATE_LIMITED_CPU_BOUND)):
                tally.check(figures.cpu_ms[kind] <= bound * 1000,
                            f"{kind}: {figures.cpu_ms[kind]:.2f} ms of server CPU per "
                            f"request (bound {bound * 1000:.0f} ms)")
        mixed(surface, figures, scale, tally, _make_trials(surface, http, scale.pick(20, 600)),
              _make_trials(surface, http, scale.pick(30, 100)))
    if timed and figures.validations:
        worst = max(figures.validations)
        tally.check(worst <= VALIDATION_BOUND,
                    f"a paying user's validation took {worst * 1000:.0f} ms while attacked "
                    f"(bound {VALIDATION_BOUND * 1000:.0f} ms)")
    return figures


def mixed(surface: Surface, figures: Figures, scale: Scale, tally: Tally,
          trials: list[dict[str, Any]], more_trials: list[dict[str, Any]]) -> None:
    """Every attacker at once, for a while, while a paying user validates in a loop.

    ``trials`` are erased each from new networks (then flooded), ``more_trials``
    all from one network (past its limit: 429).
    """
    seconds = scale.pick(3, 60)
    stop = threading.Event()
    answer = requests.post(f"{surface.url}/v1/activations", timeout=30, json={
        "product": surface.product, "license_key": surface.license_key,
        "fingerprint": fingerprint("paying-user"), "nonce": nonce(),
        "idempotency_key": secrets.token_urlsafe(18)})
    tally.check(answer.status_code in (200, 201), f"the paying user's activation: {answer.text}")
    paying = answer.json()
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def count(kind: str, sent: int = 1) -> None:
        with lock:
            counts[kind] = counts.get(kind, 0) + sent

    def validations() -> None:
        with requests.Session() as http:
            url = f"{surface.url}/v1/activations/{paying['activation_id']}/validate"
            auth = {"Authorization": f"Bearer {paying['activation_secret']}"}
            while not stop.is_set():
                started = time.perf_counter()
                answer = http.post(url, timeout=30, headers=auth, json={
                    "fingerprint": fingerprint("paying-user"), "nonce": nonce()})
                took = time.perf_counter() - started
                with lock:
                    figures.validations.append(took)
                    if answer.status_code != 200:
                        figures.validation_failures += 1
                        tally.check(False, f"a paying user's validation failed: "
                                           f"HTTP {answer.status_code} {answer.text[:120]}")
                time.sleep(0.02)

    network = surface.network()
    one_network: list[int] = []

    def from_one_network() -> int:
        if not more_trials:
            time.sleep(0.05)
            return 0
        one_network.append(_erase(http, surface, more_trials.pop(), network).status_code)
        return 1

    def sent_one(fn: Callable[[Surface, Tally], None]) -> Callable[[], int]:
        def send() -> int:
            fn(surface, tally)
            return 1
        return send

    def attacker(kind: str, fn: Callable[[], int]) -> None:
        while not stop.is_set():
            count(kind, fn())

    with requests.Session() as http:
        attackers: list[tuple[str, Callable[[], int]]] = [
            ("mixed: 1 MiB admin, no key", sent_one(admin_bomb)),
            ("mixed: public bombs", sent_one(public_bomb)),
            ("mixed: erasures, new networks", lambda: erasure_flood(surface, http, tally,
                                                                    trials)),
            ("mixed: erasures, one network", from_one_network),
        ]
        threads = [threading.Thread(target=validations)]
        threads += [threading.Thread(target=attacker, args=a) for a in attackers]
        before = surface.server.cpu_seconds()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        spent = surface.server.cpu_seconds() - before
    total = sum(counts.values()) + len(figures.validations)
    for kind, sent in counts.items():
        figures.sent[kind] = sent
    tally.check(one_network.count(200) <= ERASURE_ADDRESS_ATTEMPTS
                and set(one_network) <= {200, 429},
                f"erasures from one network: {one_network.count(200)} let through "
                f"(limit {ERASURE_ADDRESS_ATTEMPTS}), answers {sorted(set(one_network))}")
    figures.sent["mixed: all requests"] = total
    figures.cpu_ms["mixed: all requests"] = spent * 1000 / max(1, total)


def family(scale: Scale) -> Tally:
    """Short: 10 of each kind and 3 s of everything at once; long: 300 and 60 s, timed."""
    tally = Tally("public surface cost")
    with tempfile.TemporaryDirectory(prefix="sdna-surface-") as folder, LocalServer(
            Path(folder), log_level="warning", forwarded_allow_ips="127.0.0.1",
            env={"SOFTWARE_DNA_ERASURE_ATTEMPTS": str(ERASURE_ATTEMPTS),
                 "SOFTWARE_DNA_ERASURE_ADDRESS_ATTEMPTS": str(ERASURE_ADDRESS_ATTEMPTS)}) as srv:
        product = "surface-" + secrets.token_hex(3)
        srv.admin.setup_product(product, trial_days=7)
        key = srv.admin.issue_license(product, seats=5)["license_key"]
        figures = run(Surface(srv, product, key), scale, tally)
        log = srv.log_path.read_text(encoding="utf-8", errors="replace")
        tally.check("Traceback" not in log, "a traceback in the server log:\n" +
                    log[log.find("Traceback"):][:1500])
    for line in figures.lines():
        print(line, flush=True)
    return tally


def test_public_surface_cost_short() -> None:
    """The answers of every kind of cheap attack, and a paying user served meanwhile."""
    family(Scale.SHORT).assert_clean()
