"""The document the client keeps in its encrypted store, typed.

The store (:mod:`software_dna.store`) holds one JSON object. These
``TypedDict`` classes name every key the client writes; only
:class:`~software_dna.client.state.ClientState` changes the document. A store
written by an older or newer SDK may hold anything, so readers still check
each value's type (:func:`credentials` does for the activation).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

from software_dna.errors import NotActivated

__all__ = [
    "OfflineDeactivation",
    "OfflineRequest",
    "PendingActivation",
    "Status",
    "StoredDocument",
    "credentials",
]


class Status(TypedDict, total=False):
    """A refusal seen online (or a cancelled subscription's warning period)."""

    code: str  # a wire Code value
    message: str
    seen_at: str  # RFC 3339, this machine's clock
    server_time: str  # RFC 3339, the receipt's signed time
    until: str  # RFC 3339, end of a cancelled subscription's warning period
    license_id: str  # whose refusal it is, for the rollback witness
    activation_id: str


class PendingActivation(TypedDict):
    """An activation sent but not answered yet: retried with the same idempotency key."""

    key_hash: str  # sha256 hex of product and license key
    idempotency_key: str


class OfflineRequest(TypedDict):
    """An air-gapped activation request this machine made and has not used yet."""

    nonce: str
    created_at: str  # RFC 3339


class OfflineDeactivation(TypedDict):
    """The receipt of an air-gapped deactivation, returned again when asked again."""

    activation_id: str
    receipt: str  # the armored deactivation receipt
    created_at: str  # RFC 3339
    # Absent in stores written before they were recorded:
    license_id: str
    token_iat: str  # RFC 3339: the iat of the token given up


class StoredDocument(TypedDict, total=False):
    """Everything the client keeps about its license on this machine."""

    # The license and the activation it belongs to.
    token: str  # the v4.public license token
    activation_id: str
    activation_secret: str
    activated_at: str  # RFC 3339
    activated_offline: bool
    installation_id: str  # tells user seats of one computer apart
    pending_activation: PendingActivation
    # What the server said, and the clock.
    status: Status
    clock_high_water: str  # RFC 3339: the clock may not be set back before it
    # The end user's data.
    settings: dict[str, Any]
    settings_dirty: bool  # changed here, not yet sent
    email: str
    registration: dict[str, str]
    # Air-gapped activation.
    offline_requests: list[OfflineRequest]
    offline_deactivation: OfflineDeactivation
    # Rollback protection (software_dna.client.rollback).
    store_id: str
    generation: int
    witnessed: bool
    unconfirmed: bool  # written while the witness could not vouch: the server must confirm


def credentials(doc: Mapping[str, Any], message: str | None = None) -> tuple[str, str]:
    """The stored ``(activation_id, activation_secret)``.

    Raises:
        NotActivated: there are none (``message``, or the default message).
    """
    activation_id = doc.get("activation_id")
    secret = doc.get("activation_secret")
    if not isinstance(activation_id, str) or not isinstance(secret, str):
        raise NotActivated(message) if message else NotActivated()
    return activation_id, secret
