"""The app in-process (plain ASGI calls): unexpected faults become a bare JSON 500."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from software_dna.server.app import create_app
from software_dna.server.bootstrap import initialize
from software_dna.server.config import Settings
from software_dna.server.crypto import create_master_key_file
from software_dna.server.db import SchemaError
from software_dna.server.services import hotpath

from .helpers import asgi_request


def test_unexpected_fault_is_a_json_500(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    initialize(settings)
    app = create_app(settings)

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("boom: secret detail /etc/passwd")

    monkeypatch.setattr(hotpath, "validate", boom)  # the validate route's service call
    body = json.dumps({"fingerprint": {"algorithm": 2, "components": {
        "machine_id": "A" * 43, "os_arch": None, "cpu": None, "mac": ["A" * 43]}},
                       "nonce": "n" * 16}).encode()
    status, answer = asgi_request(app, "POST", "/v1/activations/act_x/validate", body,
                                  {"content-type": "application/json", "authorization": "Bearer x"},
                                  reraised="boom")
    assert status == 500
    assert answer == {"error": {"code": "internal_error",
                                "message": "The server failed; try again later."}}
    app.state.sdna.engine.dispose()


def test_app_refuses_a_database_without_schema(tmp_path: Path) -> None:
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})

    create_master_key_file(settings.key_file)
    with pytest.raises(SchemaError, match="software-dna server migrate"):
        create_app(settings)
