"""Helpers that sign license tokens for tests, the way the server does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from software_dna.fingerprint import Fingerprint
from software_dna.wire.claims import Mode, Protection, issue_token
from software_dna.wire.paseto import SecretKey


def now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


def make_token(
    key: SecretKey,
    product: str,
    fp: Fingerprint,
    *,
    issued_at: datetime | None = None,
    refresh_by: datetime | None = None,
    expires_at: datetime | None = None,
    license_expires_at: datetime | None = None,
    mode: Mode = Mode.FULL,
    features: tuple[str, ...] = ("pro",),
    protection: Protection = Protection.OPPORTUNISTIC,
    tolerance: int = 1,
    nonce: str = "test-nonce-0123456789",
    components: Mapping[str, str] | None = None,
    **extra: Any,
) -> str:
    issued = issued_at or now_utc() - timedelta(minutes=1)
    return issue_token(
        key,
        issuer="test",
        license_id="lic_1",
        activation_id="act_1",
        product=product,
        fingerprint_id=fp.id,
        fingerprint=dict(fp.components if components is None else components),
        tolerance=tolerance,
        mode=mode,
        features=features,
        protection=protection,
        issued_at=issued,
        refresh_by=refresh_by or issued + timedelta(days=7),
        expires_at=expires_at or issued + timedelta(days=37),
        license_expires_at=license_expires_at,
        nonce=nonce,
        **extra,
    )
