"""schemathesis against the server's own OpenAPI document: every route, generated input.

No answer may be a 5xx, and every answer must match the schema the server
publishes (status code documented, body shape). Admin routes are called with
the admin key (so their validation is reached), public routes as the SDK
would. ``SDNA_SCHEMA_EXAMPLES`` sets the examples per route (default 8;
``make stress`` runs 150).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from software_dna.server.local import LocalServer
from tests.security._family import Scale, Tally

EXAMPLES = int(os.environ.get("SDNA_SCHEMA_EXAMPLES", "8"))


def _fuzz_operation(operation: Any, examples: int, headers: dict[str, str], label: str,
                    tally: Tally) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        response = case.call(headers=headers, timeout=30)
        what = f"{label} -> HTTP {response.status_code}: {response.text[:200]}"
        ok = response.status_code < 500
        if ok:
            try:
                case.validate_response(response, checks=[response_schema_conformance,
                                                         status_code_conformance])
            except Exception as exc:  # schemathesis' failure types
                ok, what = False, f"{what}: {type(exc).__name__}: {str(exc)[:300]}"
        tally.check(ok, what)

    call()


def fuzz_routes(server: LocalServer, examples: int) -> Tally:
    """Each operation of the server's OpenAPI document with ``examples`` generated requests."""
    tally = Tally("schemathesis")
    api = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    admin = {"Authorization": f"Bearer {server.admin_key}"}
    for result in api.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        headers = admin if operation.path.startswith("/v1/admin") else {}
        label = f"{operation.method.upper()} {operation.path}"

        _fuzz_operation(operation, examples, headers, label, tally)
    return tally


@pytest.fixture(scope="module")
def schema_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with LocalServer(tmp_path_factory.mktemp("schema-server"), log_level="warning") as srv:
        srv.admin.setup_product("schema-product", features=["a"])
        srv.admin.issue_license("schema-product")
        yield srv


def test_no_server_error_and_answers_match_the_schema(schema_server: LocalServer) -> None:
    fuzz_routes(schema_server, EXAMPLES).assert_clean()


def family(scale: Scale) -> Tally:
    """Every route of the OpenAPI document, 8 (short) or 150 (long) examples each."""
    with tempfile.TemporaryDirectory(prefix="sdna-schema-") as folder, \
            LocalServer(Path(folder), log_level="warning") as srv:
        srv.admin.setup_product("schema-product", features=["a"])
        srv.admin.issue_license("schema-product")
        return fuzz_routes(srv, scale.pick(8, 150))
