"""The SDK's exceptions: one tree, rooted at :class:`LicenseError`.

Every error the SDK raises is a :class:`LicenseError`; third-party exceptions
(``cryptography``, ``requests``, ``OSError`` ...) are translated at the
boundary with ``raise ... from``, so an app needs exactly one ``except``
clause to stay safe::

    LicenseError
    ├── NotActivated            no license on this machine yet: call activate()
    │   ├── ActivationMoved     roll-over moved this seat to another computer
    │   └── ActivationReleased  the license holder freed this seat in the license portal
    ├── InvalidToken            any format or signature failure (opaque on purpose)
    ├── WrongProduct            a valid token, but for another product
    ├── WrongMachine            a valid token, but bound to another machine
    ├── LicenseExpired          the license, or its offline grace period, ran out
    │   └── LeaseExpired        a floating license's lease ended (or none is checked out)
    ├── LicenseRevoked          the vendor revoked (or suspended) the license
    │   └── LicenseSuspended    suspended: the vendor may resume it
    ├── ClockTampered           the system clock was set back
    ├── ActivationError         the server refused to activate
    │   ├── UnknownLicenseKey
    │   ├── WrongPassword
    │   ├── NoSeatsLeft         every seat taken; ``retry_after``: earliest lease end
    │   ├── ConsentRequired     personal data given without the end user's consent
    │   ├── ActivationLocked    too many attempts; ``retry_after`` says when to retry
    │   ├── TrialUnavailable    no trial: the product has none, or this machine had it
    │   ├── RenewalRefused      the renewal code is unknown, used, or not for this license
    │   ├── PasswordResetFailed no email on file, or a wrong / used / expired reset code
    │   └── UntrustedSigningKey the app trusts none of the product's signing keys
    │                           (also a ServerError): ship the new public key
    ├── NetworkError            the server could not be used
    │   └── ServerUnreachable   no answer within the deadline (offline, DNS, TLS, ...)
    ├── ServerError             the server answered, but not with something usable
    ├── StoreError              the local license store cannot be used
    │   ├── StoreCorrupted      unreadable store; it was moved aside
    │   │   └── StoreFromAnotherMachine  made on another computer (also a WrongMachine)
    │   └── StoreRolledBack     the store was replaced by an older copy: go online once
    └── FingerprintUnavailable  nothing stable enough to identify this machine

Each message says what happened and what the end user can do about it, in
English unless ``LicenseClient(language=...)`` names another language: the
client then translates it where it leaves the public API (see
:func:`localize`). A message with values in it (a date, a server's address)
is a :class:`Message`, which keeps the catalogue entry it was made from.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from software_dna.i18n import N_

if TYPE_CHECKING:
    import gettext

__all__ = [
    "ActivationError",
    "ActivationLocked",
    "ActivationMoved",
    "ActivationReleased",
    "ClockTampered",
    "ConsentRequired",
    "FingerprintUnavailable",
    "InvalidToken",
    "LicenseError",
    "LeaseExpired",
    "LicenseExpired",
    "LicenseRevoked",
    "LicenseSuspended",
    "NetworkError",
    "NoSeatsLeft",
    "NotActivated",
    "PasswordResetFailed",
    "ServerError",
    "RenewalRefused",
    "ServerUnreachable",
    "StoreCorrupted",
    "StoreError",
    "StoreFromAnotherMachine",
    "StoreRolledBack",
    "TrialUnavailable",
    "UnknownLicenseKey",
    "UntrustedSigningKey",
    "WrongMachine",
    "WrongPassword",
    "WrongProduct",
]


class Message(str):
    """An end-user message that remembers its catalogue entry: ``msgid % params``.

    It *is* the English text (a ``str``), so code that reads or compares the
    message sees nothing new; :func:`localize` looks ``msgid`` up in another
    language and fills in the same values.

    Args:
        msgid: the English template, marked with ``N_`` for extraction; values
            as ``%(name)s`` placeholders.
        shown: the English text when it is not ``msgid % params`` (a server's
            message, whose own catalogue entry is ``msgid``).
        **params: the values, shown as ``str()``: data (a date, a path, the
            server's own words) stays as it is; a value that is a
            :class:`Message` itself is translated too (see :meth:`joined`).
    """

    msgid: str
    params: Mapping[str, object]

    def __new__(cls, msgid: str, /, shown: str | None = None, **params: object) -> Message:
        if shown is None:
            shown = msgid % params if params else msgid
        text = super().__new__(cls, shown)
        text.msgid = msgid
        text.params = params
        return text

    def __reduce__(self) -> tuple[object, ...]:
        return (Message, (self.msgid, str(self)), {"params": dict(self.params)})

    @classmethod
    def joined(cls, *sentences: Message) -> Message:
        """Whole sentences one after the other (each translated on its own), e.g. what
        failed and what to do about it."""
        msgid = " ".join(f"%(s{n})s" for n in range(len(sentences)))
        return cls(msgid, **{f"s{n}": sentence for n, sentence in enumerate(sentences)})

    def translated(self, catalogue: gettext.NullTranslations) -> str:
        """This message from ``catalogue`` (itself when the catalogue has no entry).

        Values that are :class:`Message` themselves are translated too; other
        values are shown as they are.
        """
        template = catalogue.gettext(self.msgid)
        params = {name: value.translated(catalogue) if isinstance(value, Message) else value
                  for name, value in self.params.items()}
        if template == self.msgid and all(
                params[name] is value for name, value in self.params.items()):
            return str(self)
        try:
            return template % params if params else template
        except (KeyError, ValueError, TypeError):  # a broken translation: keep the English
            return str(self)


def localize(error: BaseException, catalogue: gettext.NullTranslations) -> None:
    """Put ``error``'s message in the language of ``catalogue``, in place (once).

    A :class:`Message` is looked up by its ``msgid``; a plain message by its
    text (the SDK's own ``N_``-marked sentences); anything without a
    translation stays as it was. The English catalogue changes nothing.
    """
    if getattr(error, "_localized", False) or not error.args \
            or not isinstance(error.args[0], str):
        return
    text = error.args[0]
    shown = text.translated(catalogue) if isinstance(text, Message) \
        else catalogue.gettext(text) if text else text
    if shown != text:
        error.args = (shown, *error.args[1:])
    error._localized = True  # type: ignore[attr-defined]


class LicenseError(Exception):
    """Root of every exception the SDK raises."""


class NotActivated(LicenseError):
    """No license is stored on this machine for this product."""

    def __init__(self, message: str = N_("This product is not activated on this machine. "
                                         "Enter your license key to activate it.")) -> None:
        super().__init__(message)


class InvalidToken(LicenseError):
    """A license token (or signed server answer) failed to parse or verify.

    Deliberately opaque: the message never says which check failed, so the
    error cannot be used as an oracle by someone forging tokens.
    """

    def __init__(self, message: str = N_("The license token is invalid.")) -> None:
        super().__init__(message)


class WrongProduct(LicenseError):
    """The token is validly signed but was issued for another product."""


class WrongMachine(LicenseError):
    """The license is bound to another machine (fingerprint mismatch)."""


class LicenseExpired(LicenseError):
    """The license, this token, or the offline grace period has run out."""


class LicenseRevoked(LicenseError):
    """The vendor revoked the license; it cannot be used any more."""


class LicenseSuspended(LicenseRevoked):
    """The vendor suspended the license; it works again once resumed."""


class ClockTampered(LicenseError):
    """The system clock is earlier than a time this SDK has already seen."""


class ActivationError(LicenseError):
    """The license server refused the activation."""


class UnknownLicenseKey(ActivationError):
    """No license has this key (or it belongs to another product)."""


class WrongPassword(ActivationError):
    """The activation password is missing or wrong."""


class NoSeatsLeft(ActivationError):
    """Every seat of the license is in use on other machines.

    For a floating license ``retry_after`` says when the earliest lease ends
    (a seat frees up then unless its holder renews it).
    """

    def __init__(self, message: str = N_("Every seat of this license is in use."), *,
                 retry_after: datetime | None = None) -> None:
        super().__init__(message)
        #: When the earliest floating lease ends (timezone-aware UTC); None for
        #: machine and user seats.
        self.retry_after = retry_after


class ActivationMoved(NotActivated):
    """Roll-over moved this license to another computer (the least recently seen seat).

    The local license is gone; activating again moves it back (and moves
    another computer's seat).
    """


class ActivationReleased(NotActivated):
    """The license holder freed this computer's seat in the license portal.

    The local license is gone (like :class:`ActivationMoved`); activating
    again with the license key takes a seat anew, if one is free.
    """


class LeaseExpired(LicenseExpired):
    """A floating license needs a lease: it ended, was returned, or none was checked out.

    Call :meth:`LicenseClient.checkout` (online) to take a seat again.
    """


class PasswordResetFailed(ActivationError):
    """The activation password could not be reset by email.

    No email address is on file (the vendor must reset it), the server does
    not send mail, or the reset code is wrong, already used or expired.
    """


class ConsentRequired(ActivationError):
    """Personal data (email, registration) was given without the end user's consent."""


class ActivationLocked(ActivationError):
    """Too many attempts; activation is locked until ``retry_after`` (UTC)."""

    def __init__(self, message: str, *, retry_after: datetime | None = None) -> None:
        super().__init__(message)
        #: When the lock lifts (timezone-aware UTC), if the server said.
        self.retry_after = retry_after


class TrialUnavailable(ActivationError):
    """No trial for this machine: the product offers none, or this computer had its trial."""


class RenewalRefused(ActivationError):
    """The server refused a renewal code (unknown, already used, or not for this license)."""


class NetworkError(LicenseError):
    """The license server could not be used."""


class ServerUnreachable(NetworkError):
    """No usable answer from the server within the deadline."""


class ServerError(LicenseError):
    """The server answered with an error or with something the SDK cannot use."""


class UntrustedSigningKey(ActivationError, ServerError):
    """The server holds no signing key this app trusts, so it issues nothing to it.

    The app was built with another product's public key, or trusts only keys
    the vendor has retired: the vendor must ship an update of the app with
    the product's current public key (the message names its ``k4.pid``).
    An activation or trial is refused before any seat or trial is used. On a
    validation it is also a :class:`ServerError`: the stored license keeps
    working until its offline grace period ends.
    """


class StoreError(LicenseError):
    """The local license store cannot be read or written."""


class StoreCorrupted(StoreError):
    """The local store is unreadable (damaged, foreign or from another machine).

    The bad file has been moved aside (``moved_to``), never deleted.
    """

    def __init__(self, message: str, *, moved_to: str | None = None) -> None:
        super().__init__(message)
        #: Where the unreadable file was moved, if it could be moved.
        self.moved_to = moved_to


class StoreFromAnotherMachine(StoreCorrupted, WrongMachine):
    """The local license data was made on another computer, or this one changed too much at once.

    Raised in two cases, both with a message that says which:

    - the store's header names another machine key than this computer's
      for the product: the file was copied here (or this computer's machine
      key was lost). It has been moved aside (``moved_to``), never deleted.
    - this computer's machine key cannot be opened because more of its
      components changed at once than the identity rules tolerate (or its
      keyring was copied from another computer): ``moved_to`` is None,
      nothing was touched, so putting a removed part back restores it.

    Activating the license again on this computer is the way back. Also a
    :class:`WrongMachine`: the license data is bound to another machine.
    """


class StoreRolledBack(StoreError):
    """The store was replaced by an older copy of itself (or its witness deleted).

    The license works again once the license server confirmed it: connect
    to the internet and check again (see ``docs/security.md``, rollback).
    """


class FingerprintUnavailable(LicenseError):
    """No stable identifier of this machine could be collected."""
