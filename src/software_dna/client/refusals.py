"""What each protocol error code means to the SDK: one table, keyed by :class:`Code`.

The server answers a refusal as ``{"error": {"code", "message", ...}}``
(docs/protocol.md). :data:`MEANINGS` says, for every code the SDK acts on,
which exception it raises and how the code is trusted:

- ``signed``: the server signs this refusal with a receipt (a ``v4.public``
  token answering the request's nonce); an unsigned one is not its word.
- ``stored``: a signed refusal the client keeps in its store and its
  rollback witness, so that going offline cannot undo it.
- ``ends_activation``: the refusal ends this machine's activation (its
  credentials are dropped with it).
- ``retry_after``: the exception carries when to try again.
- ``message``: the SDK's own wording, used instead of the server's.
- ``wording``: the SDK's own sentence for the code, shown instead of the
  server's (English) message when the client speaks another language
  (``LicenseClient(language=...)``); in English the server's message stays.

Adding a signed refusal on the SDK side is one :class:`Code` member and one
row here. :class:`ErrorAnswer` reads an error answer; the feature classes
decide what an answer means in their context (a code missing from the table
is a :class:`~software_dna.errors.ServerError` there).
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Final

from software_dna.errors import (
    ActivationLocked,
    ActivationMoved,
    ActivationReleased,
    ConsentRequired,
    FingerprintUnavailable,
    LicenseError,
    LicenseExpired,
    LicenseRevoked,
    LicenseSuspended,
    Message,
    NoSeatsLeft,
    NotActivated,
    PasswordResetFailed,
    RenewalRefused,
    TrialUnavailable,
    UnknownLicenseKey,
    UntrustedSigningKey,
    WrongMachine,
    WrongPassword,
)
from software_dna.i18n import N_
from software_dna.wire.codes import Code
from software_dna.wire.times import parse_rfc3339

from .transport import Response

__all__ = ["MEANINGS", "VALIDATION_CODES", "ErrorAnswer", "Meaning", "code_of",
           "stored_error"]

#: The message of an activation the server no longer knows (``unauthorized``).
_UNKNOWN_ACTIVATION = N_("The license server does not recognise this activation. "
                         "Activate again with your license key.")


class Meaning:
    """What one error code means to the SDK (a row of :data:`MEANINGS`).

    Args:
        error: the exception class raised for it.
        signed: the server signs it with a receipt.
        stored: a signed refusal kept in the store (going offline cannot undo it).
        ends_activation: it ends this machine's activation.
        retry_after: the exception takes ``retry_after`` (aware UTC or None).
        message: the SDK's wording, instead of the server's message.
        wording: the SDK's sentence for the code (``N_``-marked), the catalogue
            entry of the server's message (see :class:`~software_dna.errors.Message`).
    """

    __slots__ = ("ends_activation", "error", "message", "retry_after", "signed", "stored",
                 "wording")

    def __init__(self, error: type[LicenseError], *, wording: str, signed: bool = False,
                 stored: bool = False, ends_activation: bool = False,
                 retry_after: bool = False, message: str | None = None) -> None:
        self.error: Final = error
        self.signed: Final = signed
        self.stored: Final = stored
        self.ends_activation: Final = ends_activation
        self.retry_after: Final = retry_after
        self.message: Final = message
        self.wording: Final = wording

    def exception(self, message: str, retry_after: datetime | None = None) -> LicenseError:
        """The exception to raise, with the server's ``message`` unless the row has its own.

        The text is a :class:`~software_dna.errors.Message` whose catalogue entry is
        the row's ``wording``: in English it reads as the server wrote it.
        """
        text = Message(self.wording, self.message or message)
        if self.retry_after:
            return self.error(text, retry_after=retry_after)  # type: ignore[call-arg]
        return self.error(text)


#: Every code the SDK turns into an exception of its own.
MEANINGS: Mapping[Code, Meaning] = {
    # Signed refusals about the license or the activation.
    Code.LICENSE_REVOKED: Meaning(
        LicenseRevoked, signed=True, stored=True,
        wording=N_("This license was revoked by the vendor.")),
    Code.LICENSE_SUSPENDED: Meaning(
        LicenseSuspended, signed=True, stored=True,
        wording=N_("This license is suspended by the vendor. Contact the vendor to resume it.")),
    Code.LICENSE_EXPIRED: Meaning(
        LicenseExpired, signed=True, stored=True,
        wording=N_("This license has expired. Renew it with the vendor to keep using the "
                   "product.")),
    Code.ACTIVATION_REMOVED: Meaning(
        NotActivated, signed=True, stored=True, ends_activation=True,
        wording=N_("This activation was removed. Activate again with your license key.")),
    Code.ACTIVATION_MOVED: Meaning(
        ActivationMoved, signed=True, stored=True, ends_activation=True,
        wording=N_("This license was moved to another computer (roll-over). Activate it "
                   "again with your license key to use it here.")),
    Code.ACTIVATION_RELEASED: Meaning(
        ActivationReleased, signed=True, stored=True, ends_activation=True,
        wording=N_("The license holder freed this computer's seat in the license portal. "
                   "Activate the license again with your license key to use it here.")),
    # Signed, but not stored: the app runs out the warning period first.
    Code.SUBSCRIPTION_CANCELLED: Meaning(
        LicenseSuspended, signed=True,
        wording=N_("The subscription was cancelled. Renew it with the vendor to keep using "
                   "the product.")),
    # Activation refusals.
    Code.UNKNOWN_LICENSE_KEY: Meaning(
        UnknownLicenseKey,
        wording=N_("This license key is not known for this product. Check it and type it "
                   "again.")),
    Code.WRONG_PASSWORD: Meaning(
        WrongPassword, wording=N_("The activation password is wrong.")),
    Code.PASSWORD_RESET_REQUIRED: Meaning(
        WrongPassword,
        wording=N_("This license needs a new activation password from the vendor.")),
    Code.CONSENT_REQUIRED: Meaning(
        ConsentRequired,
        wording=N_("Personal data is sent to the license server only with your consent.")),
    Code.NO_SEATS_LEFT: Meaning(
        NoSeatsLeft, retry_after=True,
        wording=N_("Every seat of this license is in use. Free one on another computer, or "
                   "contact the vendor for more seats.")),
    Code.ACTIVATION_LOCKED: Meaning(
        ActivationLocked, retry_after=True,
        wording=N_("Too many attempts: activation is locked for a while. Try again later.")),
    Code.RATE_LIMITED: Meaning(
        ActivationLocked, retry_after=True,
        wording=N_("Too many requests to the license server. Try again later.")),
    Code.WRONG_MACHINE: Meaning(
        WrongMachine,
        wording=N_("This license is bound to another computer. Activate it on this "
                   "computer with your license key.")),
    Code.INVALID_FINGERPRINT: Meaning(
        FingerprintUnavailable,
        wording=N_("This computer cannot be identified well enough to activate the license.")),
    Code.UNAUTHORIZED: Meaning(NotActivated, message=_UNKNOWN_ACTIVATION,
                               wording=_UNKNOWN_ACTIVATION),
    # The app trusts none of the product's signing keys (the message names the current one).
    Code.UNTRUSTED_SIGNING_KEY: Meaning(
        UntrustedSigningKey,
        wording=N_("This version of the app cannot verify the product's licenses: install "
                   "the app's current version.")),
    # Trials and renewal codes.
    Code.TRIAL_USED: Meaning(
        TrialUnavailable, wording=N_("This computer already had its trial of this product.")),
    Code.TRIAL_NOT_AVAILABLE: Meaning(
        TrialUnavailable, wording=N_("This product offers no trial.")),
    Code.UNKNOWN_RENEWAL_CODE: Meaning(
        RenewalRefused,
        wording=N_("This renewal code is not known. Check it and type it again.")),
    Code.RENEWAL_CODE_USED: Meaning(
        RenewalRefused, wording=N_("This renewal code was already used.")),
    Code.RENEWAL_NOT_APPLICABLE: Meaning(
        RenewalRefused, wording=N_("This renewal code cannot be used for this license.")),
    # Password reset.
    Code.NO_EMAIL_ON_FILE: Meaning(
        PasswordResetFailed,
        wording=N_("No email address is on file for this license: ask the vendor to reset "
                   "the activation password.")),
    Code.NO_PASSWORD: Meaning(
        PasswordResetFailed, wording=N_("This license has no activation password.")),
    Code.INVALID_RESET_CODE: Meaning(
        PasswordResetFailed,
        wording=N_("The reset code is wrong, already used or expired. Ask for a new one.")),
    Code.MAIL_UNAVAILABLE: Meaning(
        PasswordResetFailed,
        wording=N_("The license server cannot send email now. Contact the vendor.")),
    Code.MAIL_FAILED: Meaning(
        PasswordResetFailed,
        wording=N_("The email could not be sent. Try again later.")),
}


_BY_VALUE: Mapping[str, Code] = {code.value: code for code in Code}

#: The codes the validation, checkout and check-in routes answer besides the signed
#: refusals. Any other code on those routes is not the server's word (it never sends
#: one there): the check treats it as a failed refresh, not as a refusal.
VALIDATION_CODES: frozenset[Code] = frozenset({
    Code.UNAUTHORIZED, Code.WRONG_MACHINE, Code.NO_SEATS_LEFT, Code.ACTIVATION_LOCKED,
    Code.UNTRUSTED_SIGNING_KEY,
})

#: A ``Retry-After`` of more digits (over 31 years) is not taken as a time.
_MAX_RETRY_DIGITS = 9


def code_of(text: object) -> Code | None:
    """The :class:`Code` named by ``text``, or None (not a string, or a code unknown here)."""
    return _BY_VALUE.get(text) if isinstance(text, str) else None


def stored_error(status: object) -> LicenseError | None:
    """The exception of a stored refusal status ``{"code", "message", ...}``, or None.

    Only codes whose row is ``stored`` count: anything else stored (such as a
    cancelled subscription's warning period) is not a refusal.
    """
    if not isinstance(status, Mapping):
        return None
    code = code_of(status.get("code"))
    meaning = MEANINGS.get(code) if code is not None else None
    if meaning is None or not meaning.stored:
        return None
    return meaning.exception(str(status.get("message") or meaning.wording))


class ErrorAnswer:
    """An error answer of the server, read once: its code, message and extra fields.

    Args:
        answer: the server's :class:`Response` (any status).
        now: the current time (aware UTC), for a ``Retry-After`` in seconds.

    Attributes:
        status: the HTTP status.
        text: the code as sent (``"http_error"`` when the body holds no error).
        code: the :class:`Code`, or None for a code this SDK does not know.
        message: the server's message (or a generic one).
        meaning: the code's row of :data:`MEANINGS`, or None.
        receipt: the ``receipt`` field (a signed refusal's token), or None.
        retry_after: when to try again (aware UTC), or None.
    """

    __slots__ = ("code", "meaning", "message", "receipt", "retry_after", "status", "text")

    def __init__(self, answer: Response, now: datetime) -> None:
        error = answer.body.get("error")
        fields: Mapping[str, object] = error if isinstance(error, dict) else {}
        sent, message = fields.get("code"), fields.get("message")
        self.status: Final = answer.status
        self.text: Final[str] = sent if isinstance(sent, str) else "http_error"
        self.message: Final[str] = (
            str(message or sent) if isinstance(sent, str)
            else Message(N_("The license server answered with HTTP %(status)s."),
                         status=answer.status))
        self.code: Final = code_of(self.text)
        self.meaning: Final = MEANINGS.get(self.code) if self.code is not None else None
        self.receipt: Final = fields.get("receipt")
        self.retry_after: Final = _retry_at(fields.get("retry_at"), answer, now)

    @property
    def too_many(self) -> bool:
        """True for a ``429`` answer or ``rate_limited``: too many attempts."""
        return self.status == Code.RATE_LIMITED.status or self.code is Code.RATE_LIMITED

    def exception(self, only: Collection[Code] | None = None) -> LicenseError | None:
        """The table's exception for this answer, or None when the code has no row.

        Args:
            only: the unsigned codes the route can answer (None: any); a code
                outside them, and not a signed refusal, gives None too.
        """
        if self.meaning is None or self.code is None:
            return None
        if only is not None and not self.meaning.signed and self.code not in only:
            return None
        return self.meaning.exception(self.message, self.retry_after)


def _retry_at(raw: object, answer: Response, now: datetime) -> datetime | None:
    """The error's ``retry_at`` (RFC 3339, the server's time, e.g. a lease's end), else
    ``Retry-After`` seconds after ``now`` (aware UTC), else None.

    The absolute time comes first: it is the instant the server computed, the
    same for every refusal until the lock lifts, whereas "seconds from now"
    rounds on the server and is added to a later ``now`` here (a slow answer
    would move the time back and forth by a second).  The header's time is
    kept to the microsecond: rounding it down would name a time before the
    lock lifts.  Anything unusable (a malformed or out-of-range time, a header
    of other digits or of more than :data:`_MAX_RETRY_DIGITS`) is no retry
    time: the answer can come from anyone on the network.
    """
    if isinstance(raw, str):
        with contextlib.suppress(ValueError, OverflowError):
            return parse_rfc3339(raw)
    header = answer.headers.get("retry-after", "")
    if header.isascii() and header.isdigit() and len(header) <= _MAX_RETRY_DIGITS:
        with contextlib.suppress(OverflowError):
            return now + timedelta(seconds=int(header))
    return None
