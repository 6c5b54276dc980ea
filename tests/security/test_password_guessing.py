"""Password guessing: wrong activation passwords against one license, from one and many addresses.

The server allows ``rate_limit_attempts`` activation attempts per license and
``rate_limit_address_attempts`` per client address in any
``rate_limit_window`` seconds; past that it answers 429 ``rate_limited`` with
``Retry-After``, which the SDK raises as :class:`ActivationLocked` with
``retry_after``.  What this family shows, over real HTTP:

- however many wrong passwords are sent, from one address or from many
  (``X-Forwarded-For`` through a trusted proxy), no more than the configured
  number are answered in any window; every other attempt is 429 with a
  Retry-After within the window; the right password is refused too while the
  lock holds (the lock-out does not leak which guess was right);
- the SDK's ``retry_after`` is the exact second the server named (``retry_at``):
  after the request was sent, never earlier on a second refusal, and from it
  on the right password works again;
- ``X-Forwarded-For`` from a peer that is not a trusted proxy is ignored, so
  it cannot be used to dodge the per-address limit;
- the lock holds across two uvicorn workers sharing one PostgreSQL database.
"""

from __future__ import annotations

import ipaddress
import secrets
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter

from software_dna import ActivationLocked, LicenseClient, WrongPassword
from software_dna.server.testing import LocalServer
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.security._family import Scale, Tally
from tests.server.helpers import fingerprint, nonce

RIGHT = "the right password"


@dataclass
class Attempt:
    """One activation attempt: when it was sent and answered, and the answer."""

    sent: float
    answered: float
    status: int
    code: str
    retry_after: int | None
    right: bool


def _attempt(http: requests.Session, url: str, product: str, key: str, password: str, *,
             address: str | None = None, machine: str = "guesser") -> Attempt:
    headers = {"X-Forwarded-For": address} if address is not None else {}
    sent = time.monotonic()
    answer = http.post(f"{url}/v1/activations", timeout=30, headers=headers, json={
        "product": product, "license_key": key, "password": password,
        "fingerprint": fingerprint(machine), "nonce": nonce(),
        "idempotency_key": secrets.token_urlsafe(18)})
    answered = time.monotonic()
    try:
        code = str(answer.json().get("error", {}).get("code", ""))
    except ValueError:
        code = "not json"
    header = answer.headers.get("Retry-After")
    return Attempt(sent, answered, answer.status_code, code,
                   int(header) if header is not None and header.isdigit() else None,
                   password == RIGHT)


def random_address(n: int) -> str:
    """A public-looking IPv4 or IPv6 address (every third one IPv6, each in its own /64:
    the server counts an IPv6 client as its /64 network)."""
    if n % 3 == 2:
        return str(ipaddress.IPv6Address((0x2001_0db8 << 96) + (secrets.randbits(32) << 64)
                                         + secrets.randbits(64)))
    return str(ipaddress.IPv4Address((100 << 24) + secrets.randbits(24)))


def most_in_a_window(attempts: list[Attempt], window: float) -> int:
    """The most of ``attempts`` surely processed within ``window`` seconds of each other."""
    ordered = sorted(attempts, key=lambda a: a.sent)
    worst = 0
    for i, first in enumerate(ordered):
        worst = max(worst, sum(1 for a in ordered[i:] if a.answered - first.sent < window))
    return worst


class _FromAddress(HTTPAdapter):
    """Connections from another loopback address (127.0.0.2: not the trusted proxy)."""

    def __init__(self, source: str) -> None:
        self._source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self._source, 0)
        super().init_poolmanager(*args, **kwargs)


def judge(attempts: list[Attempt], *, limit: int, window: int, tally: Tally, label: str) -> None:
    """Every attempt answered as designed, and never more than ``limit`` per window.

    An attempt answered 403 ``wrong_password`` (or 201/200 for the right password)
    counts as a guess the server let through.  In any span of ``window``
    seconds (by the time the answers came back, widened by the time the
    requests took, so a slow machine cannot make the check fail wrongly) at
    most ``limit`` guesses may be let through.
    """
    for a in attempts:
        if a.status == 429:
            ok = a.code == "rate_limited" and a.retry_after is not None and \
                1 <= a.retry_after <= window + 1
        else:
            ok = a.status in (200, 201) if a.right else (a.status, a.code) == (403,
                                                                                "wrong_password")
        tally.check(ok, f"{label}: HTTP {a.status} {a.code} Retry-After {a.retry_after} "
                        f"(right password: {a.right})")
    through = [a for a in attempts if a.status != 429]
    worst = most_in_a_window(through, window)
    tally.check(worst <= limit, f"{label}: {worst} guesses let through within {window} s "
                                f"(limit {limit})")
    # Never locked is a finding only when more than `limit` attempts surely fell in one
    # window (a machine too loaded to send them that fast is not locked, rightly).
    surely = most_in_a_window(attempts, window)
    tally.check(len(through) >= 1 and (surely <= limit
                                       or any(a.status == 429 for a in attempts)),
                f"{label}: never locked ({len(through)} let through of {len(attempts)}, "
                f"{surely} within one window)")


def guess(server: LocalServer, attempts: int, *, many_addresses: bool, label: str,
          tally: Tally) -> tuple[str, str, list[str]]:
    """``attempts`` wrong passwords (every 25th the right one) against one new license."""
    product = "guess-" + secrets.token_hex(3)
    keys = server.admin.setup_product(product)
    key = server.admin.issue_license(product, seats=5, password=RIGHT)["license_key"]
    settings = server.settings
    made: list[Attempt] = []
    with requests.Session() as http:
        for n in range(attempts):
            password = RIGHT if n % 25 == 24 else f"guess {n}"
            address = random_address(n) if many_addresses else None
            made.append(_attempt(http, server.url, product, key, password, address=address))
    judge(made, limit=settings.rate_limit_attempts, window=settings.rate_limit_window,
          tally=tally, label=label)
    return product, key, keys


def sdk_after_lockout(server: LocalServer, product: str, key: str, keys: list[str],
                      store: Path, tally: Tally) -> None:
    """The SDK sees ActivationLocked with retry_after; after it, the right password works."""
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=store, timeout=10)
    try:
        window = server.settings.rate_limit_window
        deadline = time.monotonic() + 4 * window + 30
        locked: ActivationLocked | None = None
        sent = datetime.now(timezone.utc)
        while locked is None and time.monotonic() < deadline:
            sent = datetime.now(timezone.utc)
            try:
                client.activate(key, password="one more guess")
            except ActivationLocked as exc:
                locked = exc
            except WrongPassword:
                continue
        if not tally.check(locked is not None, "the SDK never raised ActivationLocked"):
            return
        assert locked is not None
        answered = datetime.now(timezone.utc)
        retry = locked.retry_after
        # The server decided between `sent` and `answered` and named the exact second
        # the lock lifts (after its own now, within the window plus its bucket second).
        tally.check(retry is not None
                    and sent < retry <= answered + timedelta(seconds=window + 1),
                    f"ActivationLocked.retry_after {retry} (asked {sent}, answered "
                    f"{answered}, window {window} s)")
        try:
            client.activate(key, password=RIGHT)
            # Let through: only right if the server decided at or after the lock's end,
            # so the answer came after it (one clock: server and client on this machine).
            after = datetime.now(timezone.utc)
            tally.check(retry is not None and after >= retry,
                        f"the right password got through at {after}, while locked (until "
                        f"{retry})")
        except ActivationLocked as again:
            # A refusal after a refusal never names an earlier instant (the same limit
            # names the same second; another one can only lift later).
            tally.check(retry is not None and again.retry_after is not None
                        and again.retry_after >= retry,
                        f"the lock end moved back from {retry} to {again.retry_after}")
        # From the lock's end the right password works -- unless another limit has filled
        # meanwhile (the address counts every attempt the license limit refused, the one
        # above included): then that refusal names its own, later end. Each end must be
        # after the attempt was sent; a few rounds at most (the window is short).
        for _ in range(5):
            if retry is not None:
                time.sleep(max(0.0, (retry - datetime.now(timezone.utc)).total_seconds())
                           + 0.05)
            sent = datetime.now(timezone.utc)
            try:
                lic = client.activate(key, password=RIGHT)
            except ActivationLocked as exc:
                if not tally.check(exc.retry_after is not None and exc.retry_after > sent,
                                   f"refused at {sent} by a lock that ended at "
                                   f"{exc.retry_after}"):
                    break
                retry = exc.retry_after
                continue
            except Exception as exc:  # any other refusal is the finding
                tally.check(False, f"after retry_after the right password failed: {exc!r}")
                break
            tally.check(lic.product == product, "the activation after the lock-out is wrong")
            break
        else:
            tally.check(False, f"the right password was still locked out after 5 lock ends "
                               f"(the last {retry})")
    finally:
        client.close()


def spoofed_addresses(server: LocalServer, attempts: int, tally: Tally) -> None:
    """X-Forwarded-For from a peer that is not a trusted proxy does not dodge the address limit.

    ``server`` trusts 127.0.0.1 only; these requests come from 127.0.0.2.
    """
    product = "spoof-" + secrets.token_hex(3)
    server.admin.setup_product(product)
    limit = server.settings.rate_limit_address_attempts
    made: list[Attempt] = []
    with requests.Session() as http:
        http.mount("http://", _FromAddress("127.0.0.2"))
        for n in range(attempts):  # unknown keys: only the address limit can stop these
            made.append(_attempt(http, server.url, product, f"NOPE-{n:04d}-{secrets.token_hex(2)}",
                                 "x", address=random_address(n)))
    answered = most_in_a_window([a for a in made if a.status == 404],
                                server.settings.rate_limit_window)
    tally.check(answered <= limit and any(a.status == 429 for a in made),
                f"spoofed X-Forwarded-For: {answered} unknown keys answered within a window "
                f"of {len(made)} (address limit {limit})")
    for a in made:
        tally.check(a.status in (404, 429), f"spoofed X-Forwarded-For: HTTP {a.status}")


def parallel_guesses(server: LocalServer, attempts: int, tally: Tally) -> None:
    """Wrong passwords from 8 threads, a new connection each (both workers serve them)."""
    product = "guess-pg-" + secrets.token_hex(3)
    server.admin.setup_product(product)
    key = server.admin.issue_license(product, password=RIGHT)["license_key"]
    made: list[Attempt] = []
    lock = threading.Lock()
    per_thread = max(1, attempts // 8)

    def run(t: int) -> None:
        for n in range(per_thread):
            with requests.Session() as http:
                http.headers["Connection"] = "close"
                a = _attempt(http, server.url, product, key, f"guess {t}/{n}",
                             address=random_address(n))
            with lock:
                made.append(a)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    judge(made, limit=server.settings.rate_limit_attempts,
          window=server.settings.rate_limit_window, tally=tally, label="two workers")


def _local(folder: Path, *, window: int, **kwargs: object) -> LocalServer:
    return LocalServer(folder, rate_limit_attempts=5, rate_limit_address_attempts=20,
                       rate_limit_window=window, log_level="warning",
                       **kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- pytest


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server that trusts 127.0.0.1 as its proxy (X-Forwarded-For honoured)."""
    with _local(tmp_path_factory.mktemp("guess"), window=1,
                forwarded_allow_ips="127.0.0.1") as srv:
        yield srv


def test_one_address(proxied: LocalServer, tmp_path: Path) -> None:
    # No X-Forwarded-For: the trusted proxy's own address is the client's.
    tally = Tally("password guessing")
    product, key, keys = guess(proxied, 40, many_addresses=False, label="one address",
                               tally=tally)
    sdk_after_lockout(proxied, product, key, keys, tmp_path / "store", tally)
    tally.assert_clean()


def test_many_addresses_through_a_trusted_proxy(proxied: LocalServer, tmp_path: Path) -> None:
    tally = Tally("password guessing")
    product, key, keys = guess(proxied, 40, many_addresses=True, label="many addresses",
                               tally=tally)
    sdk_after_lockout(proxied, product, key, keys, tmp_path / "store", tally)
    tally.assert_clean()


def test_untrusted_forwarded_for_is_ignored(proxied: LocalServer) -> None:
    tally = Tally("password guessing")
    spoofed_addresses(proxied, 30, tally)
    tally.assert_clean()


# Two workers on one PostgreSQL: ``family`` (``make stress``); in ``make test`` the same
# lock is held by tests/server/test_ratelimit.py::test_rate_limit_holds_across_workers.


def family(scale: Scale) -> Tally:
    """Short: tens of guesses; long: 1,000 from one address and 1,000 from many, 400 on PG."""
    tally = Tally("password guessing")
    count = scale.pick(40, 1000)
    with tempfile.TemporaryDirectory(prefix="sdna-guess-") as folder:
        base = Path(folder)
        with _local(base / "one", window=2) as srv:
            product, key, keys = guess(srv, count, many_addresses=False, label="one address",
                                       tally=tally)
            sdk_after_lockout(srv, product, key, keys, base / "store-one", tally)
        with _local(base / "many", window=2, forwarded_allow_ips="127.0.0.1") as srv:
            product, key, keys = guess(srv, count, many_addresses=True,
                                       label="many addresses", tally=tally)
            sdk_after_lockout(srv, product, key, keys, base / "store-many", tally)
            spoofed_addresses(srv, scale.pick(30, 200), tally)
        databases = PgDatabases(PG_ADMIN_URL)
        try:
            with _local(base / "pg", window=60, workers=2, database_url=databases.create(),
                        forwarded_allow_ips="127.0.0.1") as srv:
                parallel_guesses(srv, scale.pick(24, 400), tally)
        finally:
            databases.drop_all()
    return tally
