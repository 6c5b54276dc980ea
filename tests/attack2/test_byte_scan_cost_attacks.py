"""Attack review (second pass): bodies the byte scan lets through that still cost.

A real server process (uvicorn, one worker, SQLite); the server's CPU per request is
read from /proc as in tests/attack/test_public_surface_attacks.py, whose generous
bound (twice the project's 5 ms for a request refused for its body) is used here.
No credentials are sent: nothing but the body is needed.
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
from tests.attack.test_public_surface_attacks import BOUND, cpu_per_request

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


def test_registration_members_with_control_characters_under_the_member_limit_cost_tens_of_ms(
        srv: LocalServer) -> None:
    """985 object members (under the scan's 1,000) in ``registration``: every key and
    value runs the readable-text validator, which raises; building ~2,000 errors costs
    over 20 ms of server CPU per unauthenticated request (measured 24 ms)."""
    body = json.dumps({"product": "p-x1234", "license_key": "ABCD-EFGH", "nonce": "n" * 20,
                       "idempotency_key": "i" * 20,
                       "registration": bad_registration(MAX_MEMBERS - 15)}).encode()
    assert refusal(body) is None and len(body) < 64 * 1024
    spent, status = cpu_per_request(srv, "/v1/activations", body, n=40)
    assert status == 400
    assert spent <= BOUND, f"{spent * 1000:.1f} ms of server CPU per request"


def _block(**extra: Any) -> str:
    doc = {"type": off._TYPES[off.REQUEST], "v": 2, "product": "p-x1234",
           "license_key": "ABCD-EFGH-IJKL", "fingerprint": FINGERPRINT, "nonce": "n" * 22,
           "created_at": format_rfc3339(datetime.now(timezone.utc)), "consent": True, **extra}
    return off.armor(off.REQUEST, doc)


def test_air_gapped_block_hides_its_members_from_the_byte_scan(srv: LocalServer) -> None:
    """The request block is one JSON string to the byte scan; its document (up to 12 KiB)
    is parsed and validated after it, with no member limit. 850 bad registration names in
    the block cost about 18 ms of server CPU per unauthenticated request."""
    block = _block(registration={f"\x01{i:x}": 0 for i in range(850)})
    body = json.dumps({"request": block}).encode()
    assert refusal(body) is None
    spent, status = cpu_per_request(srv, "/v1/offline/activations", body, n=40)
    assert status == 400
    assert spent <= BOUND, f"{spent * 1000:.1f} ms of server CPU per request"
