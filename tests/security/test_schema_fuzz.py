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
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from software_dna import LicenseClient
from software_dna.server.testing import LocalServer
from tests.security._family import Scale, Tally
from tests.server.helpers import fingerprint, nonce

EXAMPLES = int(os.environ.get("SDNA_SCHEMA_EXAMPLES", "8"))


def _fuzz_operation(operation: Any, examples: int, headers: dict[str, str], label: str,
                    tally: Tally) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def call(case: Any) -> None:
        # Nothing may escape to hypothesis: it would replay the case, schemathesis'
        # generation does not replay identically, and the report would be a
        # FlakyStrategyDefinition instead of the failure.  Every outcome is tallied.
        try:
            response = case.call(headers=headers, timeout=30)
        except Exception as exc:  # requests' errors: no answer is a finding too
            tally.check(False, f"{label}: no answer: {type(exc).__name__}: {str(exc)[:200]}")
            return
        what = f"{label} -> HTTP {response.status_code}: {response.text[:200]}"
        ok = response.status_code < 500
        if ok:
            try:
                case.validate_response(response, checks=[response_schema_conformance,
                                                         status_code_conformance])
            # schemathesis raises a FailureGroup, a BaseExceptionGroup (not an Exception):
            # uncaught, hypothesis replayed it and reported FlakyStrategyDefinition.
            except (Exception, FailureGroup) as exc:
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


# The run's length grows with the examples (about 0.8 s per example on a loaded
# two-core machine): the default pytest timeout cut 150-example runs short, and
# hypothesis then reported the timeout as a flaky failure.
@pytest.mark.timeout(120 + 3 * EXAMPLES)
def test_no_server_error_and_answers_match_the_schema(schema_server: LocalServer) -> None:
    fuzz_routes(schema_server, EXAMPLES).assert_clean()


def test_replayed_requests_are_documented(schema_server: LocalServer, tmp_path: Path) -> None:
    """The 200 of a replayed activation, trial or offline activation is in the document.

    These answers come only when the generated input repeats an earlier one,
    which is why schemathesis met them now and then: the flaky failure.
    """

    srv = schema_server
    product = "replay-product"
    keys = srv.admin.setup_product(product, trial_days=3, protection="offline",
                                   air_gapped=True)
    api = schemathesis.openapi.from_url(f"{srv.url}/openapi.json")
    key = srv.admin.issue_license(product, seats=2)["license_key"]
    offline = LicenseClient(product=product, public_keys=keys, store_path=tmp_path)
    bodies = {
        "/v1/activations": {"product": product, "license_key": key, "nonce": nonce(),
                            "fingerprint": fingerprint("replay"),
                            "idempotency_key": nonce()},
        "/v1/trials": {"product": product, "fingerprint": fingerprint("replay"),
                       "nonce": nonce()},
        "/v1/offline/activations": {"request": offline.create_activation_request(key)},
    }
    for path, body in bodies.items():
        case = api[path]["POST"].Case(body=body)
        statuses = []
        for _ in range(2):
            response = case.call(timeout=30)
            statuses.append(response.status_code)
            case.validate_response(response, checks=[response_schema_conformance,
                                                      status_code_conformance])
        assert statuses == [201, 200], (path, statuses)


def family(scale: Scale) -> Tally:
    """Every route of the OpenAPI document, 8 (short) or 150 (long) examples each."""
    with tempfile.TemporaryDirectory(prefix="sdna-schema-") as folder, \
            LocalServer(Path(folder), log_level="warning") as srv:
        srv.admin.setup_product("schema-product", features=["a"])
        srv.admin.issue_license("schema-product")
        return fuzz_routes(srv, scale.pick(8, 150))
