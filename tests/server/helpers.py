"""Helpers for the server tests: fingerprints, nonces, the public API, token checks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import requests

from software_dna.license import License, verify_token
from software_dna.server.testing import LocalServer
from software_dna.wire.claims import verify_receipt
from software_dna.wire.paseto import PublicKey
from tests.inprocess import InProcessServer

COMPONENTS = ("machine_id", "os_arch", "mac", "cpu")


def component(seed: str, name: str) -> str:
    """A 43-character base64url value, as the SDK sends."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def fingerprint(seed: str, *, changed: Iterable[str] = ()) -> dict[str, Any]:
    """An algorithm-2 wire fingerprint of machine ``seed``; ``changed`` components differ.

    Every component (the CPU and OS included) is distinct per seed; ``mac``
    holds one address.
    """
    changed = set(changed)
    comps: dict[str, Any] = {
        n: component(seed + ("~" if n in changed else ""), n) for n in COMPONENTS}
    comps["mac"] = [comps["mac"]]
    return {"algorithm": 2, "components": comps}


def legacy_fingerprint(seed: str, *, changed: Iterable[str] = ()) -> dict[str, Any]:
    """An algorithm-1 (0.1 SDK) wire fingerprint of machine ``seed``."""
    changed = set(changed)
    comps = {n: component("v1" + seed + ("~" if n in changed else ""), n)
             for n in (*COMPONENTS, "hostname")}
    return {"id": "fp1.machine_id." + comps["machine_id"], "algorithm": 1, "components": comps}


def nonce() -> str:
    """A fresh client nonce."""
    return secrets.token_urlsafe(24)


def keyset(public_keys: Iterable[str]) -> dict[str, PublicKey]:
    """Trusted keys by kid."""
    keys = [PublicKey.from_paserk(k) for k in public_keys]
    return {k.pid: k for k in keys}


def check_token(token: str, public_keys: Iterable[str], product: str) -> License:
    """Verify a token with the given key set."""
    return verify_token(token, keyset(public_keys), product)


def check_receipt(receipt: str, public_keys: Iterable[str], product: str) -> dict[str, Any]:
    """Verify a receipt with the given key set."""
    return verify_receipt(receipt, keyset(public_keys), product)


def session_for(server: LocalServer) -> requests.Session:
    """A ``requests.Session`` that reaches ``server`` (mounted on it when it is in-process)."""
    if isinstance(server, InProcessServer):
        return server.session()
    return requests.Session()


class Api:
    """The end-user routes, as the SDK calls them.

    ``http``: the session to send with (default a new one); an in-process
    server needs one from :func:`session_for` (or :meth:`for_server`).
    """

    def __init__(self, url: str, http: requests.Session | None = None) -> None:
        self.url = url
        self.http = http if http is not None else requests.Session()

    @classmethod
    def for_server(cls, server: LocalServer) -> Api:
        """An :class:`Api` to ``server``, a subprocess or an in-process one."""
        return cls(server.url, session_for(server))

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def activate(self, product: str, license_key: str, *, machine: str = "m1",
                 idempotency_key: str | None = None, **extra: Any) -> requests.Response:
        """POST /v1/activations."""
        body: dict[str, Any] = {
            "product": product,
            "license_key": license_key,
            "fingerprint": extra.pop("fp", None) or fingerprint(machine),
            "nonce": extra.pop("nonce", None) or nonce(),
            "idempotency_key": idempotency_key or secrets.token_urlsafe(18),
            "client": {"sdk_version": "0.1.0", "os": "Linux", "python": "3.11.7"},
        }
        body.update(extra)
        return self.http.post(f"{self.url}/v1/activations", json=body, timeout=30)

    def _auth(self, secret: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"} if secret is not None else {}

    def validate(self, activation_id: str, secret: str | None, *, machine: str = "m1",
                 fp: Mapping[str, Any] | None = None,
                 nonce_value: str | None = None) -> requests.Response:
        """POST /v1/activations/{id}/validate."""
        body = {"fingerprint": dict(fp) if fp is not None else fingerprint(machine),
                "nonce": nonce_value or nonce()}
        return self.http.post(f"{self.url}/v1/activations/{activation_id}/validate", json=body,
                              headers=self._auth(secret), timeout=30)

    def deactivate(self, activation_id: str, secret: str | None) -> requests.Response:
        """POST /v1/activations/{id}/deactivate."""
        return self.http.post(f"{self.url}/v1/activations/{activation_id}/deactivate",
                              json={"nonce": nonce()}, headers=self._auth(secret), timeout=30)

    def erasure(self, activation_id: str, secret: str | None) -> requests.Response:
        """POST /v1/activations/{id}/erasure."""
        return self.http.post(f"{self.url}/v1/activations/{activation_id}/erasure",
                              json={"nonce": nonce()}, headers=self._auth(secret), timeout=30)

    def get_settings(self, activation_id: str, secret: str | None) -> requests.Response:
        """GET /v1/activations/{id}/settings."""
        return self.http.get(f"{self.url}/v1/activations/{activation_id}/settings",
                             headers=self._auth(secret), timeout=30)

    def put_settings(self, activation_id: str, secret: str | None,
                     settings: Any) -> requests.Response:
        """PUT /v1/activations/{id}/settings."""
        return self.http.put(f"{self.url}/v1/activations/{activation_id}/settings",
                             json={"settings": settings}, headers=self._auth(secret), timeout=30)


def error_code(answer: requests.Response) -> str:
    """The protocol error code of an error answer (asserting the error shape)."""
    body = answer.json()
    assert set(body) == {"error"}, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    code: str = body["error"]["code"]
    return code


def asgi_request(app: Any, method: str, path: str, body: bytes = b"",
                 headers: Mapping[str, str] | None = None, *,
                 reraised: str | None = None) -> tuple[int, Any]:
    """One HTTP request straight through an ASGI ``app`` (no server); (status, JSON body).

    ``reraised``: text of the exception the app raises again after answering
    (Starlette does so after a 500); anything else propagates.
    """
    sent: list[dict[str, Any]] = []
    received = False

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received:
            await asyncio.sleep(3600)
        received = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80),
        "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
    }

    async def run() -> None:
        try:
            await app(scope, receive, send)
        except Exception as exc:
            if reraised is None or reraised not in str(exc):
                raise

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload)
