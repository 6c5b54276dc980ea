"""Why a license or an activation is refused: a code and the end user's message.

These are the only copies of the status rules: the ORM services
(``services.activations``, ``services.renewals``, ``services.password_reset``)
and the validation fast path (``services.hotpath``) all ask them, so a new
refusal added here reaches every path that issues tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from software_dna.server.domain.sharing import DEACTIVATED_BY_SHARING
from software_dna.wire.claims import Kind, SeatMode
from software_dna.wire.codes import Code
from software_dna.wire.messages import expired_message

__all__ = [
    "ACTIVATION_MOVED",
    "ACTIVATION_RELEASED",
    "ACTIVATION_REMOVED",
    "DEACTIVATED_BY_PORTAL",
    "ACTIVATION_SHARED",
    "LICENSE_REVOKED",
    "LICENSE_SUSPENDED",
    "SUBSCRIPTION_CANCELLED",
    "Refusal",
    "air_gapped_allowed",
    "expired",
    "offline_refusal",
    "removed_refusal",
    "standing_refusal",
    "status_refusal",
]


@dataclass(frozen=True)
class Refusal:
    """A refusal: the protocol ``code`` (its HTTP status is ``code.status``) and a message."""

    code: Code
    message: str


LICENSE_REVOKED = Refusal(Code.LICENSE_REVOKED, "This license was revoked by the vendor.")
LICENSE_SUSPENDED = Refusal(
    Code.LICENSE_SUSPENDED,
    "This license is suspended by the vendor. Contact the vendor to resume it.",
)
SUBSCRIPTION_CANCELLED = Refusal(
    Code.SUBSCRIPTION_CANCELLED,
    "The subscription was cancelled. Renew it with the vendor to keep using the product.",
)
ACTIVATION_REMOVED = Refusal(
    Code.ACTIVATION_REMOVED,
    "This activation was removed. Activate again with your license key.",
)
ACTIVATION_MOVED = Refusal(
    Code.ACTIVATION_MOVED,
    "This license was moved to another computer (roll-over). Activate it again "
    "with your license key to use it here.",
)
ACTIVATION_RELEASED = Refusal(
    Code.ACTIVATION_RELEASED,
    "The license holder freed this computer's seat in the license portal. Activate the "
    "license again with your license key to use it here.",
)

#: ``activations.deactivated_by`` of a seat freed in the license portal.
DEACTIVATED_BY_PORTAL = "license_holder"


def expired(kind: str) -> Refusal:
    """403 ``license_expired``, worded for the license's ``kind`` (``full``, ``trial``, ...)."""
    return Refusal(Code.LICENSE_EXPIRED, expired_message(Kind(kind)))


def standing_refusal(*, status: str, cancelled_at: datetime | None) -> Refusal | None:
    """The refusal of a cancelled, revoked or suspended license, else None.

    Args:
        status: the license's status, ``active`` / ``suspended`` / ``revoked``.
        cancelled_at: when its subscription was cancelled (a cancelled
            subscription is suspended), or None.
    """
    if status == "suspended" and cancelled_at is not None:
        return SUBSCRIPTION_CANCELLED
    if status == "revoked":
        return LICENSE_REVOKED
    if status == "suspended":
        return LICENSE_SUSPENDED
    return None


def status_refusal(*, status: str, cancelled_at: datetime | None, expires_at: datetime | None,
                   kind: str, now: datetime) -> Refusal | None:
    """Why a license cannot be used at ``now`` (aware UTC), else None.

    :func:`standing_refusal`, then expiry: ``expires_at`` (aware, or None for
    no end) at or before ``now`` is 403 ``license_expired``.
    """
    refusal = standing_refusal(status=status, cancelled_at=cancelled_at)
    if refusal is not None:
        return refusal
    if expires_at is not None and now >= expires_at:
        return expired(kind)
    return None


#: 410 ``activation_removed`` of an activation the product's ``sharing_policy``
#: "suspend" deactivated (services/sharing.py).
ACTIVATION_SHARED = Refusal(
    Code.ACTIVATION_REMOVED,
    "This activation was stopped: it was used on more than one computer. Each computer "
    "needs its own seat: activate again with your license key, or contact the vendor.",
)


def removed_refusal(deactivated_by: str | None) -> Refusal:
    """410 for a deactivated activation: ``activation_moved`` after a roll-over,
    ``activation_released`` when freed in the portal, else removed."""
    if deactivated_by == DEACTIVATED_BY_SHARING:
        return ACTIVATION_SHARED
    if deactivated_by == DEACTIVATED_BY_PORTAL:
        return ACTIVATION_RELEASED
    return ACTIVATION_MOVED if deactivated_by == "rollover" else ACTIVATION_REMOVED


def air_gapped_allowed(*, product_setting: bool, license_setting: bool | None) -> bool:
    """Whether a license may be activated from an air-gapped request.

    An explicit opt-in: the license's own setting when it has one (True or
    False), else the product's (off for new products).
    """
    return product_setting if license_setting is None else license_setting


def offline_refusal(*, seat_mode: str, subscription: bool, product_air_gapped: bool,
                    license_air_gapped: bool | None) -> Refusal | None:
    """Why a license cannot be activated from an air-gapped request, else None.

    The vendor must have allowed air-gapped activation (the product's
    ``air_gapped`` setting, or the license's override: :func:`air_gapped_allowed`);
    these are stored on the server, nothing in the request changes them.
    Floating seats are leases that must be renewed on the server, and a
    subscription must see its cancellation at the next refresh, so neither is
    ever air-gapped.

    Args:
        seat_mode: the license's seat mode; subscription: it is a subscription.
        product_air_gapped: the product's ``air_gapped`` setting.
        license_air_gapped: the license's override (None: the product's).
    """
    if not air_gapped_allowed(product_setting=product_air_gapped,
                              license_setting=license_air_gapped):
        whose = "product" if license_air_gapped is None else "license"
        return Refusal(Code.OFFLINE_NOT_ALLOWED, (
            f"This {whose} does not allow air-gapped activation: ask the vendor, or activate "
            "it on a computer that can reach the license server."))
    if seat_mode == SeatMode.FLOATING.value:
        return Refusal(Code.OFFLINE_NOT_ALLOWED, (
            "This license's seats are floating leases, which need the license server: "
            "activate it on a computer that can reach the server."))
    if subscription:
        return Refusal(Code.OFFLINE_NOT_ALLOWED, (
            "This license is a subscription, which needs the license server: activate it "
            "on a computer that can reach the server."))
    return None
