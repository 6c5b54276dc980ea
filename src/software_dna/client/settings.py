"""The end user's settings document: kept on the server, cached in the store for offline reads.

Reading tries the server within a short deadline and falls back to the
cached copy. Writing stores the document locally at once and sends it; a
document the server could not be sent is marked and sent at the next
successful read or write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from software_dna.errors import Message, NetworkError, ServerError
from software_dna.i18n import N_

from .document import credentials
from .refusals import ErrorAnswer
from .server import ServerAPI
from .state import ClientState
from .validation import CHECK_DEADLINE

__all__ = ["SettingsSync"]


class SettingsSync:
    """Keeps the settings document in step between the store and the server.

    Args:
        state: the client's local state.
        server: the license server.
    """

    def __init__(self, state: ClientState, server: ServerAPI) -> None:
        self.state = state
        self.server = server

    def read(self) -> dict[str, Any]:
        """See :attr:`LicenseClient.settings` (reading)."""
        data = self.state.read()
        if data.get("settings_dirty"):
            try:
                return self.push(data.get("settings") or {})
            except NetworkError:
                return dict(data.get("settings") or {})
        try:
            answer = self._request("GET", None)
        except NetworkError:
            return dict(data.get("settings") or {})
        document = answer.get("settings")
        if not isinstance(document, dict):
            raise ServerError(N_("The server's settings document is not an object."))
        self.state.save_settings(document, dirty=None)
        return dict(document)

    def write(self, document: Mapping[str, Any]) -> None:
        """See :attr:`LicenseClient.settings` (assigning).

        Raises:
            TypeError: ``document`` is not a mapping.
        """
        if not isinstance(document, Mapping):
            raise TypeError("settings must be a mapping (a JSON object)")
        copy = dict(document)
        self.state.save_settings(copy, dirty=True)
        with contextlib.suppress(NetworkError):  # else sent at the next contact
            self.push(copy)

    def push(self, document: Mapping[str, Any]) -> dict[str, Any]:
        """Send ``document`` to the server and cache what it stored.

        Raises:
            NotActivated, NetworkError, ServerError.
        """
        answer = self._request("PUT", {"settings": dict(document)})
        stored = answer.get("settings")
        result = dict(stored) if isinstance(stored, dict) else dict(document)
        self.state.save_settings(result, dirty=False)
        return result

    def _request(self, method: str, body: Mapping[str, Any] | None) -> Mapping[str, Any]:
        activation_id, secret = credentials(self.state.read())
        answer = self.server.request(
            method, f"/v1/activations/{activation_id}/settings", json_body=body,
            bearer=secret, retry=True, deadline=min(CHECK_DEADLINE, self.server.timeout),
        )
        if answer.status != 200:
            message = ErrorAnswer(answer, self.state.now()).message
            raise ServerError(Message(
                N_("The license server refused the settings: %(reason)s"), reason=message))
        return answer.body
