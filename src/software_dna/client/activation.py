"""Online activation and its end: activate, deactivate, and the end user's erasure request.

- :func:`check_activation_input`: what the end user typed, checked before
  anything is sent (also for the air-gapped request);
- :meth:`Activation.activate`: ``POST /v1/activations`` with a persisted
  idempotency key (a lost answer is retried without taking a second seat);
  an activation on a machine whose stored license is a trial, evaluation or
  test code names it in ``replaces``, so that the server releases it and
  carries its settings over once the new one succeeded;
- :func:`activation_error`: an activation refusal as the
  :class:`~software_dna.errors.ActivationError` the end user can act on
  (also for a trial);
- :meth:`Activation.deactivate` and :meth:`Activation.request_erasure`.
"""

from __future__ import annotations

import contextlib
import re
import threading
import unicodedata
from collections.abc import Mapping
from typing import Any

from software_dna.errors import (
    ActivationError,
    ActivationLocked,
    ConsentRequired,
    InvalidToken,
    LicenseError,
    Message,
    NetworkError,
    ServerError,
    UnknownLicenseKey,
    WrongPassword,
)
from software_dna.i18n import N_
from software_dna.license import License
from software_dna.wire.claims import DEACTIVATED, Kind
from software_dna.wire.codes import Code
from software_dna.wire.keytext import normalize as normalize_key
from software_dna.wire.times import format_rfc3339

from .document import credentials
from .lease import LeaseKeeper
from .refusals import ErrorAnswer
from .server import ServerAPI, client_facts, new_nonce
from .settings import SettingsSync
from .state import ClientState
from .transport import Response
from .validation import Validation
from .verifier import rotated_secret

__all__ = ["Activation", "activation_error", "check_activation_input", "check_label",
           "save_answer"]

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")
#: Codes that mean the seat is already free: deactivating is done.
_ALREADY_GONE = (Code.ACTIVATION_REMOVED, Code.ACTIVATION_MOVED, Code.ACTIVATION_RELEASED,
                 Code.UNAUTHORIZED)


def check_activation_input(
    license_key: object, email: object, registration: object, consent: bool
) -> str:
    """Check what the end user typed before anything is sent; returns the normalised key.

    Raises:
        UnknownLicenseKey: no key, or not the shape of a license key.
        ConsentRequired: personal data without consent.
        ActivationError: an email address or registration details that cannot be right.
    """
    if not isinstance(license_key, str) or not license_key.strip():
        raise UnknownLicenseKey(N_("Enter a license key."))
    try:
        key = normalize_key(license_key)  # case, spaces, typographic dashes: as typed
    except ValueError:
        raise UnknownLicenseKey(
            N_("This is not a valid license key: it has letters, digits and dashes, as on your "
               "purchase confirmation. Check it and type it again.")
        ) from None
    if (email is not None or registration is not None) and not consent:
        raise ConsentRequired(
            N_("Personal data (email, registration details) is sent only with the end "
               "user's consent: pass consent=True once they agreed.")
        )
    if email is not None and (
        not isinstance(email, str) or len(email) > 254 or not _EMAIL.fullmatch(email)
    ):
        raise ActivationError(N_("The email address looks wrong: check it and try again."))
    if registration is not None and not (
        isinstance(registration, Mapping) and len(registration) <= 16 and all(
            isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
            for k, v in registration.items())
    ):
        raise ActivationError(
            N_("The registration details must be at most 16 short text fields "
               "(names up to 64 characters, values up to 256).")
        )
    return key


#: The longest computer label, in characters.
MAX_LABEL = 64
#: Characters no label holds: controls, line and paragraph separators, bidi overrides
#: (they would make a label display as something else in the license portal).
_UNREADABLE = frozenset(("Cc", "Cs", "Zl", "Zp"))
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_label(label: object, consent: bool) -> str | None:
    """Check the computer's label the app passed (personal data) before anything is sent.

    Args:
        label: None, or the name the end user chose or accepted for this computer.
        consent: the end user agreed to send personal data.

    Returns:
        The label as given (None: none).

    Raises:
        ConsentRequired: a label without consent.
        ActivationError: not 1 to 64 characters, blank, or with control,
            separator or bidi-override characters.
    """
    if label is None:
        return None
    if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL or any(
            unicodedata.category(c) in _UNREADABLE or c in _BIDI_CONTROLS for c in label):
        raise ActivationError(Message(
            N_("The computer's name must be 1 to %(most)s characters, without control "
               "characters."), most=MAX_LABEL))
    if not consent:
        raise ConsentRequired(N_(
            "The computer's name is personal data: it is sent only with the end user's "
            "consent. Pass consent=True once they agreed."))
    return label


def activation_error(error: ErrorAnswer, *, password: str | None = "") -> LicenseError:
    """The exception an activation (or trial, or renewal) refusal means.

    Args:
        error: the server's error answer.
        password: what was sent (None: no password, so ``wrong_password``
            means one is needed).

    Returns:
        An ActivationError subclass for each refusal (ActivationLocked with
        ``retry_after`` for too many attempts); LicenseRevoked,
        LicenseSuspended, LicenseExpired, NotActivated for the license;
        ServerError for anything else.
    """
    if error.code is Code.WRONG_PASSWORD and password is None:
        return WrongPassword(N_("This license needs an activation password: enter it and "
                                "try again."))
    if error.too_many and error.code is not Code.ACTIVATION_LOCKED:
        when = error.retry_after
        return ActivationLocked(
            Message(N_("Too many activation attempts. Try again after %(time)s."),
                    time=format_rfc3339(when)) if when
            else N_("Too many activation attempts. Try again later."),
            retry_after=when,
        )
    return error.exception() or ServerError(Message(
        N_("The license server refused the activation: %(reason)s"), reason=error.message))


def save_answer(state: ClientState, answer: Response, sent_nonce: str, *,
                kind: Kind | None = None) -> License:
    """Verify a successful activation (or trial) answer and make it the stored license.

    ``kind``: the license kind the request asked for (a trial), checked
    before anything is stored.

    Raises:
        ServerError: the answer lacks the activation id or secret, or is not of ``kind``.
        InvalidToken, WrongProduct, WrongMachine: the token is not for this
            request, product or machine.
        StoreError: it could not be stored.
    """
    activation_id = answer.body.get("activation_id")
    secret = answer.body.get("activation_secret")
    if not isinstance(activation_id, str) or not isinstance(secret, str):
        raise ServerError(N_("The license server's answer is incomplete."))
    lic = state.verifier.accept(answer.body.get("token"), sent_nonce)
    if lic.activation_id != activation_id or rotated_secret(lic, secret) != secret:
        raise InvalidToken()
    if kind is not None and lic.kind is not kind:
        raise ServerError(Message(
            N_("The license server's answer is not a %(kind)s of this product."),
            kind=kind.value))
    state.save_activation(answer.body["token"], lic, activation_id, secret)
    return lic


class Activation:
    """Activates this machine online, and ends the activation.

    Args:
        state: the client's local state.
        server: the license server.
        validation: the license check (grace and days left of a new license).
        settings: the settings document (carried over from a trial).
        lease: the floating lease an activation may take.
        lock: the client's lock, held for a whole call.
    """

    def __init__(self, state: ClientState, server: ServerAPI, *, validation: Validation,
                 settings: SettingsSync, lease: LeaseKeeper, lock: threading.RLock) -> None:
        self.state = state
        self.server = server
        self.validation = validation
        self.settings = settings
        self.lease = lease
        self._lock = lock

    def activate(self, license_key: str, *, password: str | None, email: str | None,
                 registration: Mapping[str, str] | None, consent: bool,
                 label: str | None = None) -> License:
        """See :meth:`LicenseClient.activate` (arguments and errors)."""
        state = self.state
        license_key = check_activation_input(license_key, email, registration, consent)
        if not self.server.configured:
            raise NetworkError(N_("No license server is configured: use install_token() "
                                  "or the offline activation flow."))
        state.start_over()  # a machine key this machine cannot open is set aside
        idempotency_key = state.idempotency_key(license_key, new_nonce)
        sent_nonce = new_nonce()
        body: dict[str, Any] = {
            "product": state.product,
            "license_key": license_key,
            "fingerprint": state.verifier.fingerprint().to_wire(),
            "consent": bool(consent),
            "nonce": sent_nonce,
            "idempotency_key": idempotency_key,
            "client": client_facts(state.app_version),
            "trusted_keys": state.verifier.trusted_key_ids,  # the server signs with one
        }
        if password is not None:
            body["password"] = password
        if email is not None:
            body["email"] = email
        if registration is not None:
            body["registration"] = dict(registration)
        if label is not None:  # checked by check_label: only with consent
            body["label"] = label
        replaces = self._replaces()  # trial to paid: released once this succeeds
        if replaces is not None:
            body["replaces"] = replaces
        installation = state.installation_id()
        body["installation_id"] = installation  # tells user seats apart
        with self._lock:
            answer = self.server.request("POST", "/v1/activations", json_body=body, retry=True)
            if answer.status not in (200, 201):
                raise activation_error(ErrorAnswer(answer, state.now()), password=password)
            lic = save_answer(state, answer, sent_nonce)
            if lic.is_floating:  # activating took a floating lease: keep it renewed
                self.lease.want(lic.lease_expires_at)
            if replaces is not None:  # cache the settings carried over from the trial
                with contextlib.suppress(LicenseError):
                    self.settings.read()
            return self.validation.apply_grace(state.now(), lic)

    def _replaces(self) -> dict[str, str] | None:
        """The stored trial / evaluation / test activation a new activation replaces, or None.

        Settings changed offline and not sent yet are sent first (best effort), so
        that the server can carry them over to the new license.
        """
        try:
            data = self.state.read()
        except LicenseError:
            return None
        lic = self.state.stored_license(data)
        activation_id, secret = data.get("activation_id"), data.get("activation_secret")
        if lic is None or lic.kind is Kind.FULL or not isinstance(activation_id, str) \
                or not isinstance(secret, str) or lic.activation_id != activation_id:
            return None
        if data.get("settings_dirty"):
            with contextlib.suppress(LicenseError):
                self.settings.push(data.get("settings") or {})
        return {"activation_id": activation_id, "activation_secret": secret}

    def deactivate(self) -> None:
        """See :meth:`LicenseClient.deactivate`."""
        state = self.state
        activation_id, secret = credentials(
            state.read(), N_("This machine has no activation to deactivate."))
        nonce = new_nonce()
        answer = self.server.request(
            "POST", f"/v1/activations/{activation_id}/deactivate",
            json_body={"nonce": nonce}, bearer=secret, retry=True,
        )
        if answer.status == 200:
            if not state.verifier.receipt_ok(answer.body.get("receipt"), nonce, activation_id,
                                             result=DEACTIVATED):
                raise InvalidToken(N_("The server's deactivation receipt is not valid."))
        else:
            error = ErrorAnswer(answer, state.now())
            if error.code not in _ALREADY_GONE:
                raise ServerError(Message(
                    N_("The license server refused to deactivate: %(reason)s"),
                    reason=error.message))
        self.lease.drop()
        state.clear()

    def _erasure_refused(self, error: ErrorAnswer, nonce: str,
                         activation_id: str) -> LicenseError:
        """The exception for a refused erasure request: too many requests (wait), the
        server's signed refusal of the license (the data was erased all the same: the
        local copy goes too), or a :class:`ServerError`."""
        state = self.state
        if error.too_many:
            when = error.retry_after
            return ActivationLocked(
                Message(N_("Too many erasure requests. Try again after %(time)s."),
                        time=format_rfc3339(when)) if when
                else N_("Too many erasure requests. Try again later."),
                retry_after=when)
        if error.meaning is not None and error.meaning.signed and state.verifier.receipt_ok(
                error.receipt, nonce, activation_id, result=error.text):
            state.forget_personal_data()
            state.store_refusal(error.text, error.message, receipt=error.receipt)
            refusal = error.exception()
            if refusal is not None:
                return refusal
        return ServerError(Message(
            N_("The license server refused the erasure request: %(reason)s"),
            reason=error.message))

    def request_erasure(self) -> License:
        """See :meth:`LicenseClient.request_erasure`."""
        state = self.state
        activation_id, secret = credentials(state.read())
        nonce = new_nonce()
        answer = self.server.request(
            "POST", f"/v1/activations/{activation_id}/erasure",
            json_body={"nonce": nonce}, bearer=secret, retry=True,
        )
        if answer.status != 200:
            raise self._erasure_refused(ErrorAnswer(answer, state.now()), nonce, activation_id)
        lic = state.verifier.accept(answer.body.get("token"), nonce)
        state.store_token(answer.body["token"], lic)
        return lic
