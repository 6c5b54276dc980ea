"""Helpers that sign license tokens for tests, the way the server does."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from software_dna.fingerprint import Fingerprint
from software_dna.wire import identity
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
    components: Mapping[str, Any] | None = None,
    algorithm: int = 2,
    license_id: str = "lic_1",
    activation_id: str = "act_1",
    **extra: Any,
) -> str:
    """A token bound to ``fp`` (or to ``components``), as the server signs it.

    ``algorithm`` 2 binds the algorithm-2 set (``fp.components``, JSON form);
    1 binds ``fp.legacy`` as a 0.1 server did (no ``fingerprint_algorithm`` claim).
    """
    issued = issued_at or now_utc() - timedelta(minutes=1)
    if components is None:
        if algorithm == 1:
            assert fp.legacy is not None, "this fingerprint has no algorithm-1 form"
            components = fp.legacy.components
        else:
            components = identity.to_json(fp.components)
    return issue_token(
        key,
        issuer="test",
        license_id=license_id,
        activation_id=activation_id,
        product=product,
        fingerprint_id="fp_test0123456789",
        fingerprint=dict(components),
        fingerprint_algorithm=algorithm,
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
