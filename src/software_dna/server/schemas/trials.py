"""Bodies of trials (docs/trials.md)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AliasChoices, Field

from software_dna.server.schemas.activations import ClientFacts, FingerprintIn
from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import Nonce, ProductId, TrustedKeys, UtcTime

__all__ = ["TrialIn", "TrialList", "TrialOut"]


class TrialIn(Strict):
    """``POST /v1/trials``: start (or get back) this machine's trial."""

    product: ProductId
    fingerprint: FingerprintIn
    nonce: Nonce
    client: ClientFacts = Field(default_factory=ClientFacts)
    #: The ``k4.pid`` ids of the keys the app trusts (absent: older SDKs, any key).
    trusted_keys: TrustedKeys | None = None


class TrialOut(Out):
    """A machine that used a product's trial (no component hashes in the answer)."""

    id: str
    product: Annotated[str, Field(validation_alias=AliasChoices("product_id", "product"))]
    license_id: str | None
    fingerprint_id: str
    created_at: UtcTime



class TrialList(Out):
    """``GET /v1/admin/products/{product}/trials``."""

    trials: list[TrialOut]
