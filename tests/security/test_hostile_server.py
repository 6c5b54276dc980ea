"""A hostile license server: every public method raises only what its docstring lists.

Over real sockets, on purpose: what is tested is the SDK's whole boundary
(HTTPTransport, the answer parsing, the feature classes, the facade's last
net) against bytes a broken or malicious server sends -- huge headers and
bodies, compression bombs, slow and truncated bodies, wrong content types,
runaway nesting, 5,000-digit numbers, absurd ``Retry-After``, redirects,
1xx/3xx/5xx statuses, valid JSON of the wrong shape, dropped connections and
bytes that are not HTTP. For each case and each public method of
``LicenseClient`` the exception raised must be one of the classes named in
the method's own "Raises:" section (so a docstring that forgets one fails
here), and the call must end within its deadline plus a margin.

``family(scale)`` runs the cases (``make stress``: several rounds, the slow
cases included); ``test_family_short_run`` runs one round inside ``make test``.
"""

from __future__ import annotations

import contextlib
import gzip
import inspect
import re
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

import software_dna
from software_dna import LicenseClient, LicenseError
from tests.security._family import Scale, Tally
from tests.security._tokenlab import Lab

#: Seconds one online operation may take (the client's ``timeout``).
TIMEOUT = 2.0
#: Allowed on top of the deadline (thread start, the fallback check, slow CI).
MARGIN = 3.0

Answer = Callable[[bytes], bytes]


def http(status: str, body: bytes = b"", headers: str = "",
         content_type: str = "application/json") -> bytes:
    """A whole HTTP/1.1 answer (``Content-Length`` set unless ``headers`` names it)."""
    head = f"HTTP/1.1 {status}\r\nConnection: close\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    if "content-length" not in headers.lower() and "transfer-encoding" not in headers.lower():
        head += f"Content-Length: {len(body)}\r\n"
    return (head + headers + "\r\n").encode("latin-1") + body


def fixed(raw: bytes) -> Answer:
    return lambda _request: raw


NESTED = b"[" * 200_000 + b"]" * 200_000
HUGE = b'{"token": "' + b"A" * (5 * 1024 * 1024) + b'"}'
BOMB = gzip.compress(b"{" + b" " * (64 * 1024 * 1024) + b"}", compresslevel=9)
CHUNKED_HUGE = b"".join(b"%x\r\n%s\r\n" % (65536, b"7" * 65536) for _ in range(80)) + b"0\r\n\r\n"

#: name -> the raw answer to every request. "slow" ones only in the long run.
CASES: dict[str, Answer] = {
    "huge header line": fixed(http("200 OK", b"{}", "X-Big: " + "a" * 200_000 + "\r\n")),
    "thousands of headers": fixed(http("200 OK", b"{}", "".join(
        f"X-H{i}: v\r\n" for i in range(5000)))),
    "huge body": fixed(http("200 OK", HUGE)),
    "huge chunked body": fixed(http("200 OK", CHUNKED_HUGE, "Transfer-Encoding: chunked\r\n")),
    "gzip bomb": fixed(http("200 OK", BOMB, "Content-Encoding: gzip\r\n")),
    "html": fixed(http("200 OK", b"<html><body>Welcome to the captive portal</body></html>",
                       content_type="text/html")),
    "html 500": fixed(http("500 Internal Server Error", b"<h1>oops</h1>",
                           content_type="text/html")),
    "no content type": fixed(http("200 OK", b'{"token": "x"}', content_type="")),
    "deep nesting 200": fixed(http("200 OK", NESTED)),
    "deep nesting 400": fixed(http("400 Bad Request", NESTED)),
    "deep error object": fixed(http("409 Conflict", b'{"error": ' + b'{"e": ' * 5000
                                    + b"1" + b"}" * 5001)),
    "5000 digits": fixed(http("200 OK", b'{"token": ' + b"9" * 5000 + b"}")),
    "5000 digits in error": fixed(http("429 Too Many Requests",
                                       b'{"error": {"code": "activation_locked", "n": '
                                       + b"1" * 5000 + b"}}")),
    "retry-after absurd": fixed(http("429 Too Many Requests",
                                     b'{"error": {"code": "activation_locked", "message": "x"}}',
                                     "Retry-After: 99999999999999\r\n")),
    "retry-after 5000 digits": fixed(http("429 Too Many Requests",
                                          b'{"error": {"code": "rate_limited"}}',
                                          "Retry-After: " + "9" * 5000 + "\r\n")),
    "retry-after negative": fixed(http("503 Service Unavailable", b"{}",
                                       "Retry-After: -5\r\n")),
    "retry-at absurd": fixed(http("409 Conflict",
                                  b'{"error": {"code": "no_seats_left", '
                                  b'"retry_at": "99999-01-01T00:00:00Z"}}')),
    "activation_locked on every route": fixed(http(
        "429 Too Many Requests",
        b'{"error": {"code": "activation_locked", "message": "Too many attempts."}}',
        "Retry-After: 60\r\n")),
    "untrusted_signing_key": fixed(http(
        "409 Conflict", b'{"error": {"code": "untrusted_signing_key", "message": "ship"}}')),
    "redirect": fixed(http("302 Found", b"", "Location: http://127.0.0.1:1/elsewhere\r\n")),
    "permanent redirect": fixed(http("308 Permanent Redirect", b"{}",
                                     "Location: https://attacker.invalid/\r\n")),
    "100 then nothing": fixed(b"HTTP/1.1 100 Continue\r\n\r\n"),
    "100 then garbage": fixed(b"HTTP/1.1 100 Continue\r\n\r\n" + b"\x00\x01garbage" * 100),
    "204": fixed(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"),
    "304": fixed(b"HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n"),
    "502": fixed(http("502 Bad Gateway", b"{}")),
    "503": fixed(http("503 Service Unavailable", b'{"error": {"code": "unavailable"}}')),
    "599": fixed(http("599 Whatever", b"{}")),
    "status not a number": fixed(b"HTTP/1.1 abc OK\r\n\r\n{}"),
    "not http": fixed(b"\x16\x03\x01\x02\x00garbage that is no HTTP at all" * 10),
    "truncated body": fixed(http("200 OK", b'{"token": "v4.pu', "Content-Length: 4000\r\n")),
    "conflicting lengths": fixed(http("200 OK", b"{}", "Content-Length: 2\r\n"
                                      "Content-Length: 20\r\n")),
    "dropped": fixed(b""),
    "json array": fixed(http("200 OK", b"[1, 2, 3]")),
    "json string": fixed(http("200 OK", b'"token"')),
    "json null": fixed(http("200 OK", b"null")),
    "duplicate keys": fixed(http("200 OK", b'{"token": "a", "token": "b"}')),
    "nan": fixed(http("200 OK", b'{"token": NaN}')),
    "not utf-8": fixed(http("200 OK", b'{"token": "\xff\xfe"}')),
    "wrong shapes 200": fixed(http("200 OK", b'{"token": 5, "activation_id": [], '
                                   b'"activation_secret": {}, "nonce": 1, "server_time": [],'
                                   b' "receipt": 7, "document": "x", "settings": 3, '
                                   b'"expires_at": 5, "lease_expires_at": {}}')),
    "garbage token": fixed(http("200 OK", b'{"token": "v4.public.AAAA", "activation_id": '
                                b'"act_1", "activation_secret": "s", "nonce": "n", '
                                b'"server_time": "2020-01-01T00:00:00Z", "receipt": '
                                b'"v4.public.AAAA", "document": {}, "expires_at": '
                                b'"2020-01-01T00:00:00Z"}')),
    "error of the wrong shape": fixed(http("403 Forbidden", b'{"error": ["license_revoked"]}')),
    "error code a number": fixed(http("403 Forbidden", b'{"error": {"code": 403}}')),
    "unknown code": fixed(http("418 I'm a teapot", b'{"error": {"code": "teapot"}}')),
    "unsigned revocation": fixed(http("403 Forbidden", b'{"error": {"code": "license_revoked",'
                                      b' "message": "revoked", "receipt": "v4.public.AAAA"}}')),
}

#: Cases that take the whole deadline: only in ``make stress``.
SLOW_CASES: dict[str, Answer] = {}


def _slow(conn: socket.socket) -> None:
    """An answer that starts and then trickles one byte a second."""
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{"
    conn.sendall(head)
    for _ in range(20):
        time.sleep(1.0)
        conn.sendall(b" ")


@contextlib.contextmanager
def hostile_server() -> Iterator[tuple[str, dict[str, Answer | str]]]:
    """A server on 127.0.0.1 answering every request with ``current["answer"]``.

    Yields ``(url, current)``; set ``current["answer"]`` to a case (or ``"slow"``).
    """
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()
    current: dict[str, Answer | str] = {"answer": fixed(b"")}

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request and len(request) < 1 << 20:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                request += chunk
            head, _, body = request.partition(b"\r\n\r\n")
            match = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            wanted = int(match.group(1)) if match else 0
            while len(body) < wanted:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            answer = current["answer"]
            if answer == "slow":
                _slow(conn)
                return
            assert callable(answer)
            conn.sendall(answer(request))
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept_loop, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", current
    finally:
        stop.set()
        thread.join(2)
        listener.close()


# --------------------------------------------------------------------------- what each may raise


def documented(method: Callable[..., object]) -> tuple[type[LicenseError], ...]:
    """The exception classes named in ``method``'s "Raises:" section (SDK names only)."""
    doc = inspect.getdoc(method) or ""
    section = doc.partition("Raises:")[2]
    names = set(re.findall(r"\b([A-Z][A-Za-z]+)\b", section))
    found = tuple(cls for name in sorted(names)
                  if isinstance(cls := getattr(software_dna, name, None), type)
                  and issubclass(cls, LicenseError))
    assert found, f"{method.__qualname__}: no Raises: section"
    return found


def calls(client: LicenseClient, lab: Lab) -> dict[str, tuple[Callable[[], object],
                                                           Callable[..., object]]]:
    """Every public method of the client, with arguments, beside the function documenting it."""
    cls = LicenseClient

    def set_settings() -> None:
        client.settings = {"theme": "dark"}

    def get_settings() -> object:
        return client.settings

    settings_doc = cls.settings.__doc__ or ""

    def settings_documented() -> None:
        """Placeholder."""

    settings_documented.__doc__ = settings_doc
    return {
        "check": (client.check, cls.check),
        "refresh": (client.refresh, cls.refresh),
        "activate": (lambda: client.activate("ABCD-EFGH-JKLM-NPQR", password="pw"), cls.activate),
        "start_trial": (client.start_trial, cls.start_trial),
        "renew": (lambda: client.renew("RENEW-7KQ2-XPNM-4R9T-HCWZ"), cls.renew),
        "checkout": (client.checkout, cls.checkout),
        "checkin": (client.checkin, cls.checkin),
        "request_erasure": (client.request_erasure, cls.request_erasure),
        "request_password_reset": (lambda: client.request_password_reset("ABCD-EFGH-JKLM-NPQR"),
                                   cls.request_password_reset),
        "reset_password": (lambda: client.reset_password("ABCD-EFGH-JKLM-NPQR", "K7QF-3MZP-WX2R",
                                                         "new"), cls.reset_password),
        "settings (read)": (get_settings, settings_documented),
        "settings (write)": (set_settings, settings_documented),
        "install_token": (lambda: client.install_token("v4.public.AAAA"), cls.install_token),
        "create_activation_request": (lambda: client.create_activation_request(
            "ABCD-EFGH-JKLM-NPQR"), cls.create_activation_request),
        "activate_offline": (lambda: client.activate_offline("garbage"), cls.activate_offline),
        "deactivate": (client.deactivate, cls.deactivate),
        "deactivate_offline": (client.deactivate_offline, cls.deactivate_offline),
    }


def stored(lab: Lab, url: str) -> LicenseClient:
    """A client with an activation whose refresh is due, talking to ``url``: a new
    license each time (one given up by ``deactivate_offline`` is refused here for good)."""
    now = lab.clock()
    license_id, activation_id = "lic_" + secrets.token_hex(4), "act_" + secrets.token_hex(4)
    lab.client.install_token(lab.token(refresh_by=now - timedelta(hours=1),
                                       license_id=license_id, activation_id=activation_id))
    lab.client._state.update(lambda d: d.update({"activation_id": activation_id,
                                                 "activation_secret": "sas_test"}))
    return lab.make_client(server_url=url, timeout=TIMEOUT, connect_timeout=1.0)


def run_case(tally: Tally, folder: Path, url: str, current: dict[str, Answer | str],
             name: str, answer: Answer | str, *, share: tuple[int, int] = (0, 1)) -> None:
    """Every public method against one hostile answer (``share`` = (k, n): the methods
    whose index is k modulo n; the short run spreads the pairs over the cases)."""
    current["answer"] = answer
    lab = Lab(folder / re.sub(r"\W+", "-", name))
    try:
        client = stored(lab, url)
        for index, (method, (call, documenting)) in enumerate(calls(client, lab).items()):
            if index % share[1] != share[0]:
                continue
            allowed = documented(documenting)
            started = time.monotonic()
            outcome: BaseException | None = None
            try:
                call()
            except BaseException as exc:  # what escapes is the finding
                outcome = exc
            took = time.monotonic() - started
            ok = outcome is None or isinstance(outcome, allowed)
            tally.check(ok, f"{name}: {method} raised {type(outcome).__name__}: "
                            f"{str(outcome)[:200]} (documented: "
                            f"{', '.join(c.__name__ for c in allowed)})")
            tally.check(took < 3 * TIMEOUT + MARGIN, f"{name}: {method} took {took:.1f} s")
            if method in ("deactivate", "deactivate_offline"):
                client.close()
                client = stored(lab, url)  # put the activation back for the next call
        client.close()
    finally:
        lab.client.close()


def family(scale: Scale) -> Tally:
    """Every case against every public method, three rounds, the slow answer included
    (long); in the short run each case meets a third of the methods, in turn."""
    tally = Tally("hostile server")
    cases: dict[str, Answer | str] = dict(CASES)
    if scale is Scale.LONG:
        cases["slow body"] = "slow"
    spread = scale.pick(3, 1)
    with tempfile.TemporaryDirectory() as folder, hostile_server() as (url, current):
        for round_ in range(scale.pick(1, 3)):
            for number, (name, answer) in enumerate(cases.items()):
                run_case(tally, Path(folder) / str(round_), url, current, name, answer,
                         share=(number % spread, spread))
    return tally


# urllib3 drops (without closing) the connection of an answer whose headers it refuses
# (two Content-Length values): the garbage collector closes the socket, and says so.
@pytest.mark.filterwarnings(
    "ignore:Exception ignored in. <socket.socket:pytest.PytestUnraisableExceptionWarning")
def test_family_short_run() -> None:
    family(Scale.SHORT).assert_clean()


def test_documented_lists_are_read() -> None:
    """The docstring reader finds the classes (else the family would check nothing)."""
    assert software_dna.ServerUnreachable in documented(LicenseClient.refresh)
    assert software_dna.LicenseRevoked in documented(LicenseClient.check)
