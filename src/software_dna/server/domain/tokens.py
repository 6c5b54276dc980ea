"""What a license token says: its times and the facts behind its claims.

- ``opportunistic``: ``refresh_by`` = now + the product's ``refresh_interval``
  and ``exp`` = ``refresh_by`` + ``offline_grace_period``: the app refreshes
  when it can and works offline through the grace period;
- ``mandatory``: the server must be reached within ``refresh_interval``:
  ``exp`` = now + ``refresh_interval``, and the ``offline_grace_period`` is the
  warning period before it, so ``refresh_by`` = ``exp`` - that period (the app
  warns from then on, with ``License.offline_grace_ends_at`` set);
- ``offline``: no ``refresh_by``; ``exp`` is the license's expiry, or none;
  a token of an *air-gapped* activation also ends ``air_gapped_token_days``
  after it was issued (a new activation response renews it), unless the
  product explicitly allows perpetual air-gapped tokens
  (``air_gapped_perpetual``);
- every time is capped at the license's own expiry;
- mode ``limited`` with the product's ``limited_features`` once the license or
  the activation was erased, else ``full`` with the license's features.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from software_dna.wire.claims import Kind, Mode, Protection

__all__ = ["PROTECTIONS", "TokenFacts", "exact_machine", "token_mode", "token_times"]

#: The products' protection levels, from the SDK's :class:`Protection`.
PROTECTIONS = tuple(level.value for level in Protection)


def token_times(
    *,
    protection: str,
    refresh_interval: int,
    offline_grace_period: int,
    license_expires_at: datetime | None,
    now: datetime,
    offline_lifetime: timedelta | None = None,
) -> tuple[datetime | None, datetime | None]:
    """``(refresh_by, exp)`` of a token issued at ``now`` (see the module docstring).

    ``offline_lifetime``: how long an ``offline`` token lives (air-gapped
    activations); None: until the license's expiry (or for ever).
    """
    if protection == Protection.OFFLINE.value:
        if offline_lifetime is None:
            return None, license_expires_at
        end = now + offline_lifetime
        return None, end if license_expires_at is None else min(end, license_expires_at)
    if protection == Protection.MANDATORY.value:
        expires = now + timedelta(seconds=refresh_interval)
        refresh_by = expires - timedelta(seconds=min(offline_grace_period, refresh_interval))
    else:
        refresh_by = now + timedelta(seconds=refresh_interval)
        expires = refresh_by + timedelta(seconds=offline_grace_period)
    if license_expires_at is not None:
        expires = min(expires, license_expires_at)
        refresh_by = min(refresh_by, license_expires_at)
    return refresh_by, expires


def token_mode(*, license_erased: bool, activation_erased: bool) -> str:
    """The ``mode`` claim of an activation's tokens: ``limited`` once the license or the
    activation was erased (until the vendor restores it), else ``full`` (a :class:`Mode` value).

    The one rule: :meth:`TokenFacts.derive` signs it, and the vendor's views (panel,
    admin API, CLI) show it.
    """
    limited = bool(license_erased or activation_erased)
    return Mode.LIMITED.value if limited else Mode.FULL.value


def exact_machine(kind: str, protection: str) -> bool:
    """True where nothing would catch a copy running on a second machine.

    A trial (any machine can start one) and a token never refreshed
    (protection ``offline``, air-gapped activations) get tolerance 0 in the
    token, and the server re-binds such an activation only when its machine
    id (or SMBIOS UUID) is equal: a MAC list padded with another machine's
    addresses anchors nothing there.

    Args:
        kind: the license kind (``Kind`` value); protection: the token's
            protection (``Protection`` value, ``offline`` when air-gapped).
    """
    return kind == Kind.TRIAL.value or protection == Protection.OFFLINE.value


@dataclass(frozen=True)
class TokenFacts:
    """What a license token says about an activation, its license and its product.

    Built from ORM objects by :func:`issue_for` and from one Core row by the
    validation fast path (``services.hotpath``), so that both sign the same claims.
    """

    license_id: str
    activation_id: str
    product_id: str
    fingerprint_id: str
    fingerprint: Mapping[str, Any]
    tolerance: int
    #: The license or the activation was erased: mode ``limited``.
    limited: bool
    #: The license's features (the product's ``limited_features`` when limited).
    features: list[str]
    #: The product's protection, or ``offline`` for an air-gapped activation.
    protection: str
    refresh_interval: int
    offline_grace_period: int
    license_expires_at: datetime | None
    kind: str
    subscription: bool
    seat_mode: str
    #: The bound set's fingerprint algorithm (claim ``fingerprint_algorithm``).
    fingerprint_algorithm: int = 2
    #: How long a token of an air-gapped activation lives (None: not air-gapped,
    #: or the product allows perpetual air-gapped tokens).
    offline_lifetime: timedelta | None = None

    @classmethod
    def derive(cls, *, license_id: str, activation_id: str, product_id: str,
               fingerprint_id: str, fingerprint: Mapping[str, Any], tolerance: int,
               license_erased: bool, activation_erased: bool, features: list[str],
               limited_features: list[str], product_protection: str,
               activation_offline: bool, refresh_interval: int, offline_grace_period: int,
               license_expires_at: datetime | None, kind: str, subscription: bool,
               seat_mode: str, air_gapped_token_days: int | None,
               fingerprint_algorithm: int = 2) -> TokenFacts:
        """The facts from the stored columns: the rules for limited mode and protection.

        Limited mode when the license or the activation was erased (then the
        product's ``limited_features``); protection ``offline`` for an
        air-gapped activation, which never reaches the server again.

        The token's ``tolerance`` (how far the SDK's own check lets this
        machine drift from the bound set) is the product's only where the
        server will see the machine again: a copy of the token that also
        matches another machine (a hand-made set sharing a MAC with it) is
        then caught by the secret rotation. Where nothing would catch it --
        a trial, which any machine can start afresh, and a token that is
        never refreshed (protection ``offline``, air-gapped) -- it is 0: the
        machine must be exactly the bound one, and honest drift is re-bound
        by the server at the next validation the SDK then makes. A machine that
        cannot read every component is refused these before anything is taken
        (``services.bindings.require_exact_machine``).

        ``air_gapped_token_days``: the product's lifetime of an air-gapped
        token in days, None when it explicitly allows perpetual ones; it
        applies only to an air-gapped activation (``activation_offline``).
        """
        limited = token_mode(license_erased=license_erased,
                             activation_erased=activation_erased) == Mode.LIMITED.value
        protection = Protection.OFFLINE.value if activation_offline else product_protection
        if exact_machine(kind, protection):
            tolerance = 0
        return cls(
            license_id=license_id, activation_id=activation_id, product_id=product_id,
            fingerprint_id=fingerprint_id, fingerprint=fingerprint, tolerance=tolerance,
            limited=limited, features=limited_features if limited else features,
            protection=protection, refresh_interval=refresh_interval,
            offline_grace_period=offline_grace_period,
            license_expires_at=license_expires_at, kind=kind, subscription=bool(subscription),
            seat_mode=seat_mode, fingerprint_algorithm=fingerprint_algorithm,
            offline_lifetime=(timedelta(days=air_gapped_token_days)
                              if activation_offline and air_gapped_token_days else None),
        )

    def times(self, now: datetime) -> tuple[datetime | None, datetime | None]:
        """``(refresh_by, exp)`` of a token issued at ``now`` (leases not applied)."""
        return token_times(protection=self.protection, refresh_interval=self.refresh_interval,
                           offline_grace_period=self.offline_grace_period,
                           license_expires_at=self.license_expires_at, now=now,
                           offline_lifetime=self.offline_lifetime)

