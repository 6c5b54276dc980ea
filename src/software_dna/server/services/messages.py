"""The service layer's requests and answers: plain values, no rows.

The HTTP routes and the CLI build the requests from what they received and
read the answers; the services never hand out a row to an end user's request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "Activated",
    "ActivationRequest",
    "Erased",
    "FingerprintData",
    "Receipted",
    "Validated",
]


@dataclass(frozen=True)
class FingerprintData:
    """A machine fingerprint as sent by the SDK, already validated.

    Attributes:
        algorithm: 2 (:mod:`software_dna.wire.identity`), or 1 (0.1 SDKs;
            only to validate an activation still bound to an algorithm-1 set).
        components: the set in normal form (algorithm 2:
            ``identity.parse_components`` output, ``mac`` a tuple, ``None``
            unavailable; algorithm 1: name -> hash).
        previous: the algorithm-1 set of this machine, sent once with an
            algorithm-2 validation to migrate an existing activation.
    """

    algorithm: int
    components: Mapping[str, Any]
    previous: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ActivationRequest:
    """The body of ``POST /v1/activations``, already validated for shape."""

    product: str
    license_key: str
    fingerprint: FingerprintData
    nonce: str
    idempotency_key: str
    password: str | None = None
    email: str | None = None
    registration: Mapping[str, str] | None = None
    consent: bool = False
    client: Mapping[str, str | None] = field(default_factory=dict)
    #: The computer's name the end user chose or accepted (personal data: only with
    #: ``consent``), stored encrypted on the activation; None: keep the one it has.
    label: str | None = None
    #: An air-gapped activation request: its tokens say protection "offline".
    offline: bool = False
    #: ``(activation id, secret)`` of this machine's trial / evaluation / test
    #: activation that this one replaces (trial to paid).
    replaces: tuple[str, str] | None = None
    #: Random id of this OS account's installation (user seats).
    installation_id: str | None = None
    #: The ``k4.pid`` ids of the keys the app trusts; None: any (older SDKs).
    trusted_keys: frozenset[str] | None = None


@dataclass(frozen=True)
class Activated:
    """Result of :func:`activate`; ``created`` is False for a replay (HTTP 200 vs 201).

    ``product_id``: the activation's product; ``trial_converted``: this
    activation replaced a trial's (a trial bought), for the usage counts.
    """

    activation_id: str
    activation_secret: str
    token: str
    nonce: str
    server_time: datetime
    created: bool
    product_id: str = ""
    trial_converted: bool = False


@dataclass(frozen=True)
class Validated:
    """Result of :func:`validate`.

    ``activation_secret``: the rotated secret the client must use from now on
    (its digest is the token's ``secret_digest``); None only from code paths
    that hand out no secret. ``product_id``: the activation's product (for
    the usage counts).
    """

    token: str
    nonce: str
    server_time: datetime
    rebound: bool
    activation_secret: str | None = None
    product_id: str = ""


@dataclass(frozen=True)
class Receipted:
    """Result of :func:`deactivate`."""

    receipt: str | None
    nonce: str
    server_time: datetime


@dataclass(frozen=True)
class Erased:
    """Result of :func:`request_erasure`: a fresh limited token and a receipt."""

    token: str
    receipt: str | None
    nonce: str
    server_time: datetime
