"""Personal data: erased everywhere, and never sent when not given.

Erasure (by the vendor, and by the end user through the SDK), on SQLite and
PostgreSQL: afterwards no byte of the erased email address or registration
text, nor of their stored forms (ciphertexts, the email's search hash),
remains in the SQLite file, its WAL and journal, any PostgreSQL table (every
row as text), the server's log file (run at ``debug`` level), or the end
user's store, decrypted (and the rollback witness beside it).  The database
checks are those of ``tests/server/test_erasure_and_keys.py``, reused.

No personal data given: the SDK talks to the real server through a
recording reverse proxy on 127.0.0.1, through a whole life (trial, activation,
checks, refresh, settings, renewal, password reset request, erasure request,
deactivation), and every request it sent -- path, headers and body -- is
inspected: no personal field, every fingerprint component a keyed hash (or
null; the MAC addresses a list of them; no host name), and
none of this machine's raw identifiers (machine id, host name, MAC
addresses, CPU model, OS user name and home folder) in any form.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import re
import secrets
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from software_dna import LicenseClient, LicenseError, Mode
from software_dna import fingerprint as fp
from software_dna.client.rollback import RollbackGuard
from software_dna.server.testing import LocalServer
from tests.fixtures_server import PG_ADMIN_URL, PgDatabases
from tests.identifiers import appears, raw_identifiers
from tests.security._family import Scale, Tally
from tests.server.test_erasure_and_keys import _db_rows, _needles, _raw_database_after_erasure

# --------------------------------------------------------------------------- erasure

#: The erasure's WAL checkpoint runs at most once a minute by default; these servers
#: erase several times a minute, and each search waits for the checkpoint.
QUICK_CHECKPOINT = {"SOFTWARE_DNA_ERASURE_CHECKPOINT_INTERVAL": "1"}


_TOKEN = re.compile(r"v4\.public\.([A-Za-z0-9_-]+)")


def _opened(text: str) -> list[bytes]:
    """``text``, and the payload of every PASETO token in it (the claims are base64url)."""
    found = [text.encode()]
    for match in _TOKEN.finditer(text):
        raw = match.group(1)
        with contextlib.suppress(ValueError):
            found.append(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))[:-64])
    return found


def _store_bytes(client: LicenseClient) -> bytes:
    """Everything the end user's machine holds for the product: decrypted, tokens opened,
    and the files themselves (store, its neighbours, the rollback witness)."""
    chunks = _opened(json.dumps(client._state.store.read() or {}, ensure_ascii=False))
    folder = client.store_path.parent
    chunks += [p.read_bytes() for p in folder.iterdir() if p.is_file()]
    guard = RollbackGuard(client.product, lambda: fp.machine_secret(client.product))
    chunks += _opened(json.dumps(guard.read() or {}, ensure_ascii=False))
    if guard.path.exists():
        chunks.append(guard.path.read_bytes())
    return b"\n".join(chunks)


def erasure_case(server: LocalServer, store: Path, *, by: str, tally: Tally) -> None:
    """Activate with personal data through the SDK, erase it, and search every place for it."""
    admin = server.admin
    product = "pd-" + secrets.token_hex(4)
    keys = admin.setup_product(product, features=["pro"], limited_features=["view"])
    key = admin.issue_license(product, seats=2)["license_key"]
    tag = secrets.token_hex(4)
    email = f"Erin.Eraser.{tag}@Example.org"
    registration = {"name": f"Erin Q. Eraser {tag}", "company": f"Eraser {tag} GmbH"}
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=store, timeout=10)
    try:
        lic = client.activate(key, email=email, registration=registration, consent=True)
        tally.check(lic.email == email, f"{by}: the token does not carry the email")
        client.settings = {"signature": f"Regards, {registration['name']}"}
        (user,) = admin.find_end_users(email)
        clear, stored = _needles(server, user["id"], email, registration)
        clear += [registration["name"].encode(), email.lower().encode(), tag.encode()]
        local_before = _store_bytes(client)
        tally.check(email.encode() in local_before,
                    f"{by}: the search cannot see the email in the store (the check is blind)")
        if by == "vendor":
            admin.erase_end_user(user["id"])
            limited = client.refresh()  # the next contact wipes the local copy
        else:
            limited = client.request_erasure()
        tally.check(limited.mode is Mode.LIMITED and limited.email is None,
                    f"{by}: after erasure the license is {limited.mode}, email {limited.email}")
        places = {
            "the database": _raw_database_after_erasure(server, clear + stored),
            "the server log": server.log_path.read_bytes(),
            "the end user's store": _store_bytes(client),
        }
        for place, data in places.items():
            for needle in clear + (stored if place == "the database" else []):
                tally.check(needle not in data,
                            f"{by} erasure ({server.database_url.split(':')[0]}): "
                            f"{needle[:40]!r} is still in {place}")
        tally.check(admin.find_end_users(email) == [], f"{by}: the email is still searchable")
    finally:
        client.close()


# --------------------------------------------------------------------------- the wire


@dataclass
class Recorded:
    """One request as it crossed the proxy."""

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes


class RecordingProxy:
    """A reverse proxy on 127.0.0.1 that forwards to ``upstream`` and records every request."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.requests: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                proxy.requests.append(Recorded(self.command, self.path,
                                               list(self.headers.items()), body))
                upstream = http.client.HTTPConnection(*proxy.target, timeout=30)
                try:
                    headers = {k: v for k, v in self.headers.items()
                               if k.lower() not in ("connection", "keep-alive")}
                    upstream.request(self.command, self.path, body=body or None,
                                     headers=headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.getheaders():
                        if name.lower() not in ("connection", "transfer-encoding",
                                                "content-length", "keep-alive"):
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    upstream.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward  # noqa: N815

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


#: Field names that would carry personal data.
PERSONAL_FIELDS = {"email", "registration", "name", "company", "user", "username", "phone",
                   "address", "hostname", "machine_id", "mac", "home"}
_HASH = re.compile(r"^[A-Za-z0-9_-]{43}$")


def _fields(doc: Any, where: str = "") -> Iterator[tuple[str, str, Any]]:
    """Every (path, key, value) of a JSON document."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield where, str(key), value
            yield from _fields(value, f"{where}.{key}")
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _fields(value, f"{where}[{i}]")


def inspect_requests(recorded: list[Recorded], identifiers: dict[str, str],
                     tally: Tally) -> None:
    """Every recorded request: no personal field, hashed components, no raw identifier."""
    for r in recorded:
        label = f"{r.method} {r.path.split('?')[0]}"
        text = r.body.decode("utf-8", "replace")
        doc: Any = None
        if r.body:
            try:
                doc = json.loads(text)
            except ValueError:
                tally.check(False, f"{label}: a body that is not JSON")
        for where, key, value in _fields(doc):
            if where.endswith(".fingerprint.components"):
                # algorithm 2: a hash, null (unreadable) or, for mac, a list of hashes;
                # the host name is no component any more
                hashes = value if key == "mac" and isinstance(value, list) else [value]
                tally.check(value is None or (bool(hashes) and all(
                    isinstance(v, str) and _HASH.match(v) is not None for v in hashes)),
                    f"{label}: fingerprint component {key} is not a keyed hash")
                tally.check(key != "hostname", f"{label}: a host name component was sent")
                continue
            if where.endswith(".previous.components"):  # algorithm 1, once, to migrate
                tally.check(isinstance(value, str) and _HASH.match(value) is not None,
                            f"{label}: previous component {key} is not a keyed hash")
                continue
            tally.check(key.lower() not in PERSONAL_FIELDS,
                        f"{label}: a personal field {where}.{key} was sent")
        wire = "\n".join([r.path, *(f"{k}: {v}" for k, v in r.headers), text])
        for name, value in identifiers.items():
            tally.check(not appears(value, wire),
                        f"{label}: the raw {name} ({value!r}) was sent")


def sdk_life_without_personal_data(server: LocalServer, store: Path, tally: Tally) -> None:
    """A whole license life through the recording proxy; every request inspected."""
    admin = server.admin
    product = "wire-" + secrets.token_hex(4)
    keys = admin.setup_product(product, features=["pro"], trial_days=7)
    lic = admin.issue_license(product, seats=2, expires_after_days=30, password="pass phrase")
    (code,) = admin.issue_renewal_codes(10, product_id=product)
    identifiers = raw_identifiers()
    with RecordingProxy(server.url) as proxy:
        client = LicenseClient(product=product, public_keys=keys, server_url=proxy.url,
                               store_path=store, timeout=10)
        try:
            client.start_trial()
            client.activate(lic["license_key"], password="pass phrase")
            client.check()
            client.refresh()
            client.settings = {"theme": "dark"}
            _ = client.settings
            client.renew(code)
            with contextlib.suppress(LicenseError):  # no mail server: refused, still sent
                client.request_password_reset(lic["license_key"])
            client.request_erasure()
            client.refresh()
            client.deactivate()
        finally:
            client.close()
    paths = {r.path.split("?")[0].rsplit("/", 1)[-1] for r in proxy.requests}
    tally.check({"trials", "activations", "validate", "settings", "renewal", "password-resets",
                 "erasure", "deactivate"} <= paths,
                f"the SDK's life did not cross the proxy as expected: {sorted(paths)}")
    inspect_requests(proxy.requests, identifiers, tally)
    rows = _db_rows(server, "SELECT count(*) FROM activations a JOIN licenses l ON "
                            f"a.license_id = l.id WHERE l.product_id = '{product}' "
                            "AND a.end_user_id IS NOT NULL")
    tally.check(rows == [(0,)], f"the server made end users from no personal data: {rows}")


def test_the_wire_check_sees_what_it_looks_for() -> None:
    """The inspection is not blind: personal fields and raw identifiers are found."""
    identifiers = {"host name": "build-host-7", "MAC": "02:fc:00:00:00:01", "user": "vm"}
    bad = [
        Recorded("POST", "/v1/activations", [], b'{"email": "a@b.example"}'),
        Recorded("POST", "/v1/x", [("User-Agent", "x (BUILD-HOST-7)")], b"{}"),
        Recorded("POST", "/v1/x", [], b'{"fingerprint": {"components": {"mac": "02:fc"}}}'),
        Recorded("POST", "/v1/x?who=vm", [], b""),
        Recorded("POST", "/v1/x", [], b'{"c": "02:FC:00:00:00:01"}'),
    ]
    for r in bad:
        tally = Tally("wire")
        inspect_requests([r], identifiers, tally)
        assert tally.unexpected == 1, (r, tally.notes)
    tally = Tally("wire")
    inspect_requests([Recorded("POST", "/v1/x", [], b'{"n": "vmware-7", "m": "vm2"}')],
                     identifiers, tally)
    assert tally.unexpected == 0, tally.notes


# --------------------------------------------------------------------------- pytest


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("pd"), log_level="debug", env=QUICK_CHECKPOINT) as srv:
        yield srv


@pytest.mark.parametrize("by", ["vendor", "end_user"])
def test_erasure_leaves_no_byte(debug_server: LocalServer, tmp_path: Path, by: str) -> None:
    tally = Tally("personal data")
    erasure_case(debug_server, tmp_path / "store", by=by, tally=tally)
    tally.assert_clean()


# PostgreSQL: ``family`` (``make stress``); in ``make test`` the database side of erasure
# on PostgreSQL is tests/server/test_erasure_and_keys.py (any_server).


def test_nothing_personal_on_the_wire(debug_server: LocalServer, tmp_path: Path) -> None:
    tally = Tally("personal data")
    sdk_life_without_personal_data(debug_server, tmp_path / "store", tally)
    tally.assert_clean()


def family(scale: Scale) -> Tally:
    """Erasure both ways on SQLite and PostgreSQL, and the wire (long: 5 rounds of each)."""
    tally = Tally("personal data")
    rounds = scale.pick(1, 5)
    databases = PgDatabases(PG_ADMIN_URL)
    try:
        with tempfile.TemporaryDirectory(prefix="sdna-pd-") as folder:
            base = Path(folder)
            for backend, url in (("sqlite", None), ("postgresql", databases.create())):
                with LocalServer(base / backend, database_url=url, log_level="debug",
                                 env=QUICK_CHECKPOINT) as srv:
                    for n in range(rounds):
                        for by in ("vendor", "end_user"):
                            erasure_case(srv, base / f"store-{backend}-{by}-{n}", by=by,
                                         tally=tally)
                        sdk_life_without_personal_data(srv, base / f"wire-{backend}-{n}",
                                                       tally)
    finally:
        databases.drop_all()
    return tally
