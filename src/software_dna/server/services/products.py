"""Products and their licensing policy."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import inspect, null, select
from sqlalchemy.orm import Session
from typing_extensions import Unpack

from software_dna.server.domain.tokens import PROTECTIONS
from software_dna.server.models import License, Product
from software_dna.server.services.common import audit, utcnow
from software_dna.server.services.errors import conflict, invalid
from software_dna.server.services.lookups import get_product
from software_dna.server.services.seats import SeatPolicy, apply_seat_policy
from software_dna.wire.claims import Protection
from software_dna.wire.identity import tolerance_problem

__all__ = [
    "BRANDING_KEYS",
    "PROTECTIONS",
    "ProductChanges",
    "clean_branding",
    "clean_reminder_days",
    "create_product",
    "list_products",
    "update_product",
]

PRODUCT_ID_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
FEATURE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
MAX_FEATURES = 64

#: Defaults of a new product (seconds).
DEFAULT_REFRESH_INTERVAL = 24 * 3600
DEFAULT_OFFLINE_GRACE = 7 * 24 * 3600
DEFAULT_TOLERANCE = 1
#: Trials and test codes.
MAX_TRIAL_DAYS = 365
DEFAULT_TEST_CODE_LIMIT = 5
MAX_TEST_CODE_LIMIT = 100
#: Air-gapped tokens: default and allowed lifetime in days (docs/offline.md).
DEFAULT_AIR_GAPPED_TOKEN_DAYS = 365
AIR_GAPPED_TOKEN_DAYS_RANGE = (1, 3650)
#: The license portal: computers a license holder may free per license per period
#: (None: no limit; 0: only the vendor frees them), and the period in days.
DEFAULT_PORTAL_RELEASE_LIMIT = 3
DEFAULT_PORTAL_RELEASE_DAYS = 30


def clean_features(features: Iterable[str], what: str = "features") -> list[str]:
    """Sorted, de-duplicated feature names; raises ``invalid_request`` on a bad name."""
    out = sorted(set(features))
    if len(out) > MAX_FEATURES:
        raise invalid(f"At most {MAX_FEATURES} {what}.")
    for name in out:
        if not isinstance(name, str) or not FEATURE_RE.match(name):
            raise invalid(f"Bad name in {what}: 1-64 characters A-Z a-z 0-9 . _ : -")
    return out


def _check_policy(
    protection: str, refresh_interval: int, offline_grace_period: int, tolerance: int
) -> None:
    if protection not in PROTECTIONS:
        raise invalid(f"protection must be one of {', '.join(PROTECTIONS)}.")
    if not 60 <= refresh_interval <= 10 * 365 * 86400:
        raise invalid("refresh_interval must be 60 seconds to 10 years (in seconds).")
    if not 0 <= offline_grace_period <= 10 * 365 * 86400:
        raise invalid("offline_grace_period must be 0 to 10 years (in seconds).")
    problem = tolerance_problem(tolerance)
    if problem is not None:
        raise invalid(problem)


def _check_trial_policy(trial_days: int | None, test_code_limit: int | None) -> None:
    if trial_days is not None and not 0 <= trial_days <= MAX_TRIAL_DAYS:
        raise invalid(f"trial_days must be 0 (no trial) to {MAX_TRIAL_DAYS}.")
    if test_code_limit is not None and not 0 <= test_code_limit <= MAX_TEST_CODE_LIMIT:
        raise invalid(f"test_code_limit must be 0 to {MAX_TEST_CODE_LIMIT}.")


def create_product(
    session: Session,
    *,
    product_id: str,
    name: str | None = None,
    protection: str = "opportunistic",
    refresh_interval: int = DEFAULT_REFRESH_INTERVAL,
    offline_grace_period: int = DEFAULT_OFFLINE_GRACE,
    fingerprint_tolerance: int = DEFAULT_TOLERANCE,
    features: Iterable[str] = (),
    limited_features: Iterable[str] = (),
    password_required: bool = False,
    actor: str = "admin",
    trial_days: int | None = None,
    test_code_limit: int = DEFAULT_TEST_CODE_LIMIT,
    lease_duration: int = 900,
    reactivation_limit: int | None = None,
    reactivation_period: int = 30 * 86400,
    address_activation_limit: int | None = None,
    rebind_limit: int | None = 3,
    rebind_period: int = 30 * 86400,
    sharing_policy: str = "flag",
    air_gapped: bool = False,
    air_gapped_token_days: int = DEFAULT_AIR_GAPPED_TOKEN_DAYS,
    air_gapped_perpetual: bool = False,
    payment_grace_days: int = 14,
    reminder_days: Iterable[int] = (7, 3, 1),
    branding: Mapping[str, Any] | None = None,
    portal_release_limit: int | None = DEFAULT_PORTAL_RELEASE_LIMIT,
    portal_release_days: int = DEFAULT_PORTAL_RELEASE_DAYS,
) -> Product:
    """Create a product and commit.

    Args:
        product_id: ``[a-z0-9][a-z0-9._-]{0,63}``, the id the app is built with.
        name: display name (default: the id).
        protection: ``offline`` / ``opportunistic`` / ``mandatory``.
        refresh_interval: seconds between online refreshes (token ``refresh_by``).
        offline_grace_period: seconds a token stays valid after ``refresh_by``.
        fingerprint_tolerance: how many fingerprint components may change.
        features: features of a license issued without an explicit list.
        limited_features: features granted in limited mode (after erasure).
        password_required: every license of this product needs an activation password.
        trial_days: the app may start a trial of this many days (1-365) once per
            machine; None or 0: no trial.
        test_code_limit: how many test codes may be live at once (0-100).
        lease_duration: seconds a floating lease lasts without a heartbeat (5-86400).
        reactivation_limit: re-activations a license may have per
            ``reactivation_period`` on top of its seats (None: no lock-out).
        reactivation_period: the lock-out window in seconds (1 hour to 1 year).
        address_activation_limit: new activations one client address may make
            per period (None: no lock-out by address).
        rebind_limit: re-binds to a changed machine an activation may have per
            ``rebind_period`` (0-1000; None: unbounded).
        rebind_period: the re-bind window in seconds (1 hour to 366 days).
        sharing_policy: ``flag`` or ``suspend`` (docs/seats.md, sharing detection).
        air_gapped: licenses may be activated from air-gapped requests (an
            explicit opt-in; licenses may override it). Off by default.
        air_gapped_token_days: days an air-gapped token lives (1-3650); a new
            activation response renews it.
        air_gapped_perpetual: air-gapped tokens never end (only the license's
            expiry ends them); must be set explicitly.
        payment_grace_days: days a store-reported failed payment is tolerated
            before the license is suspended (0-365).
        reminder_days: days before a license's end that reminders are mailed
            (1-365 each, distinct, at most 10; empty: none).
        branding: the vendor's look in mails and the license portal (:data:`BRANDING_KEYS`).
        portal_release_limit: computers a license holder may free in the license
            portal per license per ``portal_release_days`` (0-1000; 0: only the
            vendor frees them; None: no limit).
        portal_release_days: the window of that limit, in days (1-366).

    Raises:
        ServiceError: 400 ``invalid_request`` (bad value), 409 ``conflict`` (id taken).
    """
    if not PRODUCT_ID_RE.match(product_id):
        raise invalid("A product id is 1-64 characters a-z 0-9 . _ - (starting a-z 0-9).")
    _check_policy(protection, refresh_interval, offline_grace_period, fingerprint_tolerance)
    _check_trial_policy(trial_days, test_code_limit)
    if name is not None:
        _check_name(name)
    if session.get(Product, product_id) is not None:
        raise conflict(f"The product {product_id!r} already exists.")
    now = utcnow()
    product = Product(
        id=product_id,
        name=(name or product_id)[:200],
        protection=protection,
        refresh_interval=refresh_interval,
        offline_grace_period=offline_grace_period,
        fingerprint_tolerance=fingerprint_tolerance,
        features=clean_features(features),
        limited_features=clean_features(limited_features, "limited_features"),
        password_required=password_required,
        trial_days=trial_days or None,
        test_code_limit=test_code_limit,
        created_at=now,
        updated_at=now,
    )
    apply_seat_policy(product, {"lease_duration": lease_duration,
                                "reactivation_limit": reactivation_limit,
                                "reactivation_period": reactivation_period,
                                "address_activation_limit": address_activation_limit})
    _apply_identity_policy(product, {"rebind_limit": rebind_limit,
                                     "rebind_period": rebind_period,
                                     "sharing_policy": sharing_policy})
    _apply_air_gap_policy(product, {"air_gapped": air_gapped,
                                    "air_gapped_token_days": air_gapped_token_days,
                                    "air_gapped_perpetual": air_gapped_perpetual})
    _apply_commerce_settings(product, {"payment_grace_days": payment_grace_days,
                                       "reminder_days": list(reminder_days),
                                       "branding": dict(branding or {})})
    _apply_portal_settings(product, {"portal_release_limit": portal_release_limit,
                                     "portal_release_days": portal_release_days})
    if product.portal_release_limit is None:
        # The column's default (3) would replace a plain None on INSERT: "no limit" is NULL.
        product.portal_release_limit = null()
    session.add(product)
    audit(session, actor, "product.create", at=now, product_id=product_id)
    session.commit()
    return product


def list_products(session: Session) -> list[Product]:
    """Every product, by id."""
    return list(session.scalars(select(Product).order_by(Product.id)))


class ProductChanges(SeatPolicy, total=False):
    """What :func:`update_product` changes: a key that is absent stays as it is.

    None also leaves a setting as it is, except the lock-out limits of
    :class:`~software_dna.server.services.seats.SeatPolicy` (None: off);
    ``trial_days`` 0 turns trials off.
    """

    name: str | None
    protection: str | None
    refresh_interval: int | None
    offline_grace_period: int | None
    fingerprint_tolerance: int | None
    features: Iterable[str] | None
    limited_features: Iterable[str] | None
    password_required: bool | None
    trial_days: int | None
    test_code_limit: int | None
    rebind_limit: int | None
    rebind_period: int | None
    sharing_policy: str | None
    air_gapped: bool | None
    air_gapped_token_days: int | None
    air_gapped_perpetual: bool | None
    payment_grace_days: int | None
    reminder_days: Iterable[int] | None
    branding: Mapping[str, Any] | None
    portal_release_limit: int | None
    portal_release_days: int | None


#: Mails (docs/commerce.md, "E-mails"): the grace after a failed payment, the
#: reminder days, and the branding keys with what each must look like.
PAYMENT_GRACE_DAYS_RANGE = (0, 365)
REMINDER_DAY_RANGE = (1, 365)
MAX_REMINDER_DAYS = 10
BRANDING_KEYS = ("vendor_name", "support_email", "logo_url", "colour", "privacy_url")
_HTTPS_URL_RE = re.compile(r"^https://[^\s/?#<>\"']+(/[^\s<>\"']*)?$")
_EMAIL_RE = re.compile(r"^[^@\s<>\"',;]{1,64}@[^@\s<>\"',;]+\.[^@\s<>\"',;]+$")
_COLOUR_RE = re.compile(r"^#[0-9a-fA-F]{6}$")


def _check_name(name: str) -> None:
    """A product name is one printable line: it is the default From display name of the
    product's mails and is shown in lists.

    Raises:
        ServiceError: 400 ``invalid_request`` (control characters, line breaks, empty).
    """
    if not name.strip() or not name.isprintable():
        raise invalid("A product name is 1-200 printable characters on one line "
                      "(no control characters or line breaks).")


def clean_branding(branding: Mapping[str, Any]) -> dict[str, str]:
    """Validated branding: ``vendor_name`` (1-200 printable characters), ``support_email``
    (an address), ``logo_url`` and ``privacy_url`` (https:// URLs, at most 500
    characters), ``colour`` (``#rrggbb``).  None or "" drops a key.

    Raises:
        ServiceError: 400 ``invalid_request`` (unknown key, bad value).
    """
    out: dict[str, str] = {}
    for key, given in branding.items():
        if key not in BRANDING_KEYS:
            raise invalid(f"Unknown branding key {str(key)[:40]!r}: use "
                          f"{', '.join(BRANDING_KEYS)}.")
        if given is None or given == "":
            continue
        if not isinstance(given, str):
            raise invalid(f"branding.{key} must be a string.")
        value = given.strip()
        if key == "vendor_name":
            ok = 1 <= len(value) <= 200 and value.isprintable()
        elif key == "support_email":
            ok = len(value) <= 254 and bool(_EMAIL_RE.match(value))
        elif key == "colour":
            ok = bool(_COLOUR_RE.match(value))
        else:
            ok = len(value) <= 500 and bool(_HTTPS_URL_RE.match(value))
        if not ok:
            what = {"vendor_name": "1-200 printable characters",
                    "support_email": "an email address", "colour": "#rrggbb",
                    }.get(key, "an https:// URL")
            raise invalid(f"branding.{key} must be {what}.")
        out[key] = value
    return out


def clean_reminder_days(days: Iterable[int]) -> list[int]:
    """Reminder days, largest first: 1-365 each, distinct, at most 10.

    Raises:
        ServiceError: 400 ``invalid_request``.
    """
    out = list(days)
    low, high = REMINDER_DAY_RANGE
    if len(out) > MAX_REMINDER_DAYS or len(set(out)) != len(out) or any(
            isinstance(d, bool) or not isinstance(d, int) or not low <= d <= high for d in out):
        raise invalid(f"reminder_days: at most {MAX_REMINDER_DAYS} distinct whole numbers of "
                      f"days, {low} to {high}.")
    return sorted(out, reverse=True)


def _apply_commerce_settings(product: Product, changes: ProductChanges) -> list[str]:
    """Validate and set ``payment_grace_days`` / ``reminder_days`` / ``branding`` (replaced
    whole). None (or absent) leaves a setting as it is.

    Raises:
        ServiceError: 400 ``invalid_request``.
    """
    changed: list[str] = []
    grace = changes.get("payment_grace_days")
    if grace is not None:
        low, high = PAYMENT_GRACE_DAYS_RANGE
        if isinstance(grace, bool) or not isinstance(grace, int) or not low <= grace <= high:
            raise invalid(f"payment_grace_days must be {low} to {high}.")
        product.payment_grace_days = grace
        changed.append("payment_grace_days")
    days = changes.get("reminder_days")
    if days is not None:
        product.reminder_days = clean_reminder_days(days)
        changed.append("reminder_days")
    branding = changes.get("branding")
    if branding is not None:
        product.branding = clean_branding(branding)
        changed.append("branding")
    return changed


def _apply_air_gap_policy(product: Product, changes: ProductChanges) -> list[str]:
    """Validate and set ``air_gapped`` / ``air_gapped_token_days`` / ``air_gapped_perpetual``.

    None (or absent) leaves a setting as it is.

    Raises:
        ServiceError: 400 ``invalid_request``.
    """
    changed: list[str] = []
    days = changes.get("air_gapped_token_days")
    if days is not None:
        low, high = AIR_GAPPED_TOKEN_DAYS_RANGE
        if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= high:
            raise invalid(f"air_gapped_token_days must be {low} to {high} days.")
        product.air_gapped_token_days = days
        changed.append("air_gapped_token_days")
    for name in ("air_gapped", "air_gapped_perpetual"):
        value = changes.get(name)
        if value is not None:
            if not isinstance(value, bool):
                raise invalid(f"{name} must be true or false.")
            setattr(product, name, value)
            changed.append(name)
    return changed


#: The license portal: the ranges of the release limit and its period in days.
PORTAL_RELEASE_LIMIT_RANGE = (0, 1000)
PORTAL_RELEASE_DAYS_RANGE = (1, 366)


def _apply_portal_settings(product: Product, changes: ProductChanges) -> list[str]:
    """Validate and set ``portal_release_limit`` and ``portal_release_days`` (stored as
    ``portal_release_period``, in seconds).

    A ``portal_release_limit`` of None means no limit (absent: unchanged); a
    ``portal_release_days`` of None leaves the period as it is.

    Raises:
        ServiceError: 400 ``invalid_request``.
    """
    changed: list[str] = []
    if "portal_release_limit" in changes:
        limit = changes["portal_release_limit"]
        low, high = PORTAL_RELEASE_LIMIT_RANGE
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or not low <= limit <= high):
            raise invalid(f"portal_release_limit must be {low} to {high}, or null (no limit).")
        product.portal_release_limit = limit
        changed.append("portal_release_limit")
    days = changes.get("portal_release_days")
    if days is not None:
        low, high = PORTAL_RELEASE_DAYS_RANGE
        if isinstance(days, bool) or not isinstance(days, int) or not low <= days <= high:
            raise invalid(f"portal_release_days must be {low} to {high} days.")
        product.portal_release_period = days * 86400
        changed.append("portal_release_period")
    return changed


#: Machine identity settings (docs/seats.md): re-binds allowed per period
#: (None: unbounded), the period in seconds, what a shared activation gets.
REBIND_LIMIT_RANGE = (0, 1000)
REBIND_PERIOD_RANGE = (3600, 366 * 86400)
SHARING_POLICIES = ("flag", "suspend")


def _apply_identity_policy(product: Product, changes: ProductChanges) -> list[str]:
    """Validate and set ``rebind_limit`` / ``rebind_period`` / ``sharing_policy``.

    A ``rebind_limit`` of None means unbounded (absent: unchanged); None for
    the others leaves them as they are.

    Raises:
        ServiceError: 400 ``invalid_request``.
    """
    changed: list[str] = []
    if "rebind_limit" in changes:
        limit = changes["rebind_limit"]
        low, high = REBIND_LIMIT_RANGE
        if limit is not None and not low <= limit <= high:
            raise invalid(f"rebind_limit must be {low} to {high}, or null (unbounded).")
        product.rebind_limit = limit
        changed.append("rebind_limit")
    period = changes.get("rebind_period")
    if period is not None:
        low, high = REBIND_PERIOD_RANGE
        if not low <= period <= high:
            raise invalid(f"rebind_period must be {low} to {high} seconds.")
        product.rebind_period = period
        changed.append("rebind_period")
    policy = changes.get("sharing_policy")
    if policy is not None:
        if policy not in SHARING_POLICIES:
            raise invalid(f"sharing_policy must be one of {', '.join(SHARING_POLICIES)}.")
        product.sharing_policy = policy
        changed.append("sharing_policy")
    return changed


def update_product(session: Session, product_id: str, *, actor: str = "admin",
                   **changes: Unpack[ProductChanges]) -> Product:
    """Change a product's settings (:class:`ProductChanges`) and commit.

    ``protection`` cannot leave ``mandatory`` while the product has
    subscriptions (409 ``conflict``).  A PATCH body passes the fields it set
    (``model_fields_set``).

    Changes apply to tokens issued from now on; tokens already issued keep
    their claims until they are refreshed.

    Raises:
        ServiceError: 404 ``not_found``, 400 ``invalid_request``.
    """
    name, protection = changes.get("name"), changes.get("protection")
    refresh_interval = changes.get("refresh_interval")
    offline_grace_period = changes.get("offline_grace_period")
    fingerprint_tolerance = changes.get("fingerprint_tolerance")
    features, limited_features = changes.get("features"), changes.get("limited_features")
    password_required = changes.get("password_required")
    trial_days, test_code_limit = changes.get("trial_days"), changes.get("test_code_limit")
    product = get_product(session, product_id)
    _check_policy(
        protection if protection is not None else product.protection,
        refresh_interval if refresh_interval is not None else product.refresh_interval,
        offline_grace_period if offline_grace_period is not None else product.offline_grace_period,
        fingerprint_tolerance
        if fingerprint_tolerance is not None
        else product.fingerprint_tolerance,
    )
    _check_trial_policy(trial_days, test_code_limit)
    mandatory = Protection.MANDATORY.value
    if (protection is not None and protection != mandatory
            and product.protection == mandatory
            and session.scalar(select(License.id).where(License.product_id == product_id,
                                                        License.subscription.is_(True)).limit(1))):
        raise conflict("This product has subscriptions: they need the protection level "
                       "'mandatory'.")
    before = _settings_of(product)
    changed: list[str] = apply_seat_policy(product, changes)
    changed += _apply_identity_policy(product, changes)
    changed += _apply_air_gap_policy(product, changes)
    changed += _apply_commerce_settings(product, changes)
    changed += _apply_portal_settings(product, changes)
    if trial_days is not None:
        product.trial_days = trial_days or None
        changed.append("trial_days")
    if test_code_limit is not None:
        product.test_code_limit = test_code_limit
        changed.append("test_code_limit")
    if name is not None:
        _check_name(name)
        product.name = name[:200]
        changed.append("name")
    if protection is not None:
        product.protection = protection
        changed.append("protection")
    if refresh_interval is not None:
        product.refresh_interval = refresh_interval
        changed.append("refresh_interval")
    if offline_grace_period is not None:
        product.offline_grace_period = offline_grace_period
        changed.append("offline_grace_period")
    if fingerprint_tolerance is not None:
        product.fingerprint_tolerance = fingerprint_tolerance
        changed.append("fingerprint_tolerance")
    if features is not None:
        product.features = clean_features(features)
        changed.append("features")
    if limited_features is not None:
        product.limited_features = clean_features(limited_features, "limited_features")
        changed.append("limited_features")
    if password_required is not None:
        product.password_required = password_required
        changed.append("password_required")
    # The log names what really changed (a form sends every setting, most as they were).
    after = _settings_of(product)
    changed = [name for name in after if after[name] != before[name]]
    if not changed:
        session.rollback()
        return product
    now = utcnow()
    product.updated_at = now
    audit(session, actor, "product.update", at=now, product_id=product_id,
          detail={"changed": changed})
    session.commit()
    return product


def _settings_of(product: Product) -> dict[str, Any]:
    """A product's settings (every column but its id and times), as plain values."""
    return {attr.key: copy.deepcopy(getattr(product, attr.key))
            for attr in inspect(product).mapper.column_attrs
            if attr.key not in ("id", "created_at", "updated_at")}

