"""What locks a license out, as the vendor sees it, and lifting it (``software-dna lockouts``).

An activation (and a renewal, a password reset) can be refused by several
limits; the vendor must see every one that applies, with the same numbers
the server refuses by:

=======================  ==================================  ===================================
kind                     counted                             limit, window
=======================  ==================================  ===================================
``reactivations``        new activations of the license      ``seats + reactivation_limit`` per
                         (the lock-out ledger)               the product's ``reactivation_period``
``activation_attempts``  activation attempts and password    ``rate_limit_attempts`` per
                         confirmations (``lic:<id>``): the   ``rate_limit_window``
                         password-guessing limit
``renewal_attempts``     renewal code attempts               ``rate_limit_attempts`` per window
``reset_mails``          password reset mails                3 per window
``reset_code_attempts``  password reset codes tried          ``rate_limit_attempts`` per window
``confirmation_mails``   email confirmation mails            3 per window
``address_attempts``     requests from the client's network  ``rate_limit_address_attempts``
                         (``addr:<keyed hash>``; of          per window
                         activations, only guesses)
``address_reset_code_    reset codes tried from the network  ``rate_limit_address_attempts``
attempts``                                                   per window
``address_confirmations``  confirmation links opened from    ``rate_limit_address_attempts``
                         the network                         per window
``address_erasures``     erasure requests from the network   ``erasure_address_attempts`` per
                                                             ``erasure_window``
``address_activations``  new activations of the product      ``address_activation_limit`` per
                         from the client's network           ``reactivation_period``
``activation_erasures``  erasure requests of one activation  ``erasure_attempts`` per
                         of the license (``erase-act:<id>``) ``erasure_window``
=======================  ==================================  ===================================

A counter of the license that this table does not name (a limit added later)
is shown with its count and no limit, and a reset clears it all the same: a
reset forgets every counter whose key ends in ``:<license id>``, and every
per-activation counter (``<prefix>:<activation id>`` of
``_ACTIVATION_COUNTERS``) of the license's activations, live or not.

Invariant: a limit shown locked until T refuses the SDK until T and no
longer, because :func:`lockout_report` asks the very functions that refuse
(:func:`.ratelimit.counter_state`, the ledger of :mod:`.seats`); after
:func:`reset_lockouts`, every limit shown is unlocked.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import literal, select
from sqlalchemy.orm import Session

from software_dna.server.config import Settings
from software_dna.server.crypto import rate_limit_network
from software_dna.server.models import Activation, License, RateLimitCounter
from software_dna.server.services import seats
from software_dna.server.services.common import Context, audit, utcnow
from software_dna.server.services.email_confirmation import (
    MAILS_PER_WINDOW as CONFIRMATION_MAILS_PER_WINDOW,
)
from software_dna.server.services.errors import invalid
from software_dna.server.services.lookups import get_license
from software_dna.server.services.password_reset import MAILS_PER_WINDOW
from software_dna.server.services.ratelimit import counter_state, reset_keys

__all__ = ["LimitState", "LockoutReport", "ResetReport", "lockout_report", "reset_lockouts"]

@dataclass(frozen=True)
class _Counter:
    """A rate-limit counter kind: its key prefix, what it counts, its limit and window."""

    kind: str
    description: str
    limit: Callable[[Settings], int]
    window: Callable[[Settings], int]


def _attempts(settings: Settings) -> int:
    return settings.rate_limit_attempts


def _address_attempts(settings: Settings) -> int:
    return settings.rate_limit_address_attempts


def _window(settings: Settings) -> int:
    return settings.rate_limit_window


def _reset_mails(settings: Settings) -> int:
    return MAILS_PER_WINDOW


def _confirmation_mails(settings: Settings) -> int:
    return CONFIRMATION_MAILS_PER_WINDOW


#: Counters of a license, keyed ``<prefix>:<license id>``.
_LICENSE_COUNTERS = {
    "lic": _Counter("activation_attempts",
                    "activation attempts and password confirmations (password guessing)",
                    _attempts, _window),
    "renew": _Counter("renewal_attempts", "renewal code attempts", _attempts, _window),
    "reset": _Counter("reset_mails", "password reset mails", _reset_mails, _window),
    "reset-guess": _Counter("reset_code_attempts", "password reset codes tried", _attempts,
                            _window),
    "confirm-mail": _Counter("confirmation_mails", "email confirmation mails",
                            _confirmation_mails, _window),
}

#: Counters of a client network, keyed ``<prefix>:<keyed hash of the network>``.
_NETWORK_COUNTERS = {
    "addr": _Counter("address_attempts",
                     "requests (activation guesses, trials, renewals, resets)",
                     _address_attempts, _window),
    "reset-guess-net": _Counter("address_reset_code_attempts", "password reset codes tried",
                                _address_attempts, _window),
    "confirm-net": _Counter("address_confirmations", "email confirmation links opened",
                            _address_attempts, _window),
    "erase-addr": _Counter("address_erasures", "erasure requests",
                           lambda settings: settings.erasure_address_attempts,
                           lambda settings: settings.erasure_window),
    "panel": _Counter("address_panel_sign_ins", "failed control panel sign-ins",
                      lambda settings: settings.panel_sign_in_attempts,
                      lambda settings: settings.panel_sign_in_window),
}

#: Counters of one activation of a license, keyed ``<prefix>:<activation id>``.
_ACTIVATION_COUNTERS = {
    "erase-act": _Counter("activation_erasures", "erasure requests",
                          lambda settings: settings.erasure_attempts,
                          lambda settings: settings.erasure_window),
}


@dataclass(frozen=True)
class LimitState:
    """One limit that applies: what it counts, how many, the limit, and until when it locks.

    ``limit`` None: no limit is set (the product has none, or the counter is
    not one this server version knows); ``window`` in seconds;
    ``locked_until`` aware UTC, None when the next attempt would pass.
    """

    kind: str
    description: str
    count: int
    limit: int | None
    window: int
    locked_until: datetime | None


@dataclass(frozen=True)
class LockoutReport:
    """Every limit that applies to a license (and to a client network, when one is named).

    ``locked_until``: when the last of them lifts (None: nothing is locked);
    ``network``: the network the address named counts as (e.g.
    ``2001:db8::/64``), None when no address was named.
    """

    license_id: str
    network: str | None
    limits: list[LimitState]
    reactivations: seats.LockoutStatus

    @property
    def locked_until(self) -> datetime | None:
        """When every limit lets an attempt through again; None when none is locked."""
        ends = [limit.locked_until for limit in self.limits if limit.locked_until is not None]
        return max(ends) if ends else None

    @property
    def activations_in_period(self) -> int:
        """New activations of the license in the re-activation period."""
        return self.reactivations.activations_in_period

    @property
    def allowed(self) -> int | None:
        """New activations the license may take per period (None: no lock-out)."""
        return self.reactivations.allowed

    @property
    def period(self) -> int:
        """The re-activation period, in seconds."""
        return self.reactivations.period


@dataclass(frozen=True)
class ResetReport:
    """What a reset forgot: ``forgotten`` maps each kind to the attempts or recorded
    activations forgotten (kinds with nothing are absent); ``unlocked`` names the
    kinds that were locked until the reset."""

    license_id: str | None
    network: str | None
    forgotten: dict[str, int]
    unlocked: list[str]

    @property
    def activations_forgotten(self) -> int:
        """Recorded new activations forgotten (both ledgers)."""
        return sum(n for kind, n in self.forgotten.items()
                   if kind in ("reactivations", "address_activations"))

    @property
    def removed(self) -> int:
        """:attr:`activations_forgotten` (the answer's historical name)."""
        return self.activations_forgotten

    @property
    def attempts_forgotten(self) -> int:
        """Counted attempts forgotten (every counter)."""
        return sum(n for kind, n in self.forgotten.items()
                   if kind not in ("reactivations", "address_activations"))


def _license_counter_keys(session: Session, license_id: str) -> list[str]:
    return list(session.scalars(
        select(RateLimitCounter.key).distinct()
        .where(RateLimitCounter.key.endswith(":" + license_id, autoescape=True))
    ))


def _activation_counter_keys(session: Session, license_id: str) -> dict[str, _Counter]:
    """The per-activation counters that exist for the license's activations (every
    activation it ever had: a counter outlives a deactivation)."""
    found: dict[str, _Counter] = {}
    for prefix, counter in _ACTIVATION_COUNTERS.items():
        keys = select(literal(prefix + ":") + Activation.id).where(
            Activation.license_id == license_id)
        for key in session.scalars(select(RateLimitCounter.key).distinct()
                                   .where(RateLimitCounter.key.in_(keys.scalar_subquery()))):
            found[key] = counter
    return found


def _counter_kind(key: str) -> str:
    prefix = key.split(":", 1)[0]
    counter = _LICENSE_COUNTERS.get(prefix)
    return counter.kind if counter is not None else prefix


def _counter_limit(session: Session, settings: Settings, key: str, counter: _Counter | None, *,
                   now: datetime, kind: str, description: str) -> LimitState:
    """One counter as :func:`.ratelimit.hit` sees it (``counter`` None: a kind this version
    does not know, shown with its count and no limit)."""
    limit = counter.limit(settings) if counter is not None else None
    window = counter.window(settings) if counter is not None else settings.rate_limit_window
    state = counter_state(session, key, limit=limit or 1, window=window, now=now.timestamp())
    return LimitState(kind, description, state.count, limit, window,
                      state.locked_until if limit is not None else None)


def _network_keys(ctx: Context, address: str) -> dict[str, _Counter]:
    """Every counter key of ``address``'s network."""
    hashed = ctx.vault.address_key(address)
    return {prefix + ":" + hashed: counter for prefix, counter in _NETWORK_COUNTERS.items()}


def lockout_report(session: Session, ctx: Context, license_id: str, *,
                   address: str | None = None, now: datetime | None = None) -> LockoutReport:
    """Every limit that applies to ``license_id`` (and to ``address``'s network).

    Reads only.  Each limit's ``locked_until`` is the ``retry_at`` the SDK
    is told when that limit refuses it now.

    Args:
        license_id: the license.
        address: a client address (any address of the network: the network
            is what is counted), or None.
        now: aware UTC (tests); default the services' clock.

    Raises:
        ServiceError: 400 ``invalid_request`` (``address`` is no IP address), 404
        ``not_found`` (no such license).
    """
    now = now or utcnow()
    _check_address(address)
    lic = get_license(session, license_id)
    settings = ctx.settings
    status = seats.lockout_status(session, lic, now)
    limits = [LimitState(
        "reactivations", "new activations of the license (the re-activation lock-out)",
        status.activations_in_period, status.allowed, status.period, status.locked_until)]
    known = {prefix + ":" + lic.id: counter for prefix, counter in _LICENSE_COUNTERS.items()}
    for key in sorted({*known, *_license_counter_keys(session, lic.id)}):
        counter = known.get(key)
        prefix = key.split(":", 1)[0]
        limits.append(_counter_limit(
            session, settings, key, counter, now=now, kind=counter.kind if counter else prefix,
            description=counter.description if counter else f"attempts counted as {prefix!r}"))
    for key, counter in sorted(_activation_counter_keys(session, lic.id).items()):
        activation_id = key.split(":", 1)[1]
        limits.append(_counter_limit(
            session, settings, key, counter, now=now, kind=counter.kind,
            description=f"{counter.description} of activation {activation_id}"))
    network = None
    if address is not None:
        network = rate_limit_network(address, settings.rate_limit_ipv6_prefix)
        limits += _network_limits(session, ctx, address, now)
        by_address = seats.address_lockout_status(session, lic.product, ctx.vault.address_key(
            address), now)
        limits.append(LimitState(
            "address_activations",
            f"new activations of the product from the client network {network}",
            by_address.activations_in_period, by_address.allowed, by_address.period,
            by_address.locked_until))
    return LockoutReport(license_id=lic.id, network=network, limits=limits,
                         reactivations=status)


def reset_lockouts(session: Session, ctx: Context, *, license_id: str | None = None,
                   address: str | None = None, actor: str = "admin") -> ResetReport:
    """Lift every limit of a license and/or a client network; commits.

    License: its recorded new activations, every counter of the license
    (``<kind>:<license id>``: password guessing, renewals, reset mails, and
    any other) and every per-activation counter of its activations (erasure
    requests).  Address: the network's recorded new activations (every
    product) and its request counter.

    Raises:
        ServiceError: 400 ``invalid_request`` (neither given, or ``address`` is
        no IP address), 404 ``not_found`` (no such license).
    """
    if license_id is None and not address:
        raise invalid("Name a license or a client address to unlock.")
    _check_address(address)
    now = utcnow()
    # The license row first, as an activation takes it before the license's counters:
    # the two never wait on each other in opposite orders.
    lic: License | None = (get_license(session, license_id, lock=True)
                           if license_id is not None else None)
    before = (lockout_report(session, ctx, lic.id, address=address, now=now).limits
              if lic is not None else [])
    forgotten: dict[str, int] = {}

    def add(kind: str, count: int) -> None:
        if count:
            forgotten[kind] = forgotten.get(kind, 0) + count

    network = None
    if lic is not None:
        add("reactivations", seats.forget_activations(session, license_id=lic.id))
        for key, attempts in reset_keys(session, _license_counter_keys(session, lic.id)).items():
            add(_counter_kind(key), attempts)
        per_activation = _activation_counter_keys(session, lic.id)
        for key, attempts in reset_keys(session, sorted(per_activation)).items():
            add(per_activation[key].kind, attempts)
    if address:
        network = rate_limit_network(address, ctx.settings.rate_limit_ipv6_prefix)
        if lic is None:  # no license: what the network alone was locked by
            before += _network_limits(session, ctx, address, now)
        add("address_activations", seats.forget_activations(
            session, address_hash=ctx.vault.address_key(address)))
        keys = _network_keys(ctx, address)
        for key, attempts in reset_keys(session, list(keys)).items():
            add(keys[key].kind, attempts)
    unlocked = sorted({limit.kind for limit in before if limit.locked_until is not None})
    audit(session, actor, "lockout.reset", product_id=lic.product_id if lic else None,
          license_id=license_id,
          detail={"address": bool(address), "forgotten": forgotten, "unlocked": unlocked})
    session.commit()
    return ResetReport(license_id=license_id, network=network, forgotten=forgotten,
                       unlocked=unlocked)


def _network_limits(session: Session, ctx: Context, address: str,
                    now: datetime) -> list[LimitState]:
    """Every request counter of ``address``'s network."""
    network = rate_limit_network(address, ctx.settings.rate_limit_ipv6_prefix)
    return [_counter_limit(session, ctx.settings, key, counter, now=now, kind=counter.kind,
                           description=f"{counter.description} from the client network {network}")
            for key, counter in _network_keys(ctx, address).items()]


def _check_address(address: str | None) -> None:
    """Refuse what is no IPv4 or IPv6 address (400): a typo must not report "nothing was
    locked" for a network nobody is in."""
    if address is None:
        return
    try:
        ipaddress.ip_address(address.strip())
    except ValueError:
        raise invalid(f"{address[:64]!r} is not an IPv4 or IPv6 address.") from None
