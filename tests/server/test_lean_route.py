"""The validate route's own request handler answers exactly as FastAPI's would.

The route (api.routes.public.validations._LeanValidateRoute) checks its path id and body
itself instead of through FastAPI's generic handler.  Every request below goes
to the real app and to a reference app where the same endpoint is an ordinary
FastAPI route, behind the same middleware and error handlers: the status and
the JSON body must be the same.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from software_dna.server.api import middleware
from software_dna.server.api.errors import install_handlers
from software_dna.server.api.middleware import BodyLimitMiddleware
from software_dna.server.api.routes.public import validations
from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.schemas import ValidateOut

from .helpers import asgi_request, fingerprint

PATH = "/v1/activations/{}/validate"
JSON = {"content-type": "application/json"}
FP: dict[str, Any] = fingerprint("m1")
GOOD: dict[str, Any] = {"fingerprint": FP, "nonce": "n" * 22}


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FastAPI, FastAPI]]:
    home: Path = tmp_path_factory.mktemp("lean")
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(home)})
    initialize(settings)
    app = create_app(settings)
    reference = FastAPI()
    reference.state.sdna = app.state.sdna
    reference.add_middleware(BodyLimitMiddleware)
    install_handlers(reference)
    reference.add_api_route(PATH.format("{activation_id}"), validations.validate,
                            methods=["POST"], response_model=ValidateOut)
    yield app, reference
    app.state.sdna.dispose()


def _body(value: Any) -> bytes:
    return json.dumps(value).encode()


CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("well formed, unknown activation", "act_x", _body(GOOD), JSON),
    ("bad path id", "act!x", _body(GOOD), JSON),
    ("path id too long", "a" * 41, _body(GOOD), JSON),
    ("bad path id and bad body", "act!x", _body({"nonce": 1}), JSON),
    ("no body", "act_x", b"", {}),
    ("no body, JSON type", "act_x", b"", JSON),
    ("null", "act_x", b"null", JSON),
    ("a list", "act_x", b"[]", JSON),
    ("a string", "act_x", b'"abc"', JSON),
    ("a number", "act_x", b"12", JSON),
    ("empty object", "act_x", b"{}", JSON),
    ("nonce of the wrong type", "act_x", _body({**GOOD, "nonce": 5}), JSON),
    ("nonce too short", "act_x", _body({**GOOD, "nonce": "n"}), JSON),
    ("extra field", "act_x", _body({**GOOD, "extra": True}), JSON),
    ("fingerprint a list", "act_x", _body({**GOOD, "fingerprint": []}), JSON),
    ("bad component", "act_x", _body({**GOOD, "fingerprint": {
        **FP, "components": {"mac": "short"}}}), JSON),
    ("component key of the client", "act_x", _body({**GOOD, "fingerprint": {
        **FP, "components": {"Bad Key!": "A" * 43}}}), JSON),
    ("not JSON", "act_x", b"{", JSON),
    ("trailing garbage", "act_x", b'{"nonce": "x"} x', JSON),
    ("invalid UTF-8", "act_x", b'{"nonce": "\xff\xfe"}', JSON),
    ("UTF-8 BOM", "act_x", b"\xef\xbb\xbf" + _body(GOOD), JSON),
    ("nesting too deep", "act_x", b"[" * 30_000 + b"]" * 30_000, JSON),
    ("duplicate keys", "act_x", b'{"nonce": "a", "nonce": "b"}', JSON),
    ("NaN", "act_x", b'{"nonce": NaN}', JSON),
    ("text/plain", "act_x", _body(GOOD), {"content-type": "text/plain"}),
    ("JSON with a charset", "act_x", _body(GOOD),
     {"content-type": "application/json; charset=utf-8"}),
]


@pytest.mark.parametrize(("activation_id", "body", "headers"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_same_answer_as_fastapi(apps: tuple[FastAPI, FastAPI], activation_id: str,
                                body: bytes, headers: dict[str, str]) -> None:
    app, reference = apps
    path = PATH.format(activation_id)
    headers = {**headers, "authorization": "Bearer sas_x"}
    got = asgi_request(app, "POST", path, body, headers)
    assert got == asgi_request(reference, "POST", path, body, headers)
    assert got[0] in (400, 401, 415)
    assert set(got[1]) == {"error"} and {"code", "message"} <= set(got[1]["error"])


def test_the_app_uses_the_lean_handler(apps: tuple[FastAPI, FastAPI],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = apps
    calls = []
    original = middleware.parsed_body

    def spy(scope: Any, body: bytes) -> tuple[bool, Any]:
        calls.append(body)
        return original(scope, body)

    monkeypatch.setattr(validations, "parsed_body", spy)
    status, _ = asgi_request(app, "POST", PATH.format("act_x"), _body(GOOD),
                      {**JSON, "authorization": "Bearer sas_x"})
    assert status == 401
    assert calls == [_body(GOOD)]
