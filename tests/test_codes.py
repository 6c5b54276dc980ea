"""The one list of protocol codes, held to the two halves and the documentation.

Adding a refusal is a ``Code`` member, the server's rule and the SDK's row
(docs/architecture.md); these tests fail when one of the three is forgotten.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from software_dna.client.refusals import MEANINGS
from software_dna.server.domain import refusals
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

PROTOCOL = (Path(__file__).parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")

#: Every refusal the server's rules give a license or an activation: the module's
#: Refusal constants, and the expiry refusal of every kind.
SERVER_REFUSALS = [
    *(value for value in vars(refusals).values() if isinstance(value, refusals.Refusal)),
    *(refusals.expired(kind.value) for kind in Kind),
]


@pytest.mark.parametrize("refusal", SERVER_REFUSALS, ids=lambda r: r.code.value)
def test_every_signed_refusal_of_the_server_has_a_signed_row_in_the_sdk(
        refusal: refusals.Refusal) -> None:
    meaning = MEANINGS.get(refusal.code)
    assert meaning is not None, f"client/refusals.py has no row for {refusal.code.value}"
    assert meaning.signed


def test_every_code_is_in_the_protocol_table_with_its_status() -> None:
    rows = {m[1]: int(m[0]) for m in re.findall(r"^\| (\d{3}) \| `([a-z_]+)`", PROTOCOL, re.M)}
    rows.update({name: int(status) for status, pair in
                 re.findall(r"^\| (\d{3}) \| (`[a-z_]+` / `[a-z_]+`)", PROTOCOL, re.M)
                 for name in re.findall(r"`([a-z_]+)`", pair)})
    # The framework's other errors keep their own status: one '4xx' row names both.
    framework = {Code.HTTP_ERROR, Code.FORBIDDEN}
    for code in Code:
        if code in framework:
            assert f"`{code.value}`" in PROTOCOL
            continue
        assert code.value in rows, f"docs/protocol.md does not list {code.value}"
        assert rows[code.value] == code.status, code


def test_codes_are_unique_and_lower_snake_case() -> None:
    values = [code.value for code in Code]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", v) for v in values)
