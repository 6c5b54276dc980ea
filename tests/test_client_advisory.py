"""One regression test per known attack on how the SDK reads the server's answers.

The attacker sits on the network (a proxy with its own CA, or anything between
the app and the server): it forwards the app's requests to the real server and
rewrites the answers. Whatever it sends, the SDK raises only its documented
errors, never acts on a refusal the server did not sign for this request, and
never trades a paying user's valid license for less.
"""

from __future__ import annotations

import io
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import requests.adapters
from urllib3 import HTTPResponse

from software_dna import (
    ActivationLocked,
    LicenseClient,
    LicenseError,
    Mode,
    NoSeatsLeft,
    NotActivated,
    ServerError,
    TrialUnavailable,
)
from software_dna.client.periodic import PeriodicCheck
from software_dna.client.transport import HTTPTransport, Response, Transport
from software_dna.wire.claims import Kind

from .inprocess import InProcessServer
from .security.test_hostile_server import documented

#: (path, real answer) -> the answer the app receives instead, or None to pass it on.
Rewrite = Callable[[str, Response], "Response | None"]


class ManInTheMiddle(Transport):
    """Forwards to the real server; ``rewrite`` may replace any answer."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.rewrite: Rewrite = lambda path, answer: None

    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        answer = self.inner.request(method, path, **kwargs)
        return self.rewrite(path, answer) or answer


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    return inprocess_server


class Machine:
    """A vendor's app on one machine, its network going through :class:`ManInTheMiddle`."""

    def __init__(self, server: InProcessServer, store: Path, **policy: Any) -> None:
        self.product = "adv-" + secrets.token_hex(4)
        keys = server.admin.setup_product(self.product, refresh_interval=60,
                                          offline_grace_period=3600, **policy)
        self.offset = timedelta(0)
        self.network = ManInTheMiddle(server.transport())
        self.client = LicenseClient(product=self.product, public_keys=keys,
                                    server_url=server.url, store_path=store,
                                    clock=self.now, transport=self.network)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def refresh_due(self) -> None:
        """Move the clock past the token's refresh-by time (within the grace period)."""
        self.offset = timedelta(minutes=5)


def error(status: int, code: str, headers: Mapping[str, str] | None = None,
          **fields: Any) -> Response:
    return Response(status, {"error": {"code": code, "message": "injected", **fields}},
                    dict(headers or {}))


def on(suffix: str, forged: Response) -> Rewrite:
    return lambda path, answer: forged if path.endswith(suffix) else None


@pytest.fixture
def machine(server: InProcessServer, tmp_path: Path) -> Machine:
    m = Machine(server, tmp_path / "store")
    m.client.activate(server.admin.issue_license(m.product)["license_key"])
    return m


@pytest.mark.parametrize("retry", [
    {"retry-after": "8640000000000"},        # seconds past the end of the calendar
    {"retry-after": "9" * 5000},             # an integer Python refuses to parse
    {"retry-after": "\u00b2"},               # a digit to str.isdigit(), not to int()
])
def test_retry_after_out_of_range_is_no_crash(machine: Machine, retry: dict[str, str]) -> None:
    machine.network.rewrite = on("/validate", error(403, "bogus", retry))
    with pytest.raises(ServerError):
        machine.client.refresh()
    machine.refresh_due()
    assert machine.client.check().mode is Mode.FULL  # the stored license, in its grace period


def test_retry_times_out_of_range_on_a_seat_refusal(server: InProcessServer,
                                                    tmp_path: Path) -> None:
    m = Machine(server, tmp_path / "store")
    key = server.admin.issue_license(m.product)["license_key"]
    m.network.rewrite = on("/v1/activations", error(
        409, "no_seats_left", {"retry-after": "8640000000000"},
        retry_at="9999-12-31T23:59:59-14:00"))
    with pytest.raises(NoSeatsLeft) as refused:
        m.client.activate(key)
    assert refused.value.retry_after is None


@pytest.mark.parametrize("code", [
    "rate_limited", "trial_used", "trial_not_available", "unknown_license_key",
    "consent_required", "wrong_password", "password_reset_required",
    "unknown_renewal_code", "renewal_code_used", "renewal_not_applicable",
])
def test_codes_the_validation_route_never_sends_are_a_failed_refresh(
        machine: Machine, code: str) -> None:
    machine.network.rewrite = on("/validate", error(429 if code == "rate_limited" else 403,
                                                    code))
    with pytest.raises(ServerError):
        machine.client.refresh()
    machine.refresh_due()
    assert machine.client.check().mode is Mode.FULL


def test_a_forged_refusal_does_not_turn_a_paid_license_into_a_trial(
        server: InProcessServer, tmp_path: Path) -> None:
    m = Machine(server, tmp_path / "store", trial_days=14)
    m.client.activate(server.admin.issue_license(m.product)["license_key"])
    m.refresh_due()
    m.network.rewrite = on("/validate", error(429, "rate_limited"))
    with pytest.raises(TrialUnavailable):
        m.client.start_trial()
    assert m.client.check().kind is Kind.FULL


def test_a_signed_receipt_cannot_be_relabelled(machine: Machine, server: InProcessServer) -> None:
    """A real, temporary suspension relabelled as a removal must not delete the activation."""
    license_id = machine.client.check().license_id
    server.admin.suspend_license(license_id)

    def relabel(path: str, answer: Response) -> Response | None:
        if not path.endswith("/validate") or answer.status != 403:
            return None
        receipt = answer.body["error"]["receipt"]
        return error(410, "activation_removed", receipt=receipt)

    machine.network.rewrite = relabel
    with pytest.raises(ServerError, match="not signed"):
        machine.client.refresh()
    machine.network.rewrite = lambda path, answer: None
    server.admin.resume_license(license_id)
    assert machine.client.refresh().mode is Mode.FULL


def test_every_forged_answer_is_a_license_error(machine: Machine) -> None:
    """Whatever the network answers, the app sees only the SDK's own errors."""
    forged = [
        error(500, "internal_error", {"retry-after": "-1"}),
        error(410, "activation_moved"),
        error(403, "license_revoked", receipt="v4.public.AAAA"),
        Response(418, {"error": "not an object"}, {}),
        Response(200, {"token": 5}, {}),
        Response(200, {}, {}),
    ]
    for answer in forged:
        machine.network.rewrite = on("/validate", answer)
        try:
            machine.client.refresh()
        except NotActivated:
            pytest.fail(f"a forged {answer!r} ended the activation")
        except LicenseError:
            pass
    machine.network.rewrite = lambda path, answer: None
    assert machine.client.refresh().mode is Mode.FULL


# --------------------------------------------------------------------------- raw answers


class Canned(requests.adapters.HTTPAdapter):
    """A server that answers every request with these bytes (no socket)."""

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        super().__init__()
        self.status, self.body, self.headers = status, body, dict(headers)

    def send(self, request: requests.PreparedRequest, *args: Any,
             **kwargs: Any) -> requests.Response:
        raw = HTTPResponse(body=io.BytesIO(self.body), status=self.status,
                           headers={"Content-Type": "application/json", **self.headers},
                           preload_content=False)
        return self.build_response(request, raw)


def hostile(status: int, body: bytes, headers: Mapping[str, str] | None = None) -> HTTPTransport:
    def session() -> requests.Session:
        http = requests.Session()
        http.mount("http://hostile.invalid", Canned(status, body, headers or {}))
        return http

    return HTTPTransport("http://hostile.invalid", session_factory=session, sleep=lambda _: None)


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(("status", "body", "headers"), [
    (200, NESTED, {}),  # RecursionError in a naive parser
    (400, NESTED, {}),
    (200, b'{"token": ' + b"9" * 5000 + b"}", {}),  # ValueError: int digits limit
    (400, b'{"error": {"code": "rate_limited", "message": "' + b"x" * 10 + b'"}, "n": '
     + b"1" * 5000 + b"}", {}),
    (429, b'{"error": {"code": "rate_limited", "message": "slow down"}}',
     {"Retry-After": "99999999999999"}),  # OverflowError in a naive time sum
    (429, b'{"error": {"code": "rate_limited", "message": "slow down"}}',
     {"Retry-After": "9" * 5000}),
    (200, b'{"token": 1, "token": 2}', {}),  # duplicate keys
    (200, b'{"token": NaN}', {}),
    (200, b"\xff\xfe not utf-8", {}),
    (503, NESTED, {}),
], ids=["deep-200", "deep-400", "5000-digits", "5000-digits-error", "retry-after-huge",
        "retry-after-5000-digits", "duplicate-keys", "nan", "not-utf8", "deep-503"])
def test_a_hostile_server_raises_only_license_errors(
        tmp_path: Path, status: int, body: bytes, headers: dict[str, str]) -> None:
    """Whatever bytes come back, activate() and start_trial() raise a LicenseError only."""
    client = LicenseClient(product="acme-editor", public_keys=["k4.public." + "A" * 43],
                           transport=hostile(status, body, headers), store_path=tmp_path,
                           timeout=5.0)
    calls: list[Callable[[], object]] = [
        lambda: client.activate("ABCD-EFGH-JKLM-NPQR"), client.start_trial]
    for call in calls:
        with pytest.raises(LicenseError):
            call()


def test_activation_locked_on_a_due_refresh_is_a_failed_refresh(machine: Machine) -> None:
    """A 429 ``activation_locked`` answer to the refresh check() makes (unsigned: anyone on
    the network can send one) is no verdict: check() returns the stored license in its
    grace period; refresh() raises the documented ActivationLocked with ``retry_after``."""
    machine.refresh_due()
    machine.network.rewrite = on("/validate", error(
        429, "activation_locked", {"retry-after": "60"}))
    lic = machine.client.check()
    assert lic.offline_grace_ends_at is not None  # working, in its grace period
    with pytest.raises(ActivationLocked) as locked:
        machine.client.refresh()
    assert locked.value.retry_after is not None
    assert ActivationLocked not in documented(LicenseClient.check)
    assert ActivationLocked in documented(LicenseClient.refresh)


@pytest.mark.parametrize("forged", [
    error(429, "activation_locked", {"retry-after": "60"}),
    error(403, "license_revoked"),  # unsigned: not the server's word
    Response(200, {"token": "v4.public.forged", "activation_secret": "x"}, {}),
], ids=["locked", "unsigned-revocation", "forged-token"])
def test_a_forged_answer_to_the_periodic_refresh_is_no_verdict(machine: Machine,
                                                               forged: Response) -> None:
    """Whatever a man in the middle answers the periodic check's refresh, the app is
    told of an error (``on_error``) and keeps its license: no ``on_change(old, None)``."""
    errors: list[LicenseError] = []
    changes: list[tuple[object, object]] = []
    checker = PeriodicCheck(machine.client, 60, on_error=errors.append,
                            on_change=lambda old, new: changes.append((old, new)))
    checker.last_license = machine.client.check()
    machine.refresh_due()
    machine.network.rewrite = on("/validate", forged)
    checker.tick()
    assert errors
    assert checker.last_license is not None
    assert all(new is not None for _, new in changes), changes


def test_a_signed_revocation_reaches_the_periodic_check_as_a_verdict(
        server: InProcessServer, machine: Machine) -> None:
    """The control: the server's own (signed) revocation makes the license None."""
    checker = PeriodicCheck(machine.client, 60)
    checker.last_license = machine.client.check()
    lic = checker.last_license
    assert lic is not None
    server.admin.revoke_license(lic.license_id)
    checker.tick()
    assert checker.last_license is None
