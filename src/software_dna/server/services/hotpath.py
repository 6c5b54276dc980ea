"""The validation hot path: SQLAlchemy Core instead of the ORM's unit of work.

A validation (``POST /v1/activations/{id}/validate``) is the server's most
frequent request: every app's periodic check.  In the common case -- a live
activation of an active, unexpired license, on the machine it is bound to, a
machine or user seat (not floating), a product with an active signing key, a
secret of an accepted generation (:mod:`.sharing`) --
:func:`validate` needs one SELECT (the activation with its license, product,
end user and the product's active key id, in one statement), one UPDATE of
``last_seen_at`` and the rotated secret's generation, and a commit, all
through SQLAlchemy Core.

Every other case is handed to the ORM path,
:func:`software_dna.server.services.activations.validate`, which reads the
rows again and decides exactly as it always did: a removed or moved
activation (410 with a signed receipt), an outdated secret (flagged, 410), a
refused license (403 with a
receipt), a fingerprint that changed (re-bound within the tolerance with its
audit entry, else 403 ``wrong_machine``), a floating license (the lease is
renewed), a product without an active key (503), an app that does not trust the
active key (the ORM path signs with a key it trusts, or refuses 409), and
an activation row locked by another transaction at that moment (the fast
path runs on the event loop on PostgreSQL and must never wait for a lock:
the transaction holding it may need the same loop to finish).  So the
hot path itself refuses nothing but 401, with the same answer for an unknown
activation, a missing secret and a wrong one, after the same constant-time
comparison.

The active key id is read in the same statement as the activation, so a key
rotation or retirement takes effect at the next validation in every worker;
the decrypted key itself comes from the vault's per-process cache (a key
never changes under its kid).
"""

from __future__ import annotations

import asyncio
from collections import namedtuple
from collections.abc import Callable
from contextlib import suppress
from typing import Any, cast

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from software_dna.server.crypto import DecryptionError
from software_dna.server.db import INLINE_TIMEOUT
from software_dna.server.domain.refusals import status_refusal
from software_dna.server.domain.seats import FLOATING
from software_dna.server.domain.tokens import TokenFacts
from software_dna.server.models import (
    Activation,
    Base,
    EndUser,
    License,
    MachineBinding,
    Product,
    SigningKey,
)
from software_dna.server.services.activations import validate as orm_validate
from software_dna.server.services.authentication import (
    generation_failed,
    is_outdated,
    unauthorized,
)
from software_dna.server.services.bindings import clamp_tolerance, decode_components
from software_dna.server.services.common import Context, precise_now, utcnow
from software_dna.server.services.messages import FingerprintData, Validated
from software_dna.server.services.tokens import decrypt_personal_data, sign_token

__all__ = ["DIRECT_CONNECTIONS", "DirectPg", "validate", "validate_direct", "validate_orm",
           "validate_plain"]

#: PostgreSQL connections a worker's validation path opens at most, beside its pool.
DIRECT_CONNECTIONS = 4

_ACTIVATIONS = Base.metadata.tables[Activation.__tablename__]
_LICENSES = Base.metadata.tables[License.__tablename__]
_PRODUCTS = Base.metadata.tables[Product.__tablename__]
_END_USERS = Base.metadata.tables[EndUser.__tablename__]
_BINDINGS = Base.metadata.tables[MachineBinding.__tablename__]
_B = _BINDINGS.c
_A = _ACTIVATIONS.c
_L = _LICENSES.c
_P = _PRODUCTS.c
_E = _END_USERS.c
_K = Base.metadata.tables[SigningKey.__tablename__].c

#: A signing key's status while it signs.
_ACTIVE = "active"

_ACTIVE_KID = (
    select(_K.kid)
    .where(_K.product_id == _L.product_id, _K.status == _ACTIVE)
    .scalar_subquery()
    .label("active_kid")
)

#: Everything a validation reads, in one statement (primary-key and unique look-ups).
_READ = (
    select(
        _A.id, _A.secret_generation, _A.secret_grace, _A.fingerprint_id, _A.end_user_id,
        _B.id.label("binding_row"), _B.algorithm.label("binding_algorithm"),
        _B.components_ciphertext, _B.product_id.label("binding_product"),
        _A.erased.label("activation_erased"), _A.offline, _A.deactivated_at, _A.app_version,
        _L.id.label("license_id"), _L.product_id, _L.status, _L.cancelled_at, _L.expires_at,
        _L.features,
        _L.erased.label("license_erased"), _L.kind, _L.subscription, _L.seat_mode,
        _P.protection, _P.refresh_interval, _P.offline_grace_period,
        _P.fingerprint_tolerance, _P.limited_features,
        _P.air_gapped_token_days, _P.air_gapped_perpetual,
        _E.id.label("end_user_row"), _E.email_ciphertext, _E.registration_ciphertext,
        _E.erased_at.label("end_user_erased_at"),
        _ACTIVE_KID,
    )
    .select_from(
        _ACTIVATIONS
        .join(_LICENSES, _L.id == _A.license_id)
        .join(_PRODUCTS, _P.id == _L.product_id)
        .outerjoin(_BINDINGS, _B.id == _A.binding_id)
        .outerjoin(_END_USERS, _E.id == _A.end_user_id)
    )
    .where(_A.id == bindparam("activation_id"))
)

#: The ``last_seen_at`` write, which never waits for a row lock (PostgreSQL: ``FOR UPDATE
#: SKIP LOCKED``; SQLite has no row locks): no row updated means the activation is
#: locked by another transaction (a deactivation, roll-over, an admin change), and the
#: request goes to the ORM path, which waits for it in the thread pool, off the event loop.
_UNLOCKED = (select(_A.id).where(_A.id == bindparam("activation_id"))
             .with_for_update(skip_locked=True).scalar_subquery())
#: The secret's rotation in the same statement, only from the generation read: a
#: validation that rotated it meanwhile makes this one take the ORM path.
_SEEN = (update(_ACTIVATIONS)
         .where(_A.id == _UNLOCKED, _A.secret_generation == bindparam("read_generation"))
         .values(last_seen_at=bindparam("seen"), secret_generation=bindparam("generation"),
                 secret_grace=bindparam("grace"), secret_hash=bindparam("secret_hash")))
#: The same write with the app's new version, only when the client sent another one
#: (the common case writes no more than before).
_SEEN_VERSION = _SEEN.values(app_version=bindparam("app_version"))

_SEALED = select(_K.secret_ciphertext).where(_K.kid == bindparam("kid"))


class _Compiled:
    """A Core statement compiled once for one dialect, run through the DBAPI directly.

    Parameters and result values go through the same type processors
    SQLAlchemy applies (e.g. ``UTCDateTime``: aware datetimes in, aware out),
    so a row read here equals the row SQLAlchemy's ``execute`` returns.
    """

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.binds: dict[str, Callable[[Any], Any]] = {}
        for name, bind in compiled.binds.items():
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.binds[name] = processor
        columns = list(getattr(statement, "selected_columns", ()))
        self.results = [c.type.dialect_impl(dialect).result_processor(dialect, None)
                        for c in columns]
        names = [c.key for c in columns]
        self.row: Any = namedtuple("_Row", names) if columns else None

    def parameters(self, given: dict[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **given}
        for name, processor in self.binds.items():
            if name in values:
                values[name] = processor(values[name])
        return values

    def make_row(self, raw: tuple[Any, ...]) -> Any:
        return self.row._make(value if processor is None else processor(value)
                              for processor, value in zip(self.results, raw, strict=True))


class DirectPg:
    """The hot path on PostgreSQL, asynchronous, without SQLAlchemy's per-statement work.

    A few psycopg ``AsyncConnection`` objects (at most ``size``), opened with
    the inline engine's URL (:func:`~software_dna.server.db.make_inline_engine`:
    autocommit; connecting and every statement bounded by
    :data:`~software_dna.server.db.INLINE_TIMEOUT` seconds) and kept for the
    process's life; the hot path's Core statements, compiled once, run as
    server-side prepared statements.  While one validation waits for
    PostgreSQL the worker's event loop serves others.  There is no ping per
    request: a connection found broken by the first statement (nothing
    written yet) is replaced and the statement run again once, so a restarted
    database still costs no error.

    Database errors are raised as SQLAlchemy's (``OperationalError``,
    ``TimeoutError`` when no connection frees up in time...), which the API
    answers as before (503 ``unavailable``).  For one event loop.
    """

    def __init__(self, engine: Engine, size: int = DIRECT_CONNECTIONS) -> None:
        self.engine = engine
        dialect = engine.dialect
        self.read = _Compiled(_READ, dialect)
        self.seen = _Compiled(_SEEN, dialect)
        self.seen_version = _Compiled(_SEEN_VERSION, dialect)
        self.sealed = _Compiled(_SEALED, dialect)
        _args, self._params = dialect.create_connect_args(engine.url)
        self.size = size
        self._idle: list[Any] = []
        self._open = 0
        self._freed: asyncio.Condition | None = None

    async def acquire(self) -> Any:
        """An idle connection, a new one, or the first one freed (bounded wait)."""
        import psycopg  # noqa: PLC0415  # the PostgreSQL driver: only with PostgreSQL

        if self._freed is None:
            self._freed = asyncio.Condition()
        async with self._freed:
            try:
                await asyncio.wait_for(
                    self._freed.wait_for(lambda: bool(self._idle) or self._open < self.size),
                    INLINE_TIMEOUT)
            except TimeoutError as exc:
                raise sa_exc.TimeoutError("no hot-path connection freed up in time") from exc
            if self._idle:
                return self._idle.pop()
            self._open += 1
        try:
            return await psycopg.AsyncConnection.connect(
                **self._params, autocommit=True, connect_timeout=INLINE_TIMEOUT,
                options=f"-c statement_timeout={INLINE_TIMEOUT * 1000}")
        except psycopg.Error as exc:
            await self._released(None)
            raise sa_exc.DBAPIError.instance(
                None, None, exc, psycopg.Error, hide_parameters=True) from exc

    async def release(self, conn: Any) -> None:
        """Give ``conn`` back (closed and forgotten when it is broken)."""
        if conn.closed or conn.info.transaction_status != _IDLE:
            with suppress(Exception):
                await conn.close()
            conn = None
        await self._released(conn)

    async def _released(self, conn: Any) -> None:
        assert self._freed is not None
        async with self._freed:
            if conn is None:
                self._open -= 1
            else:
                self._idle.append(conn)
            self._freed.notify()

    async def execute(self, conn: Any, compiled: _Compiled, given: dict[str, Any]) -> Any:
        """Run ``compiled`` on ``conn``; returns the psycopg cursor."""
        import psycopg  # noqa: PLC0415

        try:
            return await conn.execute(compiled.sql, compiled.parameters(given), prepare=True)
        except psycopg.Error as exc:
            raise sa_exc.DBAPIError.instance(
                compiled.sql, None, exc, psycopg.Error, hide_parameters=True) from exc

    def discard(self) -> None:
        """Close the idle connections from outside their event loop (libpq's ``finish``:
        no I/O to wait for), e.g. when the app is disposed of after its loop stopped."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                conn.pgconn.finish()
            self._open -= 1

    async def close(self) -> None:
        """Close the idle connections (the ones in use are closed when given back broken)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            with suppress(Exception):
                await conn.close()
            self._open -= 1
        if self._freed is not None and idle:
            async with self._freed:
                self._freed.notify_all()


#: psycopg's ``TransactionStatus.IDLE`` (a connection usable by the next request).
_IDLE = 0


class _SqlAlchemyDb:
    """The hot path's statements through a SQLAlchemy connection (SQLite, the thread pool)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def read(self, activation_id: str) -> Any:
        return self.conn.execute(_READ, {"activation_id": activation_id}).one_or_none()

    def write(self, values: dict[str, Any], with_version: bool) -> int:
        seen = self.conn.execute(_SEEN_VERSION if with_version else _SEEN, values)
        return int(seen.rowcount)

    def sealed(self, kid: str) -> bytes:
        value: bytes = self.conn.execute(_SEALED, {"kid": kid}).scalar_one()
        return value

    def commit(self) -> None:
        self.conn.commit()

    def rollback(self) -> None:
        self.conn.rollback()


def _bound(ctx: Context, row: Any) -> dict[str, Any] | None:
    """The current binding's set, opened; None when there is none or it does not open."""
    if row.binding_row is None:
        return None
    try:
        return decode_components(ctx, row.binding_row, row.binding_product,
                                 row.binding_algorithm, row.components_ciphertext)
    except (DecryptionError, ValueError):
        return None  # the ORM path decides (and fails the same way, loudly)


def _plain(row: Any, fingerprint: FingerprintData, bound: dict[str, Any] | None,
           now: Any, trusted: frozenset[str] | None = None) -> bool:
    """True when nothing but a fresh token is needed (see the module docstring).

    The license's refusals are the ORM path's own rules
    (:func:`~software_dna.server.domain.refusals.status_refusal`): a refused
    license goes to the ORM path, which answers the refusal with a receipt.
    """
    return (
        row.deactivated_at is None
        and status_refusal(status=row.status, cancelled_at=row.cancelled_at,
                           expires_at=row.expires_at, kind=row.kind, now=now) is None
        and row.seat_mode != FLOATING
        and row.active_kid is not None
        and (trusted is None or row.active_kid in trusted)  # else the ORM path picks one
        and bound is not None
        and row.binding_algorithm == fingerprint.algorithm
        and fingerprint.previous is None
        and bound == dict(fingerprint.components)
    )


def validate_plain(engine: Engine, ctx: Context, activation_id: str,
                   secret: str | None, *, fingerprint: FingerprintData, nonce: str,
                   trusted: frozenset[str] | None = None,
                   app_version: str | None = None) -> Validated | None:
    """The common case of a validation through Core; None when it is not that case.

    None means: hand the request to :func:`validate_orm` (nothing was written).
    ``app_version``: the app's version the client sent (None: not sent); stored
    in the same UPDATE when it differs from the activation's.

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or
        wrong secret: one answer for the three).
    """
    with engine.connect() as conn:
        row = conn.execute(_READ, {"activation_id": activation_id}).one_or_none()
        plan = _decide(ctx, row, secret, fingerprint, trusted=trusted, app_version=app_version)
        if plan is None:
            return None
        assert row is not None
        seen = conn.execute(_SEEN_VERSION if plan.with_version else _SEEN, plan.values)
        if seen.rowcount != 1:
            conn.rollback()
            return None  # locked elsewhere: the ORM path waits for it (module docstring)
        kid: str = row.active_kid
        key = ctx.vault.cached_signing_key(kid)
        if key is None:
            key = ctx.vault.signing_key(kid, conn.execute(_SEALED, {"kid": kid}).scalar_one())
        done = _signed(ctx, row, plan, key, nonce)
        conn.commit()
        return done


async def validate_direct(direct: DirectPg, ctx: Context, activation_id: str,
                          secret: str | None, *, fingerprint: FingerprintData, nonce: str,
                          trusted: frozenset[str] | None = None,
                          app_version: str | None = None) -> Validated | None:
    """:func:`validate_plain` on :class:`DirectPg`: the same statements and decisions.

    Raises:
        ServiceError: 401 ``unauthorized``, as :func:`validate_plain`.
        sqlalchemy.exc.DBAPIError: the database failed (``OperationalError``...);
        sqlalchemy.exc.TimeoutError: no connection free in time.
    """
    import psycopg  # noqa: PLC0415  # the PostgreSQL driver: only with PostgreSQL

    conn = await direct.acquire()
    try:
        try:
            cursor = await conn.execute(direct.read.sql, direct.read.parameters(
                {"activation_id": activation_id}), prepare=True)
        except psycopg.Error:
            if not conn.closed:
                raise
            # A broken connection (a restarted database, which broke the idle ones
            # too): nothing was written; once more, on a new connection.
            await direct.release(conn)
            await direct.close()
            conn = await direct.acquire()
            cursor = await direct.execute(conn, direct.read, {"activation_id": activation_id})
        raw = await cursor.fetchone()
        row = None if raw is None else direct.read.make_row(raw)
        plan = _decide(ctx, row, secret, fingerprint, trusted=trusted, app_version=app_version)
        if plan is None:
            return None
        assert row is not None
        seen = await direct.execute(conn, direct.seen_version if plan.with_version
                                    else direct.seen, plan.values)
        if seen.rowcount != 1:
            return None  # locked elsewhere: the ORM path waits for it (module docstring)
        kid: str = row.active_kid
        key = ctx.vault.cached_signing_key(kid)
        if key is None:
            sealed = await (await direct.execute(conn, direct.sealed, {"kid": kid})).fetchone()
            if sealed is None:
                raise sa_exc.NoResultFound("No row was found when one was required")
            key = ctx.vault.signing_key(kid, direct.sealed.make_row(sealed).secret_ciphertext)
        return _signed(ctx, row, plan, key, nonce)
    except psycopg.Error as exc:
        raise sa_exc.DBAPIError.instance(
            None, None, exc, psycopg.Error, hide_parameters=True) from exc
    finally:
        await direct.release(conn)


class _Plan:
    """What :func:`_decide` settled: the UPDATE's values, the new secret, the time."""

    __slots__ = ("bound", "new_secret", "now", "values", "with_version")

    def __init__(self, values: dict[str, Any], with_version: bool, new_secret: str,
                 now: Any, bound: dict[str, Any] | None) -> None:
        self.bound = bound
        self.values = values
        self.with_version = with_version
        self.new_secret = new_secret
        self.now = now


def _decide(ctx: Context, row: Any, secret: str | None, fingerprint: FingerprintData, *,
            trusted: frozenset[str] | None, app_version: str | None) -> _Plan | None:
    """The fast path's decision on the row read: the write to make, or None (hand over).

    Raises:
        ServiceError: 401 ``unauthorized`` (unknown activation, missing or wrong secret).
    """
    presented = generation_failed(ctx, row.id if row is not None else None, secret)
    if presented is None:
        raise unauthorized()
    assert row is not None
    now = utcnow()
    current: int = row.secret_generation
    bound = _bound(ctx, row)
    if (not _plain(row, fingerprint, bound, now, trusted)
            or is_outdated(presented, current, row.secret_grace)):
        return None
    # The rotation of services.sharing.rotate, as values.
    generation = max(current, presented) + 1
    grace = presented if presented >= current else row.secret_grace
    new_secret = ctx.vault.activation_secret(row.id, generation)
    # Roll-over moves the least recently seen machine.  The read took no lock, so
    # this one statement is the whole write (db.make_inline_engine: autocommit).
    values: dict[str, Any] = {
        "activation_id": row.id, "seen": precise_now(), "read_generation": current,
        "generation": generation, "grace": grace,
        "secret_hash": ctx.vault.secret_hash(new_secret)}
    with_version = app_version is not None and app_version != row.app_version
    if with_version:
        values["app_version"] = app_version
    return _Plan(values, with_version, new_secret, now, bound)


def _signed(ctx: Context, row: Any, plan: _Plan, key: Any, nonce: str) -> Validated:
    """The answer: a fresh token for ``row`` signed with ``key``."""
    bound = plan.bound
    now = plan.now
    email: str | None = None
    registration: dict[str, str] | None = None
    if (row.end_user_id is not None and not row.activation_erased
            and row.end_user_row is not None and row.end_user_erased_at is None):
        email, registration = decrypt_personal_data(
            ctx, row.end_user_id, row.email_ciphertext, row.registration_ciphertext)
    facts = TokenFacts.derive(
        license_id=row.license_id, activation_id=row.id, product_id=row.product_id,
        fingerprint_id=row.fingerprint_id, fingerprint=bound or {},
        fingerprint_algorithm=row.binding_algorithm,
        tolerance=clamp_tolerance(row.fingerprint_tolerance), license_erased=row.license_erased,
        activation_erased=row.activation_erased, features=row.features,
        limited_features=row.limited_features, product_protection=row.protection,
        activation_offline=row.offline, refresh_interval=row.refresh_interval,
        offline_grace_period=row.offline_grace_period, license_expires_at=row.expires_at,
        kind=row.kind, subscription=row.subscription, seat_mode=row.seat_mode,
        air_gapped_token_days=(None if row.air_gapped_perpetual
                               else row.air_gapped_token_days),
    )
    refresh_by, expires = facts.times(now)
    token = sign_token(ctx, key, facts, nonce=nonce, now=now, refresh_by=refresh_by,
                       expires=expires, email=email, registration=registration,
                       secret=plan.new_secret)
    return Validated(token=token, nonce=nonce, server_time=now, rebound=False,
                     activation_secret=plan.new_secret, product_id=row.product_id)


def validate_orm(sessions: Callable[[], Session], ctx: Context, activation_id: str,
                 secret: str | None, *, fingerprint: FingerprintData, nonce: str,
                 trusted: frozenset[str] | None = None,
                 app_version: str | None = None) -> Validated:
    """The ORM path (``activations.validate``, ``lease="renew"``) in a session of its own."""
    session = sessions()
    try:
        return orm_validate(session, ctx, activation_id, secret, fingerprint=fingerprint,
                            nonce=nonce, trusted=trusted, app_version=app_version)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def validate(engine: Engine, sessions: Callable[[], Session], ctx: Context, activation_id: str,
             secret: str | None, *, fingerprint: FingerprintData, nonce: str,
             trusted: frozenset[str] | None = None,
             app_version: str | None = None) -> Validated:
    """:func:`~software_dna.server.services.activations.validate` with ``lease="renew"``.

    Same answers and effects: :func:`validate_plain`, else :func:`validate_orm`.

    Raises:
        ServiceError: as ``activations.validate``.
    """
    done = validate_plain(engine, ctx, activation_id, secret, fingerprint=fingerprint,
                          nonce=nonce, trusted=trusted, app_version=app_version)
    if done is not None:
        return done
    return validate_orm(sessions, ctx, activation_id, secret, fingerprint=fingerprint,
                        nonce=nonce, trusted=trusted, app_version=app_version)
