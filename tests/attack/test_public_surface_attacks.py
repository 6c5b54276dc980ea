"""Attack review: unauthenticated bodies that pass the byte scan and still cost.

A real server process (uvicorn, one worker, SQLite); the server's CPU per request
is read from /proc (``LocalServer.cpu_seconds``) as in
tests/security/test_public_surface_cost.py.  A request
refused for its body should cost at most a few milliseconds of server CPU
(REFUSED_CPU_BOUND, 5 ms there).
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests

from software_dna.server import services
from software_dna.server.domain.json_shape import NOT_UTF8
from software_dna.server.models import LicenseSettings
from software_dna.server.services.errors import ServiceError
from software_dna.server.testing import InProcessServer, LocalServer
from software_dna.wire.codes import Code
from tests.server.helpers import Api


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with tempfile.TemporaryDirectory(prefix="sdna-attack-") as folder, LocalServer(
            Path(folder), log_level="warning") as server:
        yield server


def refused_by(server: LocalServer, path: str, body: bytes) -> tuple[int, str]:
    """Status and message of the answer to ``body`` (no credentials). What such a refusal
    costs the server is measured in ``make stress`` (the public-surface family's "shaped
    bodies"), not here: timing never decides a test of ``make test``."""
    answer = requests.post(server.url + path, data=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
    return answer.status_code, str(answer.json()["error"]["message"])


def flat_object(n: int) -> bytes:
    """One JSON object (one container: the byte scan lets it through) with n unknown keys."""
    return ("{" + ",".join(f'"k{i}":0' for i in range(n)) + "}").encode()


@pytest.mark.parametrize("path", ["/v1/activations", "/v1/offline/activations", "/v1/trials",
                                  "/v1/password-resets/confirm",
                                  "/v1/activations/act_x/validate"])
def test_flat_object_with_thousands_of_unknown_keys_is_cheap_to_refuse(
        srv: LocalServer, path: str) -> None:
    body = flat_object(6000)
    assert len(body) < 64 * 1024
    status, message = refused_by(srv, path, body)
    # Refused by the byte scan before parsing (one pydantic error per key cost ~35 ms).
    assert (status, "object members" in message) == (400, True), message


def utf16_container_bomb() -> bytes:
    """A JSON document in UTF-16 (json.loads reads it) whose first string holds an escaped
    quote: the byte scan, which looks for the UTF-8 byte pair backslash-quote, loses track of
    which brackets are inside strings and counts none of the ~10,800 arrays."""
    text = '{"\\"": 1, "x": [' + ",".join(["[]"] * 10800) + '], "y": "\\""}'
    body = text.encode("utf-16-le")
    assert isinstance(json.loads(body), dict) and len(body) < 64 * 1024
    return body


def test_utf16_body_hides_its_containers_from_the_byte_scan(srv: LocalServer) -> None:
    answer = requests.post(srv.url + "/v1/activations", data=utf16_container_bomb(),
                           headers={"Content-Type": "application/json"}, timeout=30)
    assert answer.status_code == 400
    # The scan's refusal (or any refusal of a non-UTF-8 body before parsing), not the
    # model's validation after a full parse.
    assert "Invalid product" not in answer.json()["error"]["message"], answer.text


def test_utf16_container_bomb_is_cheap_to_refuse(srv: LocalServer) -> None:
    status, message = refused_by(srv, "/v1/activations", utf16_container_bomb())
    assert (status, message) == (400, NOT_UTF8)


def utf16_deep_settings(depth: int) -> bytes:
    text = ('{"settings": {"\\"": 1, "x": ' + "[" * depth + "]" * depth + ', "y": "\\""}}')
    return text.encode("utf-16-le")


@pytest.mark.parametrize("depth", [100, 500])
def test_utf16_settings_nested_past_the_limit_are_refused_and_never_break_the_license(
        srv: LocalServer, depth: int) -> None:
    """Settings are kept per license: any seat's activation secret (or the one in a mailed
    air-gapped response) may PUT them. A UTF-16 body hides its nesting from the byte scan;
    at depth 500 the document is stored, then every answer serialising it is a 500 -- the
    PUT and every other seat's GET -- until someone PUTs a flat document."""
    srv.admin.setup_product(f"deep{depth}")
    lic = srv.admin.issue_license(f"deep{depth}", seats=2)
    api = Api.for_server(srv)
    try:
        mine = api.activate(f"deep{depth}", lic["license_key"], machine="m1").json()
        colleague = api.activate(f"deep{depth}", lic["license_key"], machine="m2").json()
        put = requests.put(
            f"{srv.url}/v1/activations/{mine['activation_id']}/settings",
            data=utf16_deep_settings(depth), timeout=30,
            headers={"Authorization": "Bearer " + mine["activation_secret"],
                     "Content-Type": "application/json"})
        got = requests.get(
            f"{srv.url}/v1/activations/{colleague['activation_id']}/settings", timeout=30,
            headers={"Authorization": "Bearer " + colleague["activation_secret"]})
        assert (put.status_code, got.status_code) == (400, 200), (put.text[:200], got.text[:200])
    finally:
        api.close()


def _deep(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("document", [
    {"x": _deep(33)}, {"x": _deep(500)}, {f"k{n}": 0 for n in range(1001)},
    {"x": [[] for _ in range(1000)]},
], ids=["33 levels", "500 levels", "1,001 members", "1,001 containers"])
def test_settings_service_never_stores_a_document_over_the_shape_limits(
        inprocess_any_server: InProcessServer, document: dict[str, object]) -> None:
    """The service holds the document to the byte scan's limits itself (compact JSON), so
    however a body reached it, nothing is stored that a later GET cannot serialise."""
    srv = inprocess_any_server
    product = "shape-" + secrets.token_hex(3)
    srv.admin.setup_product(product)
    lic = srv.admin.issue_license(product, seats=2)
    api = Api.for_server(srv)
    try:
        mine = api.activate(product, lic["license_key"], machine="m1").json()
        colleague = api.activate(product, lic["license_key"], machine="m2").json()
        state = srv.app.state.sdna
        with state.sessions() as session, pytest.raises(ServiceError) as refused:
            services.put_settings(session, state.ctx, mine["activation_id"],
                                  mine["activation_secret"], document)
        assert refused.value.code is Code.INVALID_REQUEST
        got = api.http.get(
            f"{srv.url}/v1/activations/{colleague['activation_id']}/settings", timeout=30,
            headers={"Authorization": "Bearer " + colleague["activation_secret"]})
        assert got.status_code == 200 and got.json()["settings"] == {}, got.text[:200]
    finally:
        api.close()


def test_settings_stored_before_the_shape_rule_read_as_empty_never_a_500(
        inprocess_any_server: InProcessServer) -> None:
    """A document over the limits already in the database (stored before the rule) is
    answered as ``{}`` to every seat, not as a 500, until the next PUT replaces it."""
    srv = inprocess_any_server
    product = "legacy-" + secrets.token_hex(3)
    srv.admin.setup_product(product)
    lic = srv.admin.issue_license(product, seats=1)
    api = Api.for_server(srv)
    try:
        mine = api.activate(product, lic["license_key"], machine="m1").json()
        state = srv.app.state.sdna
        plaintext = json.dumps({"x": _deep(500)}, separators=(",", ":")).encode()
        with state.sessions() as session:
            session.add(LicenseSettings(
                license_id=lic["id"], updated_at=datetime.now(timezone.utc),
                ciphertext=state.ctx.vault.encrypt_field(
                    plaintext, aad=f"settings:{lic['id']}")))
            session.commit()
        url = f"{srv.url}/v1/activations/{mine['activation_id']}/settings"
        auth = {"Authorization": "Bearer " + mine["activation_secret"]}
        got = api.http.get(url, headers=auth, timeout=30)
        assert got.status_code == 200 and got.json()["settings"] == {}, got.text[:200]
        put = api.http.put(url, headers=auth, json={"settings": {"theme": "dark"}}, timeout=30)
        assert put.status_code == 200, put.text[:200]
        assert api.http.get(url, headers=auth, timeout=30).json()["settings"] == {
            "theme": "dark"}
    finally:
        api.close()
