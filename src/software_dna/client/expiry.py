"""When a verified license stops working, and what the end user reads then (no I/O).

- :func:`expired_message`: the license ended (worded by its kind);
- :func:`expired_air_gapped`: an air-gapped token ended before its license;
- :func:`lease_error`: a floating license works -- offline too -- until its
  lease ends and not after (:class:`~software_dna.errors.LeaseExpired`);
- a cancelled subscription (refusal ``subscription_cancelled``): the app keeps
  working until its current token ends -- the warning period of protection
  ``mandatory`` -- with :attr:`License.subscription_ends_at` set, then stops
  with :class:`~software_dna.errors.LicenseSuspended`. :func:`cancel_status`
  builds the stored status, :func:`cancel_window_end` reads it and
  :func:`cancelled_license` applies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from software_dna.errors import LeaseExpired, LicenseSuspended, Message
from software_dna.i18n import N_
from software_dna.license import License, in_warning_period
from software_dna.wire import messages as wording
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code
from software_dna.wire.times import format_rfc3339, parse_rfc3339

from .document import Status

__all__ = [
    "cancel_status",
    "cancel_window_end",
    "cancelled_license",
    "expired_air_gapped",
    "expired_message",
    "lease_error",
]


#: The catalogue entries of :func:`software_dna.wire.messages.expired_message`'s
#: sentences (the same English), by the license's kind.
_EXPIRED = {
    Kind.TRIAL: N_("The trial ended on %(time)s. Buy a license to keep using the product."),
    Kind.EVALUATION: N_("The evaluation period ended on %(time)s. Buy a license to keep "
                        "using the product."),
    Kind.TEST: N_("This test code expired on %(time)s. Ask the vendor for a new one."),
    Kind.FULL: N_("The license expired on %(time)s. Renew it to keep using the product."),
}


def expired_message(lic: License, ended: datetime) -> str:
    """What the end user reads when the license ended at ``ended`` (by its kind)."""
    return Message(_EXPIRED[lic.kind], wording.expired_message(lic.kind, ended),
                   time=format_rfc3339(ended))


def expired_air_gapped(ended: datetime) -> str:
    """What the end user reads when an air-gapped token ended at ``ended`` (its license did not).

    An air-gapped token (protection ``offline``) lives the product's
    ``air_gapped_token_days``; a new activation response renews it, with no
    network needed on this computer.
    """
    return Message(
        N_("This computer's air-gapped activation ended on %(time)s. Create a new "
           "activation request on this computer and get a response for it from the vendor, "
           "or from a computer that can reach the license server."),
        time=format_rfc3339(ended))


def lease_error(lic: License, now: datetime) -> LeaseExpired | None:
    """:class:`LeaseExpired` when ``lic`` is floating and holds no live lease at ``now``."""
    if not lic.is_floating:
        return None
    ends = lic.lease_expires_at
    if ends is not None and now < ends:
        return None
    if ends is None:
        return LeaseExpired(
            N_("No floating seat of this license is checked out on this computer. Connect to "
               "the license server to check one out.")
        )
    return LeaseExpired(Message(
        N_("This computer's floating seat lease ended at %(time)s. Connect to the license "
           "server to check a seat out again."), time=format_rfc3339(ends)))


def cancel_status(stored: License | None, message: str, now: datetime) -> Status:
    """The status to store for a cancelled subscription.

    ``until`` is the end of the stored token (``exp``): the warning period the
    app still has. Without a usable token the app stops at once.
    """
    until = stored.expires_at if stored is not None else None
    status: Status = {"code": Code.SUBSCRIPTION_CANCELLED.value, "message": message,
                      "seen_at": format_rfc3339(now)}
    if until is not None and until > now:
        status["until"] = format_rfc3339(until)
    return status


def cancel_window_end(status: object, now: datetime) -> datetime | None:
    """When a stored cancelled-subscription status still lets the app run: its end.

    Returns None for any other status.

    Raises:
        LicenseSuspended: a cancelled subscription whose warning period ended.
    """
    if not isinstance(status, Mapping) or status.get("code") != Code.SUBSCRIPTION_CANCELLED:
        return None
    try:
        until = parse_rfc3339(status.get("until"))
    except ValueError:
        until = None
    if until is None or now >= until:
        raise LicenseSuspended(str(status.get("message") or "The subscription was cancelled."))
    return until


def cancelled_license(lic: License, until: datetime) -> License:
    """``lic`` during the warning period of a cancelled subscription."""
    return in_warning_period(lic, until)
