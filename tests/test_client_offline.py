"""LicenseClient with no server: install_token() and check() fully offline."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    ClockTampered,
    InvalidToken,
    LicenseClient,
    LicenseExpired,
    Mode,
    NotActivated,
    StoreCorrupted,
    WrongMachine,
    WrongProduct,
)
from software_dna.fingerprint import Fingerprint, collect
from software_dna.wire.paseto import SecretKey
from software_dna.wire.times import CLOCK_SKEW

from .tokens import make_token, now_utc

PRODUCT = "acme-editor"


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def fp() -> Fingerprint:
    return collect(PRODUCT)


def make_client(
    key: SecretKey, store: Path, *, product: str = PRODUCT,
    clock: Callable[[], datetime] | None = None,
    fingerprint: Callable[[str], Fingerprint] | None = None,
) -> LicenseClient:
    return LicenseClient(
        product=product, public_keys=[key.public_key.to_paserk()], store_path=store,
        clock=clock, fingerprint=fingerprint,
    )


def drifted(fp: Fingerprint, changed: int) -> Fingerprint:
    """The same machine with ``changed`` component hashes replaced."""
    names = [n for n in ("mac", "cpu", "os_arch") if fp.components.get(n)][:changed]
    assert len(names) == changed, "this machine lacks enough components for the test"
    components: dict[str, object] = dict(fp.components)
    for name in names:
        components[name] = ("A" * 43,) if name == "mac" else "A" * 43
    return Fingerprint.from_components(components, missing=fp.missing, legacy=fp.legacy)


def test_not_activated_without_store(key: SecretKey, tmp_path: Path) -> None:
    with pytest.raises(NotActivated):
        make_client(key, tmp_path).check()


def test_install_then_check(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    client = make_client(key, tmp_path)
    lic = client.install_token(make_token(key, PRODUCT, fp, email="a@example.com"))
    assert lic.mode is Mode.FULL and lic.has_feature("pro") and not lic.has_feature("x")
    again = make_client(key, tmp_path).check()  # a fresh process reads the store
    assert again.license_id == "lic_1" and again.email == "a@example.com"
    assert again.offline_grace_ends_at is None


def test_untrusted_key_refused(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    other = SecretKey.generate()
    with pytest.raises(InvalidToken):
        make_client(key, tmp_path).install_token(make_token(other, PRODUCT, fp))


def test_token_for_other_product_refused(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    token_b = make_token(key, "product-b", collect("product-b"))
    with pytest.raises(WrongProduct):
        make_client(key, tmp_path).install_token(token_b)


def test_store_copied_to_other_machine(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    make_client(key, tmp_path).install_token(make_token(key, PRODUCT, fp, tolerance=1))
    copy = tmp_path / "copy"
    shutil.copytree(tmp_path, copy, ignore=shutil.ignore_patterns("copy"))
    # One changed component is within the tolerance of 1 ...
    assert make_client(key, copy, fingerprint=lambda _p: drifted(fp, 1)).check()
    # ... two are not.
    with pytest.raises(WrongMachine):
        make_client(key, copy, fingerprint=lambda _p: drifted(fp, 2)).check()


TIMEZONES = ["UTC", "Asia/Kolkata", "America/Los_Angeles", "Pacific/Kiritimati"]


@pytest.fixture(params=TIMEZONES)
def local_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is Unix-only")
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("field", ["expires_at", "license_expires_at"])
def test_expiry_same_in_every_time_zone(
    key: SecretKey, fp: Fingerprint, tmp_path: Path, local_tz: str, field: str
) -> None:
    now = now_utc()
    issued = now - timedelta(hours=2)
    later: dict[str, Any] = {field: now + timedelta(hours=1)}
    valid = make_token(key, PRODUCT, fp, issued_at=issued, refresh_by=now + timedelta(hours=1),
                       **later)
    assert make_client(key, tmp_path / "a").install_token(valid).product == PRODUCT
    assert make_client(key, tmp_path / "a").check().license_id == "lic_1"
    earlier: dict[str, Any] = {field: now - timedelta(seconds=60)}
    expired = make_token(key, PRODUCT, fp, issued_at=issued,
                         refresh_by=now - timedelta(hours=1) if field == "expires_at" else None,
                         **earlier)
    client = make_client(key, tmp_path / "b")
    with pytest.raises(LicenseExpired):
        client.install_token(expired)
    # Stored anyway (e.g. by an older run): check() must say expired too. (Within the
    # clock skew of the rollback witness's floor, which store "a" just raised to now.)
    client_valid = make_client(key, tmp_path / "b", clock=lambda: now - timedelta(minutes=4))
    client_valid.install_token(expired)
    with pytest.raises(LicenseExpired):
        make_client(key, tmp_path / "b").check()


def test_clock_set_back_14_days(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    real = now_utc()
    token = make_token(key, PRODUCT, fp, issued_at=real - timedelta(days=30),
                       refresh_by=real + timedelta(days=30), expires_at=real + timedelta(days=60))
    current = [real]
    client = make_client(key, tmp_path, clock=lambda: current[0])
    client.install_token(token)
    assert client.check()
    current[0] = real - timedelta(days=14)
    with pytest.raises(ClockTampered):
        client.check()
    # A new process (new client) reads the high-water mark from the store.
    with pytest.raises(ClockTampered):
        make_client(key, tmp_path, clock=lambda: real - timedelta(days=14)).check()
    # Within the skew is fine.
    assert make_client(key, tmp_path, clock=lambda: real - CLOCK_SKEW / 2).check()


def test_token_not_yet_valid_means_clock_behind(
    key: SecretKey, fp: Fingerprint, tmp_path: Path
) -> None:
    future = now_utc() + timedelta(days=1)
    token = make_token(key, PRODUCT, fp, issued_at=future)
    with pytest.raises(ClockTampered):
        client = make_client(key, tmp_path)
        client.install_token(token)
        client.check()


def test_grace_reported_after_refresh_by_without_server(
    key: SecretKey, fp: Fingerprint, tmp_path: Path
) -> None:
    now = now_utc()
    token = make_token(key, PRODUCT, fp, issued_at=now - timedelta(days=8),
                       refresh_by=now - timedelta(days=1), expires_at=now + timedelta(days=2))
    lic = make_client(key, tmp_path).install_token(token)
    assert lic.refresh_by is not None
    checked = make_client(key, tmp_path).check()
    assert checked.offline_grace_ends_at == now + timedelta(days=2)


def test_tampered_store_token_refused(key: SecretKey, fp: Fingerprint, tmp_path: Path) -> None:
    client = make_client(key, tmp_path)
    client.install_token(make_token(key, PRODUCT, fp))
    token = make_token(key, PRODUCT, fp)
    forged = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    with client._state.store.transaction() as data:
        data["token"] = forged
    with pytest.raises(InvalidToken):
        make_client(key, tmp_path).check()


def test_env_home_overrides_store_dir(
    key: SecretKey, fp: Fingerprint, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOFTWARE_DNA_HOME", str(tmp_path / "home"))
    client = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()])
    client.install_token(make_token(key, PRODUCT, fp))
    assert client.store_path.parent == tmp_path / "home"
    assert os.path.exists(client.store_path)


def test_bad_public_key_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"k4\.public"):
        LicenseClient(product=PRODUCT, public_keys=["k4.secret.AAAA"])
    with pytest.raises(ValueError):
        LicenseClient(product=PRODUCT, public_keys=[])


@pytest.mark.parametrize("damage", [b"", b"\0" * 300, b"SDNA\x01garbage", None],
                         ids=["empty", "nul-filled", "truncated", "other-product"])
def test_corrupt_store_is_moved_aside_then_not_activated(
    key: SecretKey, fp: Fingerprint, tmp_path: Path, damage: bytes | None
) -> None:
    client = make_client(key, tmp_path)
    client.install_token(make_token(key, PRODUCT, fp))
    if damage is None:  # another product's store file under this product's name
        other = make_client(key, tmp_path / "other", product="other-product")
        other.install_token(make_token(key, "other-product", collect("other-product")))
        damage = other.store_path.read_bytes()
    client.store_path.write_bytes(damage)
    with pytest.raises(StoreCorrupted) as caught:
        make_client(key, tmp_path).check()
    assert caught.value.moved_to is not None
    assert Path(caught.value.moved_to).read_bytes() == damage  # kept, not deleted
    fresh = make_client(key, tmp_path)
    with pytest.raises(NotActivated):  # no crash loop: the next start is clean
        fresh.check()
    assert fresh.install_token(make_token(key, PRODUCT, fp)).product == PRODUCT
