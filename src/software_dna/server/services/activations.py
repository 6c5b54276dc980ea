"""Activations: the end-user flows (activate, validate, deactivate, erasure
request, trial to paid) and the vendor's list / remove.

Seats: the license row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL;
on SQLite every transaction is ``BEGIN IMMEDIATE``) before the seats in use
are counted, so concurrent activations never exceed the seats.  An
idempotent retry hands back the same secret (secrets are derived from the
activation id: :mod:`.authentication`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.crypto import verify_password
from software_dna.server.domain.refusals import offline_refusal, removed_refusal, status_refusal
from software_dna.server.domain.seats import FLOATING
from software_dna.server.domain.tokens import exact_machine
from software_dna.server.models import Activation, EndUser, License, LicenseSettings
from software_dna.server.services import bindings, email_confirmation, ledger, sharing
from software_dna.server.services.authentication import (
    authenticate,
    authenticate_generation,
    authenticate_live,
    is_outdated,
)
from software_dna.server.services.common import Context, audit, new_id, precise_now, utcnow
from software_dna.server.services.endusers import (
    attach_end_user,
    erase,
    throttle_erasure_activation,
    throttle_erasure_address,
)
from software_dna.server.services.errors import ServiceError, conflict
from software_dna.server.services.leases import on_validate
from software_dna.server.services.license_terms import start_term
from software_dna.server.services.lookups import find_license_by_key, get_activation, get_license
from software_dna.server.services.messages import (
    Activated,
    ActivationRequest,
    Erased,
    FingerprintData,
    Receipted,
    Validated,
)
from software_dna.server.services.ratelimit import hit, hit_address, require_address_open
from software_dna.server.services.seats import (
    after_activation,
    find_reusable,
    make_room,
    new_seat_erased,
    returning_machine,
)
from software_dna.server.services.settings import read_settings, write_settings
from software_dna.server.services.tokens import (
    issue_for,
    receipt_for,
    refusal_error,
    signing_key_for,
)
from software_dna.wire.claims import DEACTIVATED, ERASED, Kind, Protection
from software_dna.wire.codes import Code
from software_dna.wire.identity import (
    ALGORITHM,
    HARDWARE_IDS,
    IDENTIFYING,
    LEGACY_ALGORITHM,
    compare_legacy,
)
from software_dna.wire.identity import compare as identity_compare

__all__ = [
    "activate",
    "deactivate",
    "list_activations",
    "remove_activation",
    "replace_activation",
    "request_erasure",
    "validate",
]



# --------------------------------------------------------------------------- helpers


def _unknown_key() -> ServiceError:
    return ServiceError(Code.UNKNOWN_LICENSE_KEY,
                        "This license key does not exist for this product. Check the key.")


def _status_refusal(lic: License, now: datetime) -> ServiceError | None:
    refusal = status_refusal(status=lic.status, cancelled_at=lic.cancelled_at,
                             expires_at=lic.expires_at, kind=lic.kind, now=now)
    return None if refusal is None else ServiceError(refusal.code, refusal.message)


def _removed(session: Session, ctx: Context, activation: Activation, nonce: str,
             now: datetime, *, trusted: frozenset[str] | None = None) -> ServiceError:
    return refusal_error(session, ctx, activation, removed_refusal(activation.deactivated_by),
                         nonce=nonce, now=now, trusted=trusted)


_WRONG_MACHINE = ("This activation belongs to another computer. Activate the license on "
                  "this computer with your license key (deactivate it on the other one "
                  "first, or ask the vendor to free that seat).")


def _wrong_machine(session: Session, activation: Activation, now: datetime,
                   differing: list[str] | None = None) -> ServiceError:
    """403 ``wrong_machine``, audited (``activation.wrong_machine``) and committed, so
    support can see when a computer was refused and which components differed (names
    only, never values)."""
    audit(session, "sdk", "activation.wrong_machine", at=now,
          product_id=activation.license.product_id, license_id=activation.license_id,
          activation_id=activation.id,
          detail={"differing": sorted(differing) if differing is not None else None})
    session.commit()
    return ServiceError(Code.WRONG_MACHINE, _WRONG_MACHINE)


# --------------------------------------------------------------------------- activate


_ALREADY_ONLINE = ("This computer already holds an online activation of this license, and an "
                   "air-gapped activation never replaces it. Use the app's online activation, "
                   "or deactivate it (or ask the vendor to remove it) first.")


def activate(session: Session, ctx: Context, request: ActivationRequest, *,
             client_address: str | None = None, staff: bool = False,
             actor: str = "sdk") -> Activated:
    """Activate a license on a machine; commits.

    Order of checks: consent, the key (and its product), the rate limit per
    client network, rate limit per license, license status, password, fingerprint
    (algorithm 2, unavailable components within the tolerance), idempotent
    replay, seats.  A retry with the same ``idempotency_key`` returns the
    same activation and secret with a fresh token, but only when the set
    sent is the same machine as the one stored (``identity.compare``);
    otherwise 409 ``conflict``.  A live activation of the same license whose
    bound set is the same machine (user seats: and the same installation id)
    is reused the same way, so a reinstall does not take a second seat.  On
    a user-seat license, a new activation from a machine matching a set an
    erased activation was ever bound to is created erased.

    Rate limits: guesses -- an unknown key (or another product's), a wrong
    password -- count toward the client network's limit
    (``rate_limit_address_attempts``) before they are answered; an attempt
    with a key that exists only has to find that limit not reached (so
    every app behind one NAT address activates without queuing on one
    counter, and past the limit a right key gets the same 429 as a guess).
    Every attempt of a license that is answered with its license's status,
    a wrong password or an activation counts toward the license's limit
    (``rate_limit_attempts``).

    ``staff``: the vendor's staff answer an air-gapped request (CLI, admin
    API; ``request.offline`` only): authorised by their admin credentials, so
    the activation password is not asked (every other check applies).
    ``actor``: the audit log's actor of the activation (``sdk``, or the staff's
    front end: ``panel``, ``admin``, ``cli``).

    Raises:
        ServiceError: 400 ``consent_required`` / ``invalid_fingerprint``
        (algorithm other than 2, more unavailable components than the
        product's tolerance); 429 ``rate_limited``; 404
        ``unknown_license_key``; 403 ``license_revoked`` / ``license_suspended`` /
        ``license_expired`` / ``wrong_password`` / ``password_reset_required``;
        409 ``no_seats_left`` / ``conflict`` (idempotency key reused for another
        machine) / ``already_activated_online`` (an air-gapped request matching an
        online activation: by replay or by the same machine) /
        ``untrusted_signing_key`` (the app trusts none of the product's usable
        keys: refused right after the password, before any seat is taken); 403
        ``offline_not_allowed`` (air-gapped, where the product or license does
        not allow it: ``domain.refusals.offline_refusal``); 410
        ``activation_removed`` (replay of a deactivated one); 503 ``no_signing_key``.
    """
    settings = ctx.settings
    if (request.email is not None or request.registration is not None) and not request.consent:
        raise ServiceError(Code.CONSENT_REQUIRED,
                           "Email or registration details need the end user's consent.")
    if request.label is not None and not request.consent:
        raise ServiceError(Code.CONSENT_REQUIRED,
                           "The computer's name needs the end user's consent.")
    # Lock the license row: seat counting and idempotency below are race-free.
    lic = find_license_by_key(session, ctx, request.license_key, lock=True)
    if lic is None or lic.product_id != request.product:
        session.rollback()
        # A guess: counted against the client's network (committed) before it is answered.
        hit_address(session, ctx, client_address)
        raise _unknown_key()
    # A key that exists is no guess: the network's counter is only read (one shared row
    # locked by every activation would queue all the apps behind one NAT address), but a
    # reached limit refuses it as it refuses a guess, so a 429 tells nothing of the key.
    require_address_open(session, ctx, client_address)
    # Every attempt of the license counts, within this transaction: each outcome that
    # must count (success, wrong password, refusals that answer) commits it.
    hit(session, "lic:" + lic.id, limit=settings.rate_limit_attempts,
        window=settings.rate_limit_window, commit=False)
    now = utcnow()
    product = lic.product
    refused = _status_refusal(lic, now)
    if refused is not None:
        session.commit()  # the attempt counts
        raise refused
    if staff and request.offline:
        pass  # the vendor's own staff answer a request: authorised without the password
    elif lic.password_hash is not None:
        if request.password is None or not verify_password(request.password, lic.password_hash):
            hit_address(session, ctx, client_address)  # a guess (commits): 429 past the limit
            audit(session, "sdk", "activation.wrong_password", at=now, product_id=product.id,
                  license_id=lic.id)
            session.commit()
            raise ServiceError(Code.WRONG_PASSWORD, "The activation password is wrong.")
    elif lic.password_reset_required:
        session.commit()  # the attempt counts
        raise ServiceError(
            Code.PASSWORD_RESET_REQUIRED,
            "This license needs a new activation password from the vendor.",
        )
    # A key the app can verify, chosen before any seat is taken (409 untrusted_signing_key).
    signing_key = signing_key_for(session, ctx, product.id, request.trusted_keys)
    tolerance = bindings.clamp_tolerance(product.fingerprint_tolerance)
    fingerprint = request.fingerprint
    bindings.require_current_algorithm(fingerprint)
    bindings.require_available(fingerprint, tolerance)
    if request.offline:  # air-gapped: only where the vendor allowed it, without the server
        offline_refused = offline_refusal(
            seat_mode=lic.seat_mode, subscription=lic.subscription,
            product_air_gapped=product.air_gapped, license_air_gapped=lic.air_gapped)
        if offline_refused is not None:
            raise ServiceError(offline_refused.code, offline_refused.message)
    if exact_machine(lic.kind, Protection.OFFLINE.value if request.offline
                     else product.protection):
        bindings.require_exact_machine(
            fingerprint, "An air-gapped activation" if request.offline else "This license")

    activation = session.scalars(
        select(Activation).where(
            Activation.license_id == lic.id,
            Activation.idempotency_key == request.idempotency_key,
        )
    ).one_or_none()
    created = False
    candidates: set[str] | None = None

    comparison = None
    if activation is not None:
        comparison = bindings.same_as(bindings.current(session, ctx, activation), fingerprint,
                                      tolerance)
        if comparison is None:  # a replay is answered only to the machine that sent it
            raise conflict("This idempotency key was used for another machine.")
        if activation.deactivated_at is not None:
            raise _removed(session, ctx, activation, request.nonce, now,
                           trusted=request.trusted_keys)
    else:  # this machine (user seats: this OS account) already holds a seat?
        candidates = bindings.candidate_activations(session, ctx, product.id,
                                                    fingerprint.components)
        found_reusable = find_reusable(session, ctx, lic, fingerprint, request.installation_id,
                                       candidates=candidates)
        if found_reusable is not None:
            activation, comparison = found_reusable
    if request.offline and activation is not None and not activation.offline:
        # An online activation keeps its protection (refresh_by, exp): an air-gapped
        # answer for it would be a token that never meets the server again.
        raise ServiceError(Code.ALREADY_ACTIVATED_ONLINE, _ALREADY_ONLINE)
    address_hash = ctx.vault.address_key(client_address) if client_address else None
    counted = True
    if activation is None:
        # A free seat (roll-over / floating lease), then the lock-out -- which a machine
        # coming back to the seat it released itself does not count toward.
        counted = make_room(session, lic, address_hash=address_hash, now=now,
                            returning=returning_machine(session, ctx, lic, fingerprint,
                                                        request.installation_id,
                                                        offline=request.offline,
                                                        candidates=candidates))
        activation_id = new_id("act")
        binding_id = new_id("bnd")  # set at the INSERT: no UPDATE once the binding exists
        client = request.client
        activation = Activation(
            id=activation_id,
            license_id=lic.id,
            secret_hash=ctx.vault.secret_hash(ctx.vault.activation_secret(activation_id)),
            secret_generation=0,
            fingerprint_id=bindings.new_fingerprint_id(),
            binding_id=binding_id,
            idempotency_key=request.idempotency_key,
            end_user_id=None,
            # Erasure limits a license until the vendor restores it, whatever the end
            # user does; on user seats every new seat after an erasure starts limited.
            erased=new_seat_erased(session, lic),
            sdk_version=client.get("sdk_version"),
            app_version=client.get("app_version"),
            client_os=client.get("os"),
            client_python=client.get("python"),
            created_at=now,
            last_seen_at=precise_now(),
            deactivated_at=None,
            deactivated_by=None,
            installation_id=request.installation_id,
        )
        session.add(activation)
        session.flush()
        # Held until the token is signed (it reads the binding): the session's identity
        # map keeps only what is referenced, and would read it again.
        _bound = bindings.bind(session, ctx, activation, product.id,
                               algorithm=fingerprint.algorithm,
                               components=fingerprint.components, now=now,
                               binding_id=binding_id)
        created = True
    else:
        activation.last_seen_at = precise_now()  # roll-over moves the least recently seen
        activation.license = lic
        if comparison is not None and comparison.differing:
            # Drift within the tolerance: re-bound like a validation would, but past the
            # bound the activation keeps its old set rather than failing the reinstall.
            bindings.rebind(session, ctx, activation, fingerprint, comparison.differing,
                            now=now, enforce_limit=False)
        else:
            bindings.touch(session, activation, now)
    activation.license = lic
    activation.offline = request.offline
    if request.label is not None:  # given with consent (checked above); else kept as it was
        activation.label_ciphertext = ctx.vault.encrypt_field(
            request.label.encode("utf-8"), aad=f"activation:{activation.id}:label")
    end_user = attach_end_user(session, ctx, activation, email=request.email,
                               registration=request.registration, now=now)
    session.flush()
    start_term(lic, now)  # "N days after the first activation" starts here
    trial_converted = False
    # Trial to paid: release the trial, keep the settings.
    if request.replaces is not None and replace_activation(session, ctx, request.replaces,
                                                           activation, now=now):
        replaced_row = session.get(Activation, request.replaces[0])  # in the session already
        trial_converted = (replaced_row is not None
                           and replaced_row.license.kind == Kind.TRIAL.value)
    # Lock-out ledger; a floating license checks a lease out.
    after_activation(session, lic, activation, created=created and counted,
                     address_hash=address_hash, now=now)
    # A reuse (this machine activating again: a reinstall) and a replay (a retry after
    # a lost answer) hand out a new generation, so whoever holds an earlier one -- the
    # installation replaced, or a copy that replays the request to fetch the current
    # secret -- presents an outdated secret at its next validation.
    # An air-gapped answer never meets a validation, and the vendor may answer one
    # request twice (mailed again): every copy of it keeps working, the receipt included.
    secret = (sharing.current_secret(ctx, activation) if created or request.offline
              else sharing.reissue(ctx, activation))
    token = issue_for(session, ctx, activation, nonce=request.nonce, now=now, secret=secret,
                      key=signing_key)
    audit(session, actor, "activation.create" if created else "activation.replay", at=now,
          product_id=product.id, license_id=lic.id, activation_id=activation.id,
          end_user_id=end_user.id if end_user is not None else None,
          detail={"personal_data": end_user is not None, "offline": request.offline,
                  "by_staff": staff and request.offline})
    session.commit()
    email_confirmation.send_pending(session, ctx)
    return Activated(
        activation_id=activation.id,
        activation_secret=secret,
        token=token,
        nonce=request.nonce,
        server_time=now,
        created=created,
        product_id=product.id,
        trial_converted=trial_converted,
    )


# --------------------------------------------------------------------------- validate


def validate(session: Session, ctx: Context, activation_id: str, secret: str | None, *,
             fingerprint: FingerprintData, nonce: str, lease: str = "renew",
             trusted: frozenset[str] | None = None,
             app_version: str | None = None) -> Validated:
    """Check an activation and answer with a fresh token; commits.

    The secret rotates (:mod:`.sharing`): the answer's ``activation_secret``
    is the one to use from now on. A genuine secret older than the accepted
    ones flags the activation as shared and answers 410 ``activation_moved``.
    "Same machine?" is ``identity.compare`` between the activation's
    current binding and the set sent (:mod:`.bindings`).  When the set
    drifted but is the same machine, the activation is re-bound to it
    (bounded by the product's ``rebind_limit``) and ``rebound`` is True.
    An activation still bound to an algorithm-1 set accepts an algorithm-1
    fingerprint (old SDKs), or an algorithm-2 one with ``previous`` (its
    v1 set, matched by ``identity.compare_legacy``): then it migrates to the
    v2 set, which is not counted as a re-bind.  For a floating
    license ``lease`` says what happens to the activation's lease
    (:mod:`.leases`): ``"renew"`` a live one (the heartbeat), ``"take"``
    one (check-out) or ``"release"`` it (check-in). ``trusted``: the ids of
    the keys the app trusts (None: any); tokens and receipts are signed with
    one of them (:func:`~.tokens.signing_key_for`), chosen after the refusals
    about the license and the activation and before the machine is re-bound
    or a lease taken. ``app_version``: the app's version the client sent
    (None: not sent), stored on the activation when it changed.

    Raises:
        ServiceError: 400 ``invalid_fingerprint`` (algorithm 1 for an
        activation bound to an algorithm-2 set; more unavailable components
        than the tolerance); 401 ``unauthorized``; 410 ``activation_removed`` /
        ``activation_moved``; 403 ``license_revoked`` / ``license_suspended`` /
        ``license_expired`` (with a receipt) / ``wrong_machine`` (another
        machine, or past the re-bind bound); 409
        ``no_seats_left`` (``lease="take"``, every floating seat leased) /
        ``untrusted_signing_key``; 503 ``no_signing_key``.
    """
    activation, generation = authenticate_generation(session, ctx, activation_id, secret)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise _removed(session, ctx, activation, nonce, now, trusted=trusted)
    if is_outdated(generation, activation.secret_generation, activation.secret_grace) or (
            _grace_from_elsewhere(session, ctx, activation, generation, fingerprint)):
        sharing.flag(session, activation, sharing.COPIED_SECRET, now=now)
        moved = refusal_error(session, ctx, activation, sharing.MOVED, nonce=nonce, now=now,
                              trusted=trusted)
        session.commit()  # the flag stays whatever the client does with the answer
        raise moved
    lic = activation.license
    refusal = status_refusal(status=lic.status, cancelled_at=lic.cancelled_at,
                             expires_at=lic.expires_at, kind=lic.kind, now=now)
    if refusal is not None:
        raise refusal_error(session, ctx, activation, refusal, nonce=nonce, now=now,
                            trusted=trusted)
    signing_key = signing_key_for(session, ctx, lic.product_id, trusted)
    rebound = check_machine(session, ctx, activation, fingerprint, now=now)
    activation.last_seen_at = precise_now()  # roll-over moves the least recently seen
    if app_version is not None and activation.app_version != app_version:
        activation.app_version = app_version
    if lic.seat_mode == FLOATING:
        on_validate(session, lic, activation, lease, now)
    new_secret = sharing.rotate(ctx, activation, generation)
    token = issue_for(session, ctx, activation, nonce=nonce, now=now, secret=new_secret,
                      key=signing_key)
    session.commit()
    return Validated(token=token, nonce=nonce, server_time=now, rebound=rebound,
                     product_id=lic.product_id,
                     activation_secret=new_secret)


def _grace_from_elsewhere(session: Session, ctx: Context, activation: Activation,
                          generation: int, fingerprint: FingerprintData) -> bool:
    """A grace secret (the answer carrying the current one was lost) from another set.

    The machine that lost an answer sends again the very set the lost answer
    was for (the activation's current binding). A grace secret with any other
    set is a copy presenting the secret it was forked with: accepting it
    would let two copies take turns on one secret for ever.
    """
    if not (generation < activation.secret_generation
            and generation == activation.secret_grace):
        return False
    bound = bindings.current(session, ctx, activation)
    return bound is None or bound.algorithm != fingerprint.algorithm or (
        dict(bound.components) != dict(fingerprint.components))


def check_machine(session: Session, ctx: Context, activation: Activation,
                  fingerprint: FingerprintData, *, now: datetime) -> bool:
    """Is the set sent this activation's machine? Re-binds a drift; does not commit.

    Returns:
        True when the activation was re-bound (or migrated) to the set sent.

    Raises:
        ServiceError: 400 ``invalid_fingerprint``; 403 ``wrong_machine``.
    """
    tolerance = bindings.clamp_tolerance(activation.license.product.fingerprint_tolerance)
    stored = bindings.current(session, ctx, activation)
    if stored is None:
        raise _wrong_machine(session, activation, now)
    if fingerprint.algorithm == LEGACY_ALGORITHM and stored.algorithm != LEGACY_ALGORITHM:
        raise bindings.invalid_fingerprint(
            "This activation moved to fingerprint algorithm 2: update the app's licensing SDK.")
    bindings.require_available(fingerprint, tolerance)
    if stored.algorithm == LEGACY_ALGORITHM and fingerprint.algorithm != LEGACY_ALGORITHM:
        if fingerprint.previous is None or not compare_legacy(
                stored.components, fingerprint.previous, tolerance):
            raise _wrong_machine(session, activation, now)
        bindings.migrate(session, ctx, activation, fingerprint, now=now)
        return True
    lic = activation.license
    protection = Protection.OFFLINE.value if activation.offline else lic.product.protection
    anchors = (HARDWARE_IDS if exact_machine(lic.kind, protection) else IDENTIFYING)
    comparison = bindings.same_as(stored, fingerprint, tolerance, anchors=anchors)
    if comparison is None:
        differing = (sorted(identity_compare(stored.components, fingerprint.components,
                                             tolerance, anchors=anchors).differing)
                     if stored.algorithm == fingerprint.algorithm == ALGORITHM else None)
        raise _wrong_machine(session, activation, now, differing)
    if not comparison.differing:
        bindings.touch(session, activation, now)
        return False
    return bindings.rebind(session, ctx, activation, fingerprint, comparison.differing, now=now)


def deactivate(session: Session, ctx: Context, activation_id: str, secret: str | None,
               nonce: str) -> Receipted:
    """The end user frees the seat; commits. Answers with a ``deactivated`` receipt.

    Raises:
        ServiceError: 401 ``unauthorized``; 410 ``activation_removed`` (already gone).
    """
    activation = authenticate(session, ctx, activation_id, secret, lock=True)
    now = utcnow()
    if activation.deactivated_at is not None:
        raise _removed(session, ctx, activation, nonce, now)
    activation.deactivated_at = now
    activation.deactivated_by = "end_user"
    ledger.record(session, ledger.ACTIVATION_REMOVE, activation.id, at=now,
                  detail={"by": "end_user"})
    audit(session, "sdk", "activation.deactivate", at=now,
          product_id=activation.license.product_id, license_id=activation.license_id,
          activation_id=activation.id)
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result=DEACTIVATED, nonce=nonce,
                          now=now)
    session.commit()
    return Receipted(receipt=receipt, nonce=nonce, server_time=now)


# --------------------------------------------------------------------------- erasure


def request_erasure(session: Session, ctx: Context, activation_id: str, secret: str | None,
                    nonce: str, *, client_address: str | None = None) -> Erased:
    """The end user asks for erasure (same effect as the vendor's); commits.

    Erases the activation's end user (if any personal data was given) and the
    license's personal data, then answers with a fresh ``limited`` token and
    an ``erased`` receipt.  On a revoked, suspended or expired license the
    data is erased all the same, and the answer is the signed refusal (a
    fresh token would let the app forget the revocation).

    Raises:
        ServiceError: 401 ``unauthorized``, 410 ``activation_removed``, 403
        ``license_revoked`` / ``license_suspended`` / ``license_expired``
        (after erasing, with a receipt), 503 ``no_signing_key``, 429
        ``rate_limited`` (per client network, then per activation:
        :func:`~software_dna.server.services.endusers.throttle_erasure_address`).
    """
    throttle_erasure_address(session, ctx, client_address)
    activation = authenticate_live(session, ctx, activation_id, secret)
    throttle_erasure_activation(session, ctx, activation.id)
    end_user = (session.get(EndUser, activation.end_user_id)
                if activation.end_user_id is not None else None)
    erase(session, ctx, end_user=end_user, license_ids={activation.license_id}, actor="sdk",
          activation_id=activation.id)
    session.refresh(activation)
    session.refresh(activation.license)
    now = utcnow()
    lic = activation.license
    refusal = status_refusal(status=lic.status, cancelled_at=lic.cancelled_at,
                             expires_at=lic.expires_at, kind=lic.kind, now=now)
    if refusal is not None:
        raise refusal_error(session, ctx, activation, refusal, nonce=nonce, now=now)
    token = issue_for(session, ctx, activation, nonce=nonce, now=now)
    receipt = receipt_for(session, ctx, product_id=activation.license.product_id,
                          activation_id=activation.id, result=ERASED, nonce=nonce, now=now)
    session.commit()
    return Erased(token=token, receipt=receipt, nonce=nonce, server_time=now)


# --------------------------------------------------------------------------- vendor side


def list_activations(session: Session, license_id: str, *,
                     include_removed: bool = True) -> list[Activation]:
    """Activations of a license, oldest first.

    Raises:
        ServiceError: 404 ``not_found`` (no such license).
    """
    get_license(session, license_id)
    query = select(Activation).where(Activation.license_id == license_id)
    if not include_removed:
        query = query.where(Activation.deactivated_at.is_(None))
    return list(session.scalars(query.order_by(Activation.created_at, Activation.id)))


def remove_activation(session: Session, activation_id: str, *,
                      actor: str = "admin") -> Activation:
    """The vendor removes an activation: its seat is free, its next validation gets 410.

    Commits.  Removing a removed activation succeeds and changes nothing.

    Raises:
        ServiceError: 404 ``not_found``.
    """
    activation = get_activation(session, activation_id)
    if activation.deactivated_at is None:
        now = utcnow()
        activation.deactivated_at = now
        activation.deactivated_by = "vendor"
        ledger.record(session, ledger.ACTIVATION_REMOVE, activation.id, at=now,
                      detail={"by": "vendor"})
        audit(session, actor, "activation.remove", at=now,
              product_id=activation.license.product_id, license_id=activation.license_id,
              activation_id=activation.id)
        session.commit()
    return activation


def replace_activation(session: Session, ctx: Context, replaces: tuple[str, str],
                       new: Activation, *, now: datetime) -> bool:
    """Release the activation ``replaces`` = ``(id, secret)`` in favour of ``new``. No commit.

    Called by :func:`activate` (trial to paid) once
    the new activation is certain. The replaced activation must authenticate,
    be live and belong to another license of the same product; otherwise
    nothing happens (the new activation must not fail because of it). A
    replaced trial ends now (it was bought); an evaluation or test license is
    left as it is. The replaced license's settings are copied to the new
    license when that one has none (a paid license already in use elsewhere
    keeps its own). Returns True when an activation was released.
    """
    try:
        old = authenticate(session, ctx, replaces[0], replaces[1])
    except ServiceError:
        return False
    if (old.deactivated_at is not None or old.license_id == new.license_id
            or old.license.product_id != new.license.product_id):
        return False
    if session.get(LicenseSettings, new.license_id) is None:
        document, _ = read_settings(session, ctx, old.license_id)
        if document:
            write_settings(session, ctx, new.license_id, document, now=now)
    old.deactivated_at = now
    old.deactivated_by = "end_user"
    ledger.record(session, ledger.ACTIVATION_REMOVE, old.id, at=now, detail={"by": "end_user"})
    replaced = old.license
    if replaced.kind == Kind.TRIAL.value and (replaced.expires_at is None
                                              or replaced.expires_at > now):
        replaced.expires_at = now  # the trial is over: bought (no trial again on this machine)
        replaced.updated_at = now
    audit(session, "sdk", "activation.replaced", at=now, product_id=old.license.product_id,
          license_id=old.license_id, activation_id=old.id,
          detail={"by_activation": new.id, "kind": old.license.kind})
    return True
