"""Every error and refusal code of the HTTP protocol, with its HTTP status.

The server answers a refusal as ``{"error": {"code": "<code>", "message": ...}}``
(docs/protocol.md); the SDK maps the code to one of its exceptions. Both halves
take the codes from :class:`Code`, so a code exists in exactly one place.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Code"]


class Code(str, Enum):
    """A protocol error code; the value is the string on the wire.

    ``Code(text)`` raises ``ValueError`` for a string that is no code (an SDK
    reading an answer from a newer server treats that as a generic error).
    :attr:`status` is the HTTP status the server answers the code with.
    """

    status: int

    def __new__(cls, value: str, status: int) -> Code:
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        return member

    def __str__(self) -> str:
        return str.__str__(self)

    # Malformed or unacceptable requests.
    INVALID_REQUEST = ("invalid_request", 400)
    CONSENT_REQUIRED = ("consent_required", 400)
    REQUEST_EXPIRED = ("request_expired", 400)
    INVALID_RECEIPT = ("invalid_receipt", 400)
    INVALID_FINGERPRINT = ("invalid_fingerprint", 400)
    UNAUTHORIZED = ("unauthorized", 401)
    FORBIDDEN = ("forbidden", 403)
    NOT_FOUND = ("not_found", 404)
    METHOD_NOT_ALLOWED = ("method_not_allowed", 405)
    NOT_ACCEPTABLE = ("not_acceptable", 406)
    CONFLICT = ("conflict", 409)
    TOO_LARGE = ("too_large", 413)
    UNSUPPORTED_MEDIA_TYPE = ("unsupported_media_type", 415)
    #: Any other HTTP error of the web framework; answered with that error's own status.
    HTTP_ERROR = ("http_error", 400)

    # Refusals about the license or the activation.
    WRONG_PASSWORD = ("wrong_password", 403)
    PASSWORD_RESET_REQUIRED = ("password_reset_required", 403)
    LICENSE_REVOKED = ("license_revoked", 403)
    LICENSE_SUSPENDED = ("license_suspended", 403)
    LICENSE_EXPIRED = ("license_expired", 403)
    SUBSCRIPTION_CANCELLED = ("subscription_cancelled", 403)
    TRIAL_NOT_AVAILABLE = ("trial_not_available", 403)
    OFFLINE_NOT_ALLOWED = ("offline_not_allowed", 403)
    WRONG_MACHINE = ("wrong_machine", 403)
    INVALID_RESET_CODE = ("invalid_reset_code", 403)
    UNKNOWN_LICENSE_KEY = ("unknown_license_key", 404)
    UNKNOWN_RENEWAL_CODE = ("unknown_renewal_code", 404)
    NO_SEATS_LEFT = ("no_seats_left", 409)
    UNTRUSTED_SIGNING_KEY = ("untrusted_signing_key", 409)
    NO_EMAIL_ON_FILE = ("no_email_on_file", 409)
    NO_PASSWORD = ("no_password", 409)
    TRIAL_USED = ("trial_used", 409)
    RENEWAL_CODE_USED = ("renewal_code_used", 409)
    RENEWAL_NOT_APPLICABLE = ("renewal_not_applicable", 409)
    #: An air-gapped request from a machine that holds an online activation of the license.
    ALREADY_ACTIVATED_ONLINE = ("already_activated_online", 409)
    ACTIVATION_REMOVED = ("activation_removed", 410)
    ACTIVATION_MOVED = ("activation_moved", 410)
    #: The license holder freed this activation's seat in the license portal.
    ACTIVATION_RELEASED = ("activation_released", 410)
    #: The license holder freed as many computers in the portal as the product allows
    #: per period.
    RELEASE_LIMIT_REACHED = ("release_limit_reached", 429)
    RATE_LIMITED = ("rate_limited", 429)
    ACTIVATION_LOCKED = ("activation_locked", 429)

    # Server-side faults.
    INTERNAL_ERROR = ("internal_error", 500)
    NO_SIGNING_KEY = ("no_signing_key", 503)
    MAIL_UNAVAILABLE = ("mail_unavailable", 503)
    MAIL_FAILED = ("mail_failed", 503)
    UNAVAILABLE = ("unavailable", 503)
    # Store webhooks (payment providers): refused deliveries change nothing.
    INVALID_SIGNATURE = ("invalid_signature", 400)
    UNKNOWN_EVENT = ("unknown_event", 400)
    TEST_MODE_REFUSED = ("test_mode_refused", 400)
    #: A paid sale of a price no mapping names: nothing is recorded, the provider retries.
    PRICE_NOT_MAPPED = ("price_not_mapped", 422)
