"""License keys as end users type them: case, spaces, typographic dashes, no dashes at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from software_dna import LicenseClient, UnknownLicenseKey
from software_dna.server import licensekeys
from software_dna.testing import SimulatedMachine
from tests.inprocess import InProcessServer


@pytest.mark.parametrize("typed", [
    "ACME-7KQ2-XPNM-4R9T-HCWZ",
    "acme-7kq2-xpnm-4r9t-hcwz",
    " ACME 7KQ2-XPNM - 4R9T-HCWZ\n",
    "ACME\u20137KQ2\u2013XPNM\u20134R9T\u2013HCWZ",  # en dashes (a word processor)
    "ACME\u20147KQ2\u2014XPNM\u20144R9T\u2014HCWZ",  # em dashes
    "ACME\u22127KQ2\u2011XPNM\uff0d4R9T\u2010HCWZ",  # minus, non-breaking and full-width
    "ACME7KQ2XPNM4R9THCWZ",  # no dash at all
    "acme 7kq2 xpnm 4r9t hcwz",
])
def test_typed_forms_of_one_key_normalise_alike(typed: str) -> None:
    assert licensekeys.normalize(typed) == "ACME-7KQ2-XPNM-4R9T-HCWZ"


def test_a_key_without_prefix_typed_without_dashes() -> None:
    assert licensekeys.normalize("7kq2xpnm4r9thcwz") == "7KQ2-XPNM-4R9T-HCWZ"


@pytest.mark.parametrize("typed", ["", "-", "AB", "A--B", "ACME_7KQ2", "x" * 80, "ACME-7KQ2-"])
def test_what_cannot_be_a_key_is_refused(typed: str) -> None:
    with pytest.raises(licensekeys.InvalidKeyFormat):
        licensekeys.normalize(typed)


def test_activation_accepts_the_key_as_typed(inprocess_server: InProcessServer,
                                             tmp_path: Path) -> None:
    keys = inprocess_server.admin.setup_product("typed-keys")
    key = inprocess_server.admin.issue_license("typed-keys", seats=2)["license_key"]
    typed = key.lower().replace("-", "\u2013")
    lic = LicenseClient(product="typed-keys", public_keys=keys, machine=SimulatedMachine(
        tmp_path / "a"), transport=inprocess_server.transport()).activate(typed)
    again = LicenseClient(product="typed-keys", public_keys=keys, machine=SimulatedMachine(
        tmp_path / "b"), transport=inprocess_server.transport()).activate(key.replace("-", ""))
    assert lic.license_id == again.license_id
    # Another last character (not "2" blindly: one key in 32 ends with it, and a third
    # machine of this two-seat license would be refused for its seats instead).
    other = key[:-1] + ("3" if key.endswith("2") else "2")
    with pytest.raises(UnknownLicenseKey):
        LicenseClient(product="typed-keys", public_keys=keys, machine=SimulatedMachine(
            tmp_path / "c"), transport=inprocess_server.transport()).activate(other)
