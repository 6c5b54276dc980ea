"""The app in-process (plain ASGI calls): unexpected faults become a bare JSON 500."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from software_dna.server.api import create_app
from software_dna.server.cli import initialize
from software_dna.server.config import Settings
from software_dna.server.db import SchemaError
from software_dna.server.service import hotpath


def _call(app: Any, method: str, path: str, body: bytes = b"",
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    """One HTTP request through the ASGI app; returns (status, JSON body)."""
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

    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": raw_headers, "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }

    async def run() -> None:
        try:
            await app(scope, receive, send)
        except RuntimeError as exc:  # Starlette re-raises after answering 500
            assert "boom" in str(exc)

    asyncio.run(run())
    start = next(m for m in sent if m["type"] == "http.response.start")
    payload = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(payload)


def test_unexpected_fault_is_a_json_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    initialize(settings)
    app = create_app(settings)

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom: secret detail /etc/passwd")

    monkeypatch.setattr(hotpath, "validate", boom)  # the validate route's service call
    body = json.dumps({"fingerprint": {"id": "fp1.x", "components": {"mac": "A" * 43}},
                       "nonce": "n" * 16}).encode()
    status, answer = _call(app, "POST", "/v1/activations/act_x/validate", body,
                           {"content-type": "application/json", "authorization": "Bearer x"})
    assert status == 500
    assert answer == {"error": {"code": "internal_error",
                                "message": "The server failed; try again later."}}
    app.state.sdna.engine.dispose()


def test_app_refuses_a_database_without_schema(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    from software_dna.server.crypto import create_master_key_file

    create_master_key_file(settings.key_file)
    with pytest.raises(SchemaError, match="software-dna server migrate"):
        create_app(settings)
