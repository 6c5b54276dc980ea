"""Attack review (second pass): bodies the byte scan lets through that still cost.

A real server process (uvicorn, one worker, SQLite). Each body must be refused on a
cheap path (one error, before per-member validation); what that costs the server is
measured in ``make stress`` (the public-surface family's "shaped bodies"). No
credentials are sent: nothing but the body is needed.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna.server.domain.json_shape import MAX_MEMBERS, refusal
from software_dna.server.testing import LocalServer
from software_dna.wire import airgap as off
from software_dna.wire.times import format_rfc3339
from tests.attack.test_public_surface_attacks import refused_by

HASH = "A" * 43
FINGERPRINT = {"algorithm": 2, "components": {"machine_id": HASH, "os_arch": HASH,
                                              "cpu": HASH, "mac": [HASH]}}


@pytest.fixture(scope="module")
def srv() -> Iterator[LocalServer]:
    with tempfile.TemporaryDirectory(prefix="sdna-attack2-") as folder, LocalServer(
            Path(folder), log_level="warning") as server:
        yield server


def bad_registration(n: int) -> dict[str, str]:
    """n registration fields whose name and value both hold a control character: each
    member fails two Python validators (the readable-text check), one error each."""
    return {f"\x01{i:x}": "\x01" for i in range(n)}


def test_registration_members_with_control_characters_are_refused_in_one_error(
        srv: LocalServer) -> None:
    """985 object members (under the scan's 1,000) in ``registration``: every key and
    value runs the readable-text validator, which raises; building ~2,000 errors costs
    over 20 ms of server CPU per unauthenticated request (measured 24 ms)."""
    body = json.dumps({"product": "p-x1234", "license_key": "ABCD-EFGH", "nonce": "n" * 20,
                       "idempotency_key": "i" * 20, "fingerprint": FINGERPRINT,
                       "consent": True,
                       "registration": bad_registration(MAX_MEMBERS - 15)}).encode()
    assert refusal(body) is None and len(body) < 64 * 1024
    status, message = refused_by(srv, "/v1/activations", body)
    # One error for the whole field, before any detail is validated (~2,000 errors cost
    # 24 ms of server CPU).
    assert (status, "at most 16 registration details" in message) == (400, True), message


def _block(**extra: Any) -> str:
    doc = {"type": off._TYPES[off.REQUEST], "v": 2, "product": "p-x1234",
           "license_key": "ABCD-EFGH-IJKL", "fingerprint": FINGERPRINT, "nonce": "n" * 22,
           "created_at": format_rfc3339(datetime.now(timezone.utc)), "consent": True, **extra}
    return off.armor(off.REQUEST, doc)


def test_air_gapped_block_registration_members_are_refused_in_one_error(srv: LocalServer) -> None:
    """The request block is one JSON string to the byte scan; its document (up to 12 KiB)
    is parsed and validated after it, with no member limit. 850 bad registration names in
    the block cost about 18 ms of server CPU per unauthenticated request."""
    block = _block(registration={f"\x01{i:x}": 0 for i in range(850)})
    body = json.dumps({"request": block}).encode()
    assert refusal(body) is None
    status, message = refused_by(srv, "/v1/offline/activations", body)
    assert (status, "at most 16 registration details" in message) == (400, True), message
