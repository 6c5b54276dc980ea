"""Attack review of issue 14: unauthenticated bodies that pass the byte scan and still cost.

A real server process (uvicorn, one worker, SQLite); the server's CPU per request
is read from /proc (``LocalServer.cpu_seconds``) as in
tests/security/test_public_surface_cost.py.  A request
refused for its body should cost at most a few milliseconds of server CPU
(REFUSED_CPU_BOUND, 5 ms there).
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from software_dna.server.testing import LocalServer
from tests.security.test_public_surface_cost import REFUSED_CPU_BOUND

#: Generous: twice the project's own bound, so only a real amplification fails.
BOUND = 2 * REFUSED_CPU_BOUND


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with tempfile.TemporaryDirectory(prefix="sdna-attack-") as folder, LocalServer(
            Path(folder), log_level="warning") as server:
        yield server


def cpu_per_request(server: LocalServer, path: str, body: bytes, n: int = 20) -> tuple[float, int]:
    http = requests.Session()
    samples = []
    status = 0
    for _ in range(n):
        before = server.cpu_seconds()
        answer = http.post(server.url + path, data=body,
                           headers={"Content-Type": "application/json"}, timeout=30)
        status = answer.status_code
        samples.append(server.cpu_seconds() - before)
    return statistics.mean(samples), status


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
    spent, status = cpu_per_request(srv, path, body)
    assert status == 400
    assert spent <= BOUND, f"{spent * 1000:.1f} ms of server CPU per unauthenticated request"


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
    spent, status = cpu_per_request(srv, "/v1/activations", utf16_container_bomb())
    assert status == 400
    assert spent <= BOUND, f"{spent * 1000:.1f} ms of server CPU per unauthenticated request"


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
    from tests.server.helpers import Api

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
