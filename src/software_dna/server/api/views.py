"""Answers that several routers build the same way."""

from __future__ import annotations

from sqlalchemy.orm import Session

from software_dna.server import services
from software_dna.server.schemas import LicenseOut, OfflineActivateOut
from software_dna.server.services.offline import OfflineActivated

__all__ = ["license_out", "offline_activate_out"]


def license_out(session: Session, lic_id: str) -> LicenseOut:
    """The admin API's view of the license ``lic_id`` (404 when unknown)."""
    lic = services.get_license(session, lic_id)
    return LicenseOut.model_validate(
        lic, context={"seats_in_use": services.seats_in_use(session, lic.id)})


def offline_activate_out(result: OfflineActivated) -> OfflineActivateOut:
    """The answer to an air-gapped activation request (public and admin routes alike)."""
    return OfflineActivateOut(response=result.response, activation_id=result.activation_id,
                              license_id=result.license_id, product=result.product,
                              fingerprint_id=result.fingerprint_id,
                              server_time=result.server_time)
