"""Malformed input and authorization: always a 4xx JSON error, never a 500."""

from __future__ import annotations

import json
import secrets
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from software_dna.server.testing import LocalServer
from tests.server.helpers import Api, error_code, fingerprint, nonce


@pytest.fixture(scope="module")
def setup(server: LocalServer) -> dict[str, Any]:
    pid = "sec-" + secrets.token_hex(3)
    server.admin.setup_product(pid)
    key = server.admin.issue_license(pid, seats=5)["license_key"]
    api = Api(server.url)
    try:
        a = api.activate(pid, key, machine="one").json()
        b = api.activate(pid, key, machine="two").json()
    finally:
        api.close()
    return {"product": pid, "key": key, "a": a, "b": b}


@pytest.fixture
def api(server: LocalServer) -> Iterator[Api]:
    client = Api(server.url)
    yield client
    client.close()


def _valid_body(setup: dict[str, Any]) -> dict[str, Any]:
    return {
        "product": setup["product"], "license_key": setup["key"],
        "fingerprint": fingerprint("one"), "nonce": nonce(),
        "idempotency_key": secrets.token_urlsafe(18),
    }


def _post_raw(url: str, data: bytes, content_type: str = "application/json",
              headers: dict[str, str] | None = None) -> requests.Response:
    return requests.post(url, data=data, timeout=30,
                         headers={"Content-Type": content_type, **(headers or {})})


def _is_json_error(answer: requests.Response, status: int | None = None) -> str:
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    if status is not None:
        assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert "Traceback" not in answer.text
    return error_code(answer)


BAD_FIELDS: list[tuple[str, Any]] = [
    ("product", 5),
    ("product", "UPPER CASE"),
    ("product", "x" * 65),
    ("license_key", ["list"]),
    ("license_key", "k" * 65),
    ("license_key", "bad/chars"),
    ("nonce", "short"),
    ("nonce", "x" * 65),
    ("nonce", "not base64 !!!!!!!!!"),
    ("nonce", 12345678901234567890),
    ("idempotency_key", None),
    ("consent", "yes"),
    ("consent", 1),
    ("password", ""),
    ("password", "p" * 257),
    ("password", 123),
    ("email", "not-an-email"),
    ("email", "a" * 250 + "@example.com"),
    ("registration", {"k": 1}),
    ("registration", {"k": "v" * 257}),
    ("registration", {f"k{i}": "v" for i in range(17)}),
    ("registration", {"k" * 65: "v"}),
    ("registration", "flat string"),
    ("client", {"sdk_version": "v" * 33}),
    ("client", {"unknown": "field"}),
    ("fingerprint", {"id": "fp1.x", "algorithm": 1, "components": {}}),
    ("fingerprint", {"id": "fp1.x", "algorithm": "1", "components": {"mac": "A" * 43}}),
    ("fingerprint", {"id": "fp1.x", "algorithm": 1, "components": {"mac": "A" * 42}}),
    ("fingerprint", {"id": "fp1.x", "algorithm": 1, "components": {"Bad Name": "A" * 43}}),
    ("fingerprint", {"id": "x" * 129, "algorithm": 1, "components": {"mac": "A" * 43}}),
    ("fingerprint", {"id": "fp1.x", "algorithm": 1,
                     "components": {f"c{i}": "A" * 43 for i in range(17)}}),
    ("fingerprint", {"id": "fp1.x", "components": {"mac": "A" * 43}, "extra": 1}),
    ("fingerprint", "string"),
    ("unknown_field", "x"),
]


@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
def test_activation_rejects_bad_fields(server: LocalServer, setup: dict[str, Any], field: str,
                                       value: Any) -> None:
    body = _valid_body(setup)
    body[field] = value
    answer = requests.post(f"{server.url}/v1/activations", json=body, timeout=30)
    expected = "invalid_fingerprint" if field == "fingerprint" else "invalid_request"
    assert _is_json_error(answer, 400) == expected
    # The answer names the field, never echoes the value.
    if isinstance(value, str) and len(value) > 8:
        assert value not in answer.text


def test_missing_fields_and_wrong_shapes(server: LocalServer, setup: dict[str, Any]) -> None:
    url = f"{server.url}/v1/activations"
    bodies: list[object] = [{}, [], "string", 5, None, {"product": setup["product"]}]
    for body in bodies:
        answer = requests.post(url, data=json.dumps(body), timeout=30,
                               headers={"Content-Type": "application/json"})
        assert _is_json_error(answer, 400) == "invalid_request"


@pytest.mark.parametrize("data", [
    b"{", b"{'single': 'quotes'}", b"\xff\xfe\x00", b"[" * 5000 + b"]" * 5000,
    b'{"a": NaN}', b"nul", b"\x00" * 100,
])
def test_malformed_json(server: LocalServer, data: bytes) -> None:
    answer = _post_raw(f"{server.url}/v1/activations", data)
    assert _is_json_error(answer, 400) == "invalid_request"


def test_huge_bodies(server: LocalServer, setup: dict[str, Any]) -> None:
    url = f"{server.url}/v1/activations"
    body = _valid_body(setup)
    body["padding"] = "x" * (70 * 1024)
    answer = requests.post(url, json=body, timeout=30)
    assert _is_json_error(answer, 413) == "too_large"

    # Chunked (no Content-Length): the streamed size is checked too.
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    answer = requests.post(url, data=chunks(), timeout=30,
                           headers={"Content-Type": "application/json"})
    assert _is_json_error(answer, 413) == "too_large"

    a = setup["a"]
    answer = requests.put(f"{server.url}/v1/activations/{a['activation_id']}/settings",
                          data=b'{"settings": {"x": "' + b"y" * 70000 + b'"}}', timeout=30,
                          headers={"Content-Type": "application/json",
                                   "Authorization": f"Bearer {a['activation_secret']}"})
    assert _is_json_error(answer, 413) == "too_large"


def test_lying_content_length(server: LocalServer) -> None:
    """A Content-Length larger than the body sent: the server never hangs on it."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /v1/activations HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{}")
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413")


def test_wrong_content_type(server: LocalServer, setup: dict[str, Any]) -> None:
    data = json.dumps(_valid_body(setup)).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = _post_raw(f"{server.url}/v1/activations", data, ctype)
        assert _is_json_error(answer, 415) == "unsupported_media_type"


def test_unknown_routes_and_methods(server: LocalServer) -> None:
    assert _is_json_error(requests.get(f"{server.url}/nope", timeout=30), 404) == "not_found"
    assert _is_json_error(requests.get(f"{server.url}/v1/activations", timeout=30),
                          405) == "method_not_allowed"
    assert _is_json_error(requests.delete(f"{server.url}/v1/health", timeout=30),
                          405) == "method_not_allowed"
    bad_id = requests.post(f"{server.url}/v1/activations/{'x' * 300}/validate",
                           json={"fingerprint": fingerprint("one"), "nonce": nonce()}, timeout=30)
    _is_json_error(bad_id)


def test_activation_secret_reaches_only_its_activation(server: LocalServer, api: Api,
                                                       setup: dict[str, Any]) -> None:
    a, b = setup["a"], setup["b"]
    ok = api.validate(a["activation_id"], a["activation_secret"], machine="one")
    assert ok.status_code == 200
    aid = a["activation_id"]
    calls: list[Callable[[str | None], requests.Response]] = [
        lambda s: api.validate(aid, s, machine="one"),
        lambda s: api.deactivate(aid, s),
        lambda s: api.get_settings(aid, s),
        lambda s: api.put_settings(aid, s, {"x": 1}),
        lambda s: api.erasure(aid, s),
    ]
    wrong = [b["activation_secret"], None, "", "sas_" + "A" * 43, a["activation_secret"] + "x"]
    for secret in wrong:
        for call in calls:
            answer = call(secret)
            assert _is_json_error(answer, 401) == "unauthorized"
    # Unknown activation: the same answer as a wrong secret.
    unknown = api.validate("act_" + "Z" * 22, a["activation_secret"], machine="one")
    assert _is_json_error(unknown, 401) == "unauthorized"
    # The admin key is not an activation secret, and activation secrets are not admin keys.
    assert _is_json_error(api.validate(a["activation_id"], server.admin_key), 401)
    answer = requests.get(f"{server.url}/v1/admin/products", timeout=30,
                          headers={"Authorization": f"Bearer {a['activation_secret']}"})
    assert _is_json_error(answer, 401) == "unauthorized"
    # Still fine afterwards (nothing was deactivated or erased by the refused calls).
    final = api.validate(a["activation_id"], a["activation_secret"], machine="one")
    assert final.status_code == 200


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer wrong", "Basic abc",
                                    "Bearer sdna_admin_" + "x" * 43])
def test_admin_routes_need_the_admin_key(server: LocalServer, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in (("GET", "/products"), ("POST", "/licenses"), ("GET", "/audit"),
                         ("GET", "/end-users?email=a@example.com"),
                         ("POST", "/end-users/eu_x/erase"), ("DELETE", "/activations/act_x")):
        answer = requests.request(method, f"{server.url}/v1/admin{path}", headers=headers,
                                  timeout=30)
        assert _is_json_error(answer, 401) == "unauthorized"


def test_admin_validation(server: LocalServer) -> None:
    admin = server.admin
    for body in ({"id": "Bad Id"}, {"id": "ok-id", "refresh_interval": "1"},
                 {"id": "ok-id", "protection": "never"}, {"id": "ok-id", "features": ["a b"]},
                 {"id": "ok-id", "fingerprint_tolerance": -1}, {"id": "ok-id", "x": 1}):
        answer = requests.post(f"{server.url}/v1/admin/products", json=body, timeout=30,
                               headers={"Authorization": f"Bearer {server.admin_key}"})
        assert _is_json_error(answer, 400) == "invalid_request", body
    assert admin.list_products() is not None
    for path in ("/products/nope", "/licenses/lic_nope", "/end-users/eu_nope"):
        answer = requests.get(f"{server.url}/v1/admin{path}", timeout=30,
                              headers={"Authorization": f"Bearer {server.admin_key}"})
        assert _is_json_error(answer, 404) == "not_found"
    answer = requests.post(f"{server.url}/v1/admin/licenses", timeout=30,
                           json={"product": "nope", "expires_at": "2030-01-01T00:00:00"},
                           headers={"Authorization": f"Bearer {server.admin_key}"})
    assert _is_json_error(answer, 400) == "invalid_request"  # no offset


def test_errors_leave_no_personal_data_in_the_log(server: LocalServer,
                                                  setup: dict[str, Any]) -> None:
    email = f"logcheck.{secrets.token_hex(3)}@example.net"
    body = _valid_body(setup)
    body.update(email=email, consent=True, registration={"name": "Logan Check"})
    requests.post(f"{server.url}/v1/activations", json=body, timeout=30)
    server.admin.find_end_users(email)
    body["email"] = email + " broken"
    requests.post(f"{server.url}/v1/activations", json=body, timeout=30)
    log = server.log_path.read_text(encoding="utf-8", errors="replace")
    assert email not in log and "Logan Check" not in log
    access = [line for line in log.splitlines() if '"GET ' in line or '"POST ' in line]
    assert any("/v1/admin/end-users" in line for line in access)
    assert not any("127.0.0.1" in line for line in access)  # no client addresses


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
def test_times_beyond_the_calendar_are_a_400(server: LocalServer, when: str) -> None:
    product = "p-" + secrets.token_hex(4)
    server.admin.create_product(product, name="T")
    answer = requests.post(f"{server.url}/v1/admin/licenses", timeout=10,
                           headers={"Authorization": f"Bearer {server.admin_key}"},
                           json={"product": product, "expires_at": when})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("body", [
    b'{"nonce": "a", "nonce": "b"}',
    b'{"product": "p", "consent": NaN}',
    b'{"seats": Infinity}',
])
def test_json_that_parsers_read_differently_is_refused(server: LocalServer, body: bytes) -> None:
    for path in ("/v1/activations", "/v1/admin/licenses"):
        answer = requests.post(f"{server.url}{path}", data=body, timeout=10, headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {server.admin_key}"})
        assert answer.status_code == 400, answer.text
        assert "duplicate keys" in answer.json()["error"]["message"]
