"""The client side of air-gapped activation (the text blocks are :mod:`software_dna.wire.airgap`).

1. :meth:`AirGap.create_request` writes an activation request and remembers
   its nonce (30 days, at most 16 pending);
2. :meth:`AirGap.activate` verifies the response with no network at all:
   signature, product, this machine, the echoed nonce of a request this
   machine made and has not used yet, and freshness;
3. :meth:`AirGap.deactivate` removes the license, records the deactivation
   in the rollback witness (no token of that activation, nor any token of
   the license issued before it, is accepted here again) and returns a
   signed deactivation receipt. See docs/offline.md.

The request never holds the activation password: it is typed where the
request is answered (``POST /v1/offline/activations`` takes it beside the
block; the vendor's staff need none).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime

from software_dna.errors import (
    ActivationError,
    ClockTampered,
    InvalidToken,
    LicenseExpired,
    Message,
    NotActivated,
    WrongProduct,
)
from software_dna.i18n import N_
from software_dna.license import License
from software_dna.wire.airgap import (
    REQUEST_LIFETIME,
    ArmorError,
    build_deactivation_receipt,
    build_request,
    parse_response,
)
from software_dna.wire.times import CLOCK_SKEW, format_rfc3339, parse_rfc3339

from .expiry import expired_air_gapped
from .server import client_facts, new_nonce
from .state import ClientState
from .verifier import rotated_secret

__all__ = ["AirGap"]


class AirGap:
    """Activates and deactivates this machine with text blocks carried by hand.

    Args:
        state: the client's local state.
    """

    def __init__(self, state: ClientState) -> None:
        self.state = state

    def create_request(self, license_key: str, *, email: str | None,
                       registration: Mapping[str, str] | None, consent: bool,
                       label: str | None = None) -> str:
        """See :meth:`LicenseClient.create_activation_request` (``license_key`` checked)."""
        state = self.state
        state.start_over()  # a machine key this machine cannot open is set aside
        now = state.now()
        nonce = new_nonce()
        try:
            text = build_request(
                product=state.product, license_key=license_key.strip(),
                fingerprint=state.verifier.fingerprint().to_wire(), nonce=nonce,
                created_at=now, consent=consent, email=email,
                registration=registration, client=client_facts(state.app_version),
                trusted_keys=state.verifier.trusted_key_ids,
                installation_id=state.installation_id(), label=label,
            )
        except ValueError:
            raise ActivationError(N_("The activation request would be too large: shorten the "
                                     "registration details.")) from None
        state.remember_offline_request(nonce, now)
        return text

    def activate(self, response_text: str) -> License:
        """See :meth:`LicenseClient.activate_offline`."""
        state = self.state
        try:
            doc = parse_response(response_text)
        except ArmorError as exc:
            raise InvalidToken(str(exc)) from None
        if doc.product != state.product:
            raise WrongProduct(Message(
                N_("This activation response is for the product %(theirs)s, not %(ours)s."),
                theirs=repr(doc.product), ours=repr(state.product)))
        lic = state.verifier.verify(doc.token)  # kid, signature, product
        if lic.activation_id != doc.activation_id or not hmac.compare_digest(
                lic.nonce, doc.nonce) or rotated_secret(lic, doc.activation_secret) is None:
            raise InvalidToken(
                N_("This activation response is not valid (its parts do not match)."))
        state.verifier.check_machine(lic)
        now = state.now()
        data = state.read()
        entries = data.get("offline_requests")
        entry = next((e for e in (entries if isinstance(entries, list) else [])
                      if isinstance(e, dict) and e.get("nonce") == lic.nonce), None)
        if entry is None:
            raise InvalidToken(
                N_("This activation response answers a request this computer did not make, or "
                   "one already used or more than 30 days old. Create a new activation request "
                   "on this computer and get a response for it."))
        try:
            created: datetime | None = parse_rfc3339(entry.get("created_at"))
        except ValueError:
            created = None
        if created is None or now - created > REQUEST_LIFETIME \
                or now - lic.issued_at > REQUEST_LIFETIME:
            raise InvalidToken(
                N_("This activation response is too old: its request was made more than 30 days "
                   "ago. Create a new activation request and get a response for it."))
        if now + CLOCK_SKEW < lic.not_before:
            raise ClockTampered(Message(
                N_("This computer's clock is behind the time the activation response was "
                   "made (%(time)s). Set the clock to the correct time and try again."),
                time=format_rfc3339(lic.not_before)))
        if lic.license_expires_at is not None and now >= lic.license_expires_at:
            raise LicenseExpired(Message(N_("This license expired on %(time)s."),
                                         time=format_rfc3339(lic.license_expires_at)))
        if lic.expires_at is not None and now >= lic.expires_at:
            raise LicenseExpired(expired_air_gapped(lic.expires_at))
        # As for any token installed out of band: the clock not set back, nothing older
        # than what this machine has seen, no refusal seen online undone.
        state.check_not_rolled_back(now, lic)
        high = data.get("clock_high_water")
        try:
            high_water = max(now, parse_rfc3339(high)) if isinstance(high, str) else now
        except ValueError:
            high_water = now
        state.save_activation(doc.token, lic, doc.activation_id, doc.activation_secret,
                              offline=True, high_water=high_water)
        return lic

    def deactivate(self) -> str:
        """See :meth:`LicenseClient.deactivate_offline`."""
        state = self.state
        data = state.read()
        earlier = data.get("offline_deactivation")
        activation_id, secret = data.get("activation_id"), data.get("activation_secret")
        stored = state.stored_license(data)
        if not isinstance(activation_id, str) or not isinstance(secret, str) or stored is None:
            if isinstance(earlier, dict) and isinstance(earlier.get("receipt"), str):
                return str(earlier["receipt"])  # asked again: the same receipt
            raise NotActivated(N_("This computer has no activation to deactivate."))
        now = state.now()
        text = build_deactivation_receipt(product=state.product, activation_id=activation_id,
                                          activation_secret=secret, nonce=new_nonce(), now=now)
        state.save_offline_deactivation(stored, text, now)
        state.verifier.forget()
        return text
