"""Password reset: a single-use code mailed to the end user, then a new activation password.

:meth:`PasswordReset.request` (``POST /v1/password-resets``) mails a code to
the end user's address on file; :meth:`PasswordReset.confirm`
(``…/confirm``) sets the new activation password. Neither needs an
activation on this machine. See docs/seats.md.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from software_dna.errors import (
    ActivationLocked,
    Message,
    PasswordResetFailed,
    ServerError,
    UnknownLicenseKey,
)
from software_dna.i18n import N_
from software_dna.wire.times import parse_rfc3339

from .refusals import ErrorAnswer
from .server import ServerAPI
from .state import ClientState

__all__ = ["PasswordReset"]


class PasswordReset:
    """Resets the activation password of a license key of this product.

    Args:
        state: the client's state (the product and the clock).
        server: the license server.
    """

    def __init__(self, state: ClientState, server: ServerAPI) -> None:
        self.state = state
        self.server = server

    def request(self, license_key: str) -> datetime:
        """Ask for a reset code by email; see :meth:`LicenseClient.request_password_reset`."""
        if not isinstance(license_key, str) or not license_key.strip():
            raise UnknownLicenseKey(N_("Enter a license key."))
        answer = self._call("/v1/password-resets", self._key_body(license_key))
        try:
            return parse_rfc3339(answer.get("expires_at"))
        except ValueError:
            raise ServerError(N_("The license server's answer is incomplete.")) from None

    def confirm(self, license_key: str, code: str, new_password: str) -> None:
        """Set a new activation password; see :meth:`LicenseClient.reset_password`."""
        if not isinstance(license_key, str) or not license_key.strip():
            raise UnknownLicenseKey(N_("Enter a license key."))
        typed = re.sub(r"[^A-Za-z0-9]", "", code) if isinstance(code, str) else ""
        if not typed:
            raise PasswordResetFailed(N_("Enter the reset code from the email."))
        if not isinstance(new_password, str) or not 1 <= len(new_password) <= 256:
            raise PasswordResetFailed(N_("Choose a new password of 1 to 256 characters."))
        body = self._key_body(license_key)
        body.update({"code": typed[:32], "new_password": new_password})
        self._call("/v1/password-resets/confirm", body)

    def _key_body(self, license_key: str) -> dict[str, Any]:
        """The ``product`` / ``license_key`` part of a password reset request."""
        return {"product": self.state.product, "license_key": license_key.strip()}

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = self.server.request("POST", path, json_body=body, retry=False)
        if answer.status in (200, 202):
            return dict(answer.body)
        error = ErrorAnswer(answer, self.state.now())
        if error.too_many:
            raise ActivationLocked(N_("Too many attempts. Try again later."),
                                   retry_after=error.retry_after)
        refusal = error.exception()
        if refusal is not None:
            raise refusal
        raise ServerError(Message(
            N_("The license server refused the password reset: %(reason)s"),
            reason=error.message))
