"""Trials and renewal codes (see docs/trials.md and docs/licenses.md).

- :meth:`Terms.start_trial`: ``POST /v1/trials``; the answer is stored like an activation.
- :meth:`Terms.renew`: ``POST /v1/activations/{id}/renewal`` with a renewal
  code; the fresh token (new ``license_expires_at``) replaces the stored one.

A cancelled subscription's warning period is :mod:`software_dna.client.expiry`'s.
"""

from __future__ import annotations

import threading

from software_dna.errors import (
    LicenseError,
    Message,
    NetworkError,
    RenewalRefused,
    ServerError,
    TrialUnavailable,
)
from software_dna.i18n import N_
from software_dna.license import License
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

from .activation import activation_error, save_answer
from .document import credentials
from .refusals import ErrorAnswer
from .server import ServerAPI, client_facts, new_nonce
from .state import ClientState
from .validation import Validation

__all__ = ["Terms"]


class Terms:
    """Starts a trial and enters renewal codes.

    Args:
        state: the client's local state.
        server: the license server.
        validation: the license check.
        lock: the client's lock, held for a whole call.
    """

    def __init__(self, state: ClientState, server: ServerAPI, validation: Validation,
                 lock: threading.RLock) -> None:
        self.state = state
        self.server = server
        self.validation = validation
        self._lock = lock

    def start_trial(self) -> License:
        """See :meth:`LicenseClient.start_trial`."""
        if not self.server.configured:
            raise NetworkError(N_("No license server is configured: a trial is started online."))
        state = self.state
        with self._lock:
            state.start_over()  # a machine key this machine cannot open is set aside
            data = state.read_or_empty()
            if isinstance(data.get("token"), str):
                try:
                    current: License | None = self.validation.check(force_online=False)
                except LicenseError:
                    current = None  # ended, refused, unreadable: ask the server
                if current is not None and current.kind is Kind.TRIAL:
                    return current
                if current is not None:
                    raise TrialUnavailable(N_("This computer already has a license for this "
                                              "product."))
            nonce = new_nonce()
            answer = self.server.request("POST", "/v1/trials", json_body={
                "product": state.product, "fingerprint": state.verifier.fingerprint().to_wire(),
                "nonce": nonce, "client": client_facts(state.app_version),
                "trusted_keys": state.verifier.trusted_key_ids,
            }, retry=True)
            if answer.status not in (200, 201):
                raise activation_error(ErrorAnswer(answer, state.now()))
            lic = save_answer(state, answer, nonce, kind=Kind.TRIAL)
            return self.validation.apply_grace(state.now(), lic)

    def renew(self, code: str) -> License:
        """See :meth:`LicenseClient.renew`."""
        if not isinstance(code, str) or not code.strip():
            raise RenewalRefused(N_("Enter a renewal code."))
        if not self.server.configured:
            raise NetworkError(N_("No license server is configured: a renewal code is entered "
                                  "online."))
        state = self.state
        with self._lock:
            activation_id, secret = credentials(
                state.read(), "Activate this product before entering a renewal code.")
            nonce = new_nonce()
            answer = self.server.request(
                "POST", f"/v1/activations/{activation_id}/renewal",
                json_body={"code": code.strip(), "nonce": nonce}, bearer=secret, retry=True,
            )
            if answer.status == 200:
                lic = state.verifier.accept(answer.body.get("token"), nonce)
                state.store_token(answer.body["token"], lic)
                self.validation.refreshed()
                return self.validation.apply_grace(state.now(), lic)
            error = ErrorAnswer(answer, state.now())
            meaning = error.meaning
            if meaning is not None and meaning.signed:
                if state.verifier.receipt_ok(error.receipt, nonce, activation_id,
                                                result=error.text):
                    if meaning.stored:
                        state.store_refusal(error.text, error.message, receipt=error.receipt)
                    raise meaning.exception(error.message)
                raise ServerError(Message(
                    N_("The license server refused the renewal: %(reason)s"),
                    reason=error.message))
            if error.too_many or error.code is Code.UNAUTHORIZED or (
                    meaning is not None and meaning.error is RenewalRefused):
                raise activation_error(error)
            raise ServerError(Message(
                N_("The license server refused the renewal: %(reason)s"),
                reason=error.message))
