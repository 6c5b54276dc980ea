"""Bodies of floating leases (docs/seats.md)."""

from __future__ import annotations

from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["CheckoutOut", "LeaseList", "LeaseOut"]


class CheckoutOut(Out):
    """A fresh token after a check-out / check-in; ``lease_expires_at`` null: no lease held."""

    token: str
    nonce: str
    server_time: UtcTime
    rebound: bool
    lease_expires_at: UtcTime | None
    activation_secret: str | None = None  # the rotated secret, as for a validation


class LeaseOut(Out):
    """A live floating lease (which machine, since when, until when)."""

    activation_id: str
    fingerprint_id: str
    created_at: UtcTime
    renewed_at: UtcTime
    expires_at: UtcTime


class LeaseList(Out):
    """``GET /v1/admin/licenses/{id}/leases``: live leases, earliest end first."""

    license_id: str
    seats: int
    leases: list[LeaseOut]
