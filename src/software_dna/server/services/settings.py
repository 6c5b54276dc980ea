"""A license's settings document: a JSON object the app stores on the server, encrypted.

Invariant: a stored document, inside the request's envelope
``{"settings": ...}``, is within the request bodies' shape limits
(:func:`~software_dna.server.domain.json_shape.refusal`; for the document
itself at most 999 arrays and objects, 999 members, 31 levels deep: exactly
what an app can send) and 32 KiB as compact JSON, so
every answer that serialises it can; whatever bytes an activation's secret
holder PUTs, a GET by any seat of the license never fails on it.  A document
stored before the rule that breaks it reads as ``{}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from software_dna.server.crypto import DecryptionError
from software_dna.server.domain.json_shape import MAX_CONTAINERS, MAX_DEPTH, MAX_MEMBERS, refusal
from software_dna.server.models import LicenseSettings
from software_dna.server.services.authentication import authenticate_live
from software_dna.server.services.common import Context, utcnow
from software_dna.server.services.errors import ServiceError, invalid
from software_dna.wire.codes import Code

__all__ = ["MAX_SETTINGS_BYTES", "SettingsDoc", "get_settings", "put_settings", "read_settings",
           "write_settings"]

MAX_SETTINGS_BYTES = 32 * 1024


@dataclass(frozen=True)
class SettingsDoc:
    """A license's settings document."""

    settings: dict[str, Any]
    updated_at: datetime | None
    server_time: datetime


def read_settings(session: Session, ctx: Context,
                  license_id: str) -> tuple[dict[str, Any], datetime | None]:
    """The settings document of a license and when it changed (``{}``, None when unset)."""
    row = session.get(LicenseSettings, license_id)
    if row is None:
        return {}, None
    try:
        plaintext = ctx.vault.decrypt_field(row.ciphertext, aad=f"settings:{license_id}")
        # A document over the shape limits (stored before they applied) would fail to serialise.
        if _over_limits(plaintext):
            return {}, row.updated_at
        document = json.loads(plaintext)
    except (DecryptionError, ValueError, RecursionError):
        return {}, row.updated_at
    return (document if isinstance(document, dict) else {}), row.updated_at


def get_settings(session: Session, ctx: Context, activation_id: str,
                 secret: str | None) -> SettingsDoc:
    """The settings document of the activation's license.

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``.
    """
    activation = authenticate_live(session, ctx, activation_id, secret)
    document, updated_at = read_settings(session, ctx, activation.license_id)
    session.commit()
    return SettingsDoc(settings=document, updated_at=updated_at, server_time=utcnow())


def put_settings(session: Session, ctx: Context, activation_id: str, secret: str | None,
                 document: Mapping[str, Any]) -> SettingsDoc:
    """Replace the settings document of the activation's license (stored encrypted); commits.

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``, 400
        ``invalid_request`` (over the shape limits), 413 ``too_large`` (over
        32 KiB as compact JSON).
    """
    activation = authenticate_live(session, ctx, activation_id, secret)
    now = utcnow()
    stored = write_settings(session, ctx, activation.license_id, document, now=now)
    session.commit()
    return SettingsDoc(settings=stored, updated_at=now, server_time=now)


def write_settings(session: Session, ctx: Context, license_id: str,
                   document: Mapping[str, Any], *, now: datetime) -> dict[str, Any]:
    """Store ``document`` (a JSON object) as the license's settings, encrypted. No commit.

    Returns the document as stored (compact JSON, keys sorted, read back).

    Raises:
        ServiceError: 400 ``invalid_request`` (not plain JSON, or over the
        shape limits of :func:`~software_dna.server.domain.json_shape.refusal`
        inside the envelope: 999 arrays and objects, 999 members, 31 levels),
        413 ``too_large``
        (over 32 KiB as compact JSON).
    """
    try:
        encoded = json.dumps(dict(document), separators=(",", ":"), ensure_ascii=False,
                             sort_keys=True, allow_nan=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError):
        raise invalid("The settings must be a plain JSON object.") from None
    if len(encoded) > MAX_SETTINGS_BYTES:
        raise ServiceError(Code.TOO_LARGE, "The settings document is over 32 KiB.")
    if _over_limits(encoded):
        raise invalid(f"The settings document is over the limits (at most "
                      f"{MAX_CONTAINERS - 1:,} arrays and objects, {MAX_MEMBERS - 1:,} members, "
                      f"{MAX_DEPTH - 1} levels deep); send a smaller, flatter document.")
    ciphertext = ctx.vault.encrypt_field(encoded, aad=f"settings:{license_id}")
    row = session.get(LicenseSettings, license_id)
    if row is None:
        session.add(LicenseSettings(license_id=license_id, ciphertext=ciphertext,
                                    updated_at=now))
    else:
        row.ciphertext = ciphertext
        row.updated_at = now
    stored: dict[str, Any] = json.loads(encoded)
    return stored


def _over_limits(encoded: bytes) -> bool:
    """True when ``encoded`` (a document, UTF-8 JSON) in the request's envelope
    ``{"settings": ...}`` is over the bodies' shape limits: a stored document is
    one an app can send and read back."""
    return refusal(b'{"settings":' + encoded + b"}") is not None
