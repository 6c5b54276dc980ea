"""Trials, test codes, and trial to paid (docs/trials.md).

Trials: a product with ``trial_days`` lets the app start a trial
(:func:`start_trial`, ``POST /v1/trials``) once per machine.  The server
makes a license of kind ``trial`` (one seat, no key anybody knows, ending
``trial_days`` after the start) and activates it for the machine.  The
machine is remembered by its trial activation's machine bindings
(:mod:`.bindings`: encrypted sets, keyed index): every set the activation
was ever bound to, so a trial machine that re-bound during validation is
still known.  A later request is looked up through the index (candidates
sharing an identifying component) and then compared
(``identity.compare``, the product's tolerance) with every set of each
candidate trial: a match gets the same trial back while it runs (a
reinstall or a deleted store does not restart it), and 409 ``trial_used``
once it ended.  Dropping components does not help: a set with more
unavailable components than the tolerance is refused (400
``invalid_fingerprint``), and a missing component counts as different.

Test codes (:func:`issue_test_code`): license keys of kind ``test`` for the
vendor's own testing, 1-7 days after the first activation, at most the
product's ``test_code_limit`` live at once; :func:`reset_test_code` frees
their activations and restarts their time.

Trial to paid (``activations.replace_activation``): an activation that names the
machine's trial (evaluation, test) activation in ``replaces`` releases it
once the new activation succeeded (a replaced trial ends), and copies the
trial license's settings document to the new license when the new license
has none yet.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from software_dna.server import licensekeys
from software_dna.server.domain.terms import TEST_CODE_MAX_DAYS
from software_dna.server.models import (
    Activation,
    License,
    LicenseSettings,
    Product,
    Trial,
)
from software_dna.server.services import bindings, ledger, sharing
from software_dna.server.services.common import Context, audit, new_id, precise_now, utcnow
from software_dna.server.services.errors import ServiceError, conflict, invalid
from software_dna.server.services.licenses import issue_license
from software_dna.server.services.lookups import get_license, get_product, get_trial
from software_dna.server.services.messages import Activated, FingerprintData
from software_dna.server.services.ratelimit import hit_address
from software_dna.server.services.tokens import issue_for, signing_key_for
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code
from software_dna.wire.identity import HARDWARE_IDS, IDENTIFYING

__all__ = [
    "TrialRequest",
    "issue_test_code",
    "list_test_codes",
    "list_trials",
    "remove_trial",
    "reset_test_code",
    "start_trial",
]


@dataclass(frozen=True)
class TrialRequest:
    """The body of ``POST /v1/trials``, already validated for shape."""

    product: str
    fingerprint: FingerprintData
    nonce: str
    client: Mapping[str, str | None] = field(default_factory=dict)
    #: The ``k4.pid`` ids of the keys the app trusts; None: any (older SDKs).
    trusted_keys: frozenset[str] | None = None


def _not_available() -> ServiceError:
    return ServiceError(Code.TRIAL_NOT_AVAILABLE, "This product offers no trial.")


def _trial_sets_match(session: Session, ctx: Context, trial: Trial,
                      fingerprint: FingerprintData, tolerance: int, *,
                      anchors: frozenset[str] = IDENTIFYING) -> bool:
    """Was any activation of ``trial`` ever bound to a set matching the one sent?"""
    activation_ids = session.scalars(select(Activation.id).where(
        Activation.license_id == trial.license_id))
    return any(bindings.same_as(bound, fingerprint, tolerance, anchors=anchors) is not None
               for _, bound in bindings.bound_sets(session, ctx, activation_ids))


def _matching_trial(session: Session, ctx: Context, product: Product,
                    fingerprint: FingerprintData, tolerance: int) -> Trial | None:
    """The newest trial of this machine: one whose activations were ever bound to a set
    matching the one sent, directly or through the drift history of the machine's other
    activations of the product (a trial machine that bought a license and drifted on
    it is still the trial machine)."""
    linked = bindings.linked_activations(session, ctx, product.id, fingerprint.components,
                                         tolerance)
    if not linked:
        return None
    return session.scalars(
        select(Trial).where(
            Trial.product_id == product.id,
            Trial.license_id.in_(select(Activation.license_id)
                                 .where(Activation.id.in_(sorted(linked)))),
        ).order_by(Trial.created_at.desc(), Trial.id).limit(1)).first()


def _new_activation(ctx: Context, lic: License, request: TrialRequest,
                    now: datetime) -> Activation:
    activation_id = new_id("act")
    client = request.client
    return Activation(
        id=activation_id, license_id=lic.id,
        secret_hash=ctx.vault.secret_hash(ctx.vault.activation_secret(activation_id)),
        fingerprint_id=bindings.new_fingerprint_id(),
        idempotency_key=secrets.token_urlsafe(24), end_user_id=None, erased=False,
        sdk_version=client.get("sdk_version"), app_version=client.get("app_version"),
        client_os=client.get("os"),
        client_python=client.get("python"), created_at=now, last_seen_at=now,
        deactivated_at=None, deactivated_by=None,
    )


def start_trial(session: Session, ctx: Context, request: TrialRequest, *,
                client_address: str | None = None) -> Activated:
    """Start this machine's trial of a product, or hand back the one that runs; commits.

    ``created`` is False when the machine's running trial is answered again
    (HTTP 200 instead of 201): same license, same end.

    Raises:
        ServiceError: 400 ``invalid_fingerprint``; 429 ``rate_limited``; 403
        ``trial_not_available`` (no
        such product, or it offers no trial); 409 ``trial_used`` (this
        machine's trial ended or was revoked) / ``untrusted_signing_key`` (the
        app trusts none of the product's usable keys: before any trial is
        used); 503 ``no_signing_key``.
    """
    hit_address(session, ctx, client_address)
    # Lock the product row: two requests from one machine never make two trials.
    product = session.scalars(
        select(Product).where(Product.id == request.product)
        .with_for_update(of=Product).execution_options(populate_existing=True)
    ).one_or_none()
    if product is None or not product.trial_days:
        session.rollback()
        raise _not_available()
    # A key the app can verify, before the machine's one trial is used (409).
    signing_key = signing_key_for(session, ctx, product.id, request.trusted_keys)
    now = utcnow()
    fingerprint = request.fingerprint
    tolerance = bindings.clamp_tolerance(product.fingerprint_tolerance)
    bindings.require_current_algorithm(fingerprint)
    bindings.require_exact_machine(fingerprint, "A trial")
    trial = _matching_trial(session, ctx, product, fingerprint, tolerance)
    created = False
    if trial is not None:
        lic = session.get(License, trial.license_id) if trial.license_id else None
        # The running trial is handed back only to its machine by machine id: a MAC
        # list padded with that machine's addresses is used up, not a way to take it.
        if lic is None or lic.status != "active" or (
                lic.expires_at is not None and now >= lic.expires_at) or not _trial_sets_match(
                    session, ctx, trial, fingerprint, tolerance, anchors=HARDWARE_IDS):
            audit(session, "sdk", "trial.refused", at=now, product_id=product.id,
                  license_id=trial.license_id)
            session.commit()
            raise ServiceError(Code.TRIAL_USED, (
                "This computer has already used its trial of this product. "
                "Buy a license to keep using it."))
        activation = session.scalars(
            select(Activation).where(Activation.license_id == lic.id,
                                     Activation.deactivated_at.is_(None))
            .order_by(Activation.created_at.desc()).limit(1)
        ).first()
        if activation is None:
            activation = _new_activation(ctx, lic, request, now)
            session.add(activation)
            session.flush()
            bindings.bind(session, ctx, activation, product.id,
                          algorithm=fingerprint.algorithm, components=fingerprint.components,
                          now=now)
            created = True
        else:
            activation.last_seen_at = now
            current = bindings.current(session, ctx, activation)
            if current is None or dict(current.components) != dict(fingerprint.components):
                # Matched some set of this trial: know the machine as it is now too.
                bindings.bind(session, ctx, activation, product.id,
                              algorithm=fingerprint.algorithm,
                              components=fingerprint.components, now=now)
    else:
        key = licensekeys.generate("TRIAL")  # never shown: nobody can activate it by key
        lic = License(
            id=new_id("lic"), product_id=product.id,
            key_hash=ctx.vault.license_key_hash(licensekeys.normalize(key)), key_last4="",
            status="active", seats=1, expires_at=now + timedelta(days=product.trial_days),
            features=list(product.features), password_hash=None, password_erased=False,
            erased=False, kind=Kind.TRIAL.value, duration_days=product.trial_days,
            first_activated_at=now, subscription=False, cancelled_at=None,
            created_at=precise_now(), updated_at=now,
        )
        session.add(lic)
        session.flush()
        activation = _new_activation(ctx, lic, request, now)
        trial = Trial(id=new_id("trl"), product_id=product.id, license_id=lic.id,
                      fingerprint_id=activation.fingerprint_id, created_at=precise_now())
        session.add(trial)
        session.add(activation)
        session.flush()
        bindings.bind(session, ctx, activation, product.id, algorithm=fingerprint.algorithm,
                      components=fingerprint.components, now=now)
        created = True
    activation.license = lic
    session.flush()
    # This machine's trial again (a reinstall, a retry): a new secret generation,
    # so the installation it replaces holds an outdated one (services/sharing.py).
    secret = (sharing.current_secret(ctx, activation) if created
              else sharing.reissue(ctx, activation))
    token = issue_for(session, ctx, activation, nonce=request.nonce, now=now, secret=secret,
                      key=signing_key)
    audit(session, "sdk", "trial.start" if created else "trial.replay", at=now,
          product_id=product.id, license_id=lic.id, activation_id=activation.id)
    session.commit()
    return Activated(activation_id=activation.id,
                     activation_secret=secret,
                     token=token, nonce=request.nonce, server_time=now, created=created,
                     product_id=product.id)


def list_trials(session: Session, product_id: str, *, limit: int = 100) -> list[Trial]:
    """The machines that used the product's trial, newest first.

    Raises:
        ServiceError: 404 ``not_found`` (product).
    """
    get_product(session, product_id)
    return list(session.scalars(
        select(Trial).where(Trial.product_id == product_id)
        .order_by(Trial.created_at.desc(), Trial.id).limit(limit)))


def remove_trial(session: Session, trial_id: str, *, actor: str = "admin") -> Trial:
    """Forget a trial machine so that it may start a new trial; commits.

    The machine's current trial license is revoked (its app learns it at the
    next refresh). Meant for the vendor's own test machines and support cases.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    trial = get_trial(session, trial_id)
    now = utcnow()
    if trial.license_id is not None:
        lic = session.get(License, trial.license_id)
        if lic is not None and lic.status != "revoked":
            lic.status = "revoked"
            lic.updated_at = now
            ledger.record(session, ledger.LICENSE_REVOKE, lic.id, at=now)
    session.delete(trial)
    audit(session, actor, "trial.remove", at=now, product_id=trial.product_id,
          license_id=trial.license_id)
    session.commit()
    return trial


# --------------------------------------------------------------------------- test codes


def _live_test_codes(session: Session, product_id: str, now: datetime) -> int:
    return int(session.scalar(
        select(func.count()).select_from(License).where(
            License.product_id == product_id, License.kind == Kind.TEST.value,
            License.status != "revoked",
            or_(License.expires_at.is_(None), License.expires_at > now),
        )) or 0)


def issue_test_code(
    session: Session, ctx: Context, *, product_id: str, days: int = 1,
    features: list[str] | None = None, password: str | None = None, actor: str = "admin",
) -> tuple[License, str]:
    """Issue a test code (a ``TEST-…`` key of kind ``test``); commits.

    Args:
        product_id: the product.
        days: it runs this many days (1-7) after its first activation.
        features: entitlements (default: the product's).
        password: activation password (when the product requires one).

    Raises:
        ServiceError: 404 ``not_found``; 400 ``invalid_request``; 409
        ``conflict`` (the product's ``test_code_limit`` live test codes exist:
        revoke one, or wait until one ends).
    """
    product = get_product(session, product_id)
    if not 1 <= days <= TEST_CODE_MAX_DAYS:
        raise invalid(f"A test code runs 1 to {TEST_CODE_MAX_DAYS} days.")
    live = _live_test_codes(session, product_id, utcnow())
    if live >= product.test_code_limit:
        raise conflict(f"This product has {live} live test code(s), its limit: revoke one, "
                       "reset one, or wait until one ends.")
    return issue_license(session, ctx, product_id=product_id, seats=1, features=features,
                         password=password, key_prefix="TEST", actor=actor, kind=Kind.TEST.value,
                         duration_days=days)


def list_test_codes(session: Session, product_id: str, *, limit: int = 100) -> list[License]:
    """The product's test codes, newest first (404 ``not_found`` for no such product)."""
    get_product(session, product_id)
    return list(session.scalars(
        select(License).where(License.product_id == product_id,
                                  License.kind == Kind.TEST.value)
        .order_by(License.created_at.desc(), License.id).limit(limit)))


def reset_test_code(session: Session, license_id: str, *, actor: str = "admin") -> License:
    """Reset a test code: its activations are removed, its settings deleted, and its
    days start again at the next activation; commits.

    Raises:
        ServiceError: 404 ``not_found``; 409 ``conflict`` (not a test code, or revoked).
    """
    lic = get_license(session, license_id)
    if lic.kind != Kind.TEST.value:
        raise conflict("Only test codes can be reset.")
    if lic.status == "revoked":
        raise conflict("A revoked test code cannot be reset; issue a new one.")
    now = utcnow()
    removed = 0
    for activation in session.scalars(select(Activation).where(
            Activation.license_id == lic.id, Activation.deactivated_at.is_(None))):
        activation.deactivated_at = now
        activation.deactivated_by = "vendor"
        removed += 1
    session.execute(delete(LicenseSettings).where(LicenseSettings.license_id == lic.id))
    lic.status = "active"
    lic.first_activated_at = None
    lic.expires_at = None
    if lic.duration_days is None:  # pragma: no cover - test codes always have one
        lic.duration_days = 1
    lic.updated_at = now
    audit(session, actor, "test_code.reset", at=now, product_id=lic.product_id,
          license_id=lic.id, detail={"activations_removed": removed})
    session.commit()
    return lic


# --------------------------------------------------------------------------- trial to paid
