"""Bodies of activation and validation (the SDK's), and activations as the vendor sees them."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    AliasPath,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import (
    ActivationLabel,
    ClientText,
    ComponentName,
    ComponentValue,
    Email,
    IdempotencyKey,
    LicenseKey,
    Nonce,
    ObjectId,
    Password,
    ProductId,
    Registration,
    ShortClientText,
    TrustedKeys,
    UtcTime,
)

__all__ = [
    "ActivateIn",
    "ActivateOut",
    "ActivationList",
    "ActivationOut",
    "ClientFacts",
    "ErasureOut",
    "FingerprintIn",
    "NonceIn",
    "PreviousIn",
    "ReceiptOut",
    "ReplacesIn",
    "ValidateIn",
    "ValidateOut",
]


class FingerprintIn(Strict):
    """A machine fingerprint: its algorithm and component hashes (never raw identifiers).

    The shape of ``components`` is checked by the services
    (``identity.parse_components``: 400 ``invalid_fingerprint``), which know
    which algorithm each request accepts.  An ``id`` is ignored: nothing the
    client chose identifies a machine.
    """

    id: object = None
    algorithm: Annotated[StrictInt, Field(ge=1, le=1000)]
    components: Annotated[dict[ComponentName, object], Field(max_length=16)]


class PreviousIn(Strict):
    """The algorithm-1 fingerprint of this machine, sent once to migrate its activation."""

    id: object = None
    algorithm: Annotated[StrictInt, Field(ge=1, le=1)]
    components: Annotated[dict[ComponentName, ComponentValue], Field(min_length=1, max_length=16)]


class ClientFacts(Strict):
    """What the SDK says about itself (never personal data)."""

    sdk_version: ShortClientText | None = None
    os: ClientText | None = None
    python: ShortClientText | None = None
    #: The vendor app's version (``LicenseClient(app_version=...)``).
    app_version: ShortClientText | None = None


class ReplacesIn(Strict):
    """The machine's trial (evaluation, test) activation a new activation replaces."""

    activation_id: ObjectId
    activation_secret: Annotated[str, StringConstraints(strict=True, min_length=1,
                                                        max_length=128)]


class ActivateIn(Strict):
    """``POST /v1/activations``."""

    product: ProductId
    license_key: LicenseKey
    fingerprint: FingerprintIn
    password: Password | None = None
    email: Email | None = None
    registration: Registration | None = None
    #: The computer's name the end user chose (personal data: needs ``consent``).
    label: ActivationLabel | None = None
    consent: StrictBool = False
    nonce: Nonce
    idempotency_key: IdempotencyKey
    client: ClientFacts = Field(default_factory=ClientFacts)
    installation_id: Nonce | None = None  # random per OS account (user seats)
    replaces: ReplacesIn | None = None
    #: The ``k4.pid`` ids of the keys the app trusts (absent: older SDKs, any key).
    trusted_keys: TrustedKeys | None = None


class ActivateOut(Out):
    """Answer of an activation (201, or 200 for a replay)."""

    activation_id: str
    activation_secret: str
    token: str
    nonce: str
    server_time: UtcTime


class ValidateIn(Strict):
    """``POST /v1/activations/{id}/validate``."""

    fingerprint: FingerprintIn
    previous: PreviousIn | None = None
    nonce: Nonce
    #: The ``k4.pid`` ids of the keys the app trusts (absent: older SDKs, any key).
    trusted_keys: TrustedKeys | None = None
    #: Client facts; only ``app_version`` is used (stored when it changed).
    client: ClientFacts | None = None


class ValidateOut(Out):
    """A fresh token; ``rebound`` when the fingerprint drifted within the tolerance.

    ``activation_secret``: the rotated secret (the secret changes at every
    validation; the token's ``secret_digest`` claim is its SHA-256).
    """

    token: str
    nonce: str
    server_time: UtcTime
    rebound: bool
    activation_secret: str | None = None


class NonceIn(Strict):
    """A body with only a nonce (deactivate, erasure)."""

    nonce: Nonce


class ReceiptOut(Out):
    """A signed receipt."""

    receipt: str | None
    nonce: str
    server_time: UtcTime


class ErasureOut(Out):
    """Answer of an erasure request: a fresh limited token and a receipt."""

    token: str
    receipt: str | None
    nonce: str
    server_time: UtcTime


class ActivationOut(Out):
    """An activation as the vendor sees it (no secret, no personal data)."""

    id: str
    license_id: str
    product: Annotated[str, Field(
        validation_alias=AliasChoices(AliasPath("license", "product_id"), "product"))]
    fingerprint_id: str  # opaque server id (fp_...), never component data
    end_user_id: str | None
    erased: bool
    client: Annotated[ClientFacts, Field(validation_alias=AliasChoices("client_facts", "client"))]
    created_at: UtcTime
    last_seen_at: UtcTime
    deactivated_at: UtcTime | None
    deactivated_by: str | None
    offline: bool = False  # activated from an air-gapped request (docs/offline.md)
    # Flagged as used on more than one computer (docs/seats.md): when, and
    # copied_secret / alternating_machines.
    shared_at: UtcTime | None = None
    shared_reason: str | None = None
    #: The mode its tokens carry now (``limited`` once the license or the activation
    #: was erased, until the vendor restores it); ``offline`` says whether they are
    #: air-gapped tokens.
    mode: Annotated[Literal["full", "limited"], Field(
        validation_alias=AliasChoices("token_mode", "mode"))]


class ActivationList(Out):
    """``GET /v1/admin/licenses/{id}/activations``."""

    activations: list[ActivationOut]
