"""Answers of the admin API that several routers build the same way."""

from __future__ import annotations

from sqlalchemy.orm import Session

from software_dna.server import services
from software_dna.server.schemas import LicenseOut

__all__ = ["license_out"]


def license_out(session: Session, lic_id: str) -> LicenseOut:
    """The admin API's view of the license ``lic_id`` (404 when unknown)."""
    lic = services.get_license(session, lic_id)
    return LicenseOut.model_validate(
        lic, context={"seats_in_use": services.seats_in_use(session, lic.id)})
