"""Bodies of air-gapped activation and deactivation (docs/offline.md)."""

from __future__ import annotations

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import ArmoredText, Password, UtcTime

__all__ = ["OfflineActivateIn", "OfflineActivateOut", "OfflineDeactivateIn",
           "OfflineDeactivateOut", "OfflineRespondIn"]


class OfflineActivateIn(Strict):
    """``POST /v1/offline/activations``: an armored activation request, and the license's
    activation password (when it has one) typed on the connected machine: the block
    itself never carries it."""

    request: ArmoredText
    password: Password | None = None


class OfflineRespondIn(Strict):
    """``POST /v1/admin/offline/activations``: the vendor's staff answer a request (no
    password: the admin key authorises them)."""

    request: ArmoredText


class OfflineActivateOut(Out):
    """The armored activation response, and what it activated."""

    response: str
    activation_id: str
    license_id: str
    product: str
    fingerprint_id: str
    server_time: UtcTime


class OfflineDeactivateIn(Strict):
    """``POST /v1/offline/deactivations``: an armored deactivation receipt."""

    receipt: ArmoredText


class OfflineDeactivateOut(Out):
    """The seat is free; ``receipt`` is the server's own signed receipt."""

    activation_id: str
    license_id: str
    product: str
    deactivated_at: UtcTime
    already_deactivated: bool
    receipt: str | None
    nonce: str
    server_time: UtcTime
