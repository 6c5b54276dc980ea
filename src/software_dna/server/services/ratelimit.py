"""Rate limiting in the database, so that every worker shares the counters.

A sliding window, exact to the second: at most ``limit`` attempts of a key
are let through in any span of ``window`` seconds, however they fall across
clock boundaries (a fixed window would let ``2 * limit`` through around each
boundary).  Attempts are counted in one-second buckets, rows ``(key,
second)`` of ``rate_limit_counters``; an attempt counts against every window
that its second touches, so the count errs on the safe side by under a
second.  An attempt that is refused is taken back out: it does not prolong
the lock-out, and the table holds at most ``limit`` attempts per key and
window.

Each :func:`hit` is one short transaction, serialised per key in every
worker: a transaction-scoped advisory lock on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite (see :mod:`software_dna.server.db`); so concurrent
attempts in any worker are all counted and never more than ``limit`` pass.
Keys are ``<kind>:<id>``: ``lic:<license id>`` (activation and password
attempts), ``renew:<license id>``, ``reset:<license id>`` (reset mails), and
``addr:<keyed hash of the client network>`` (no address is stored in clear).
An attempt that must pass only while a counter is open, without being
counted itself, asks :func:`require_open` (:func:`require_address_open`):
one read, no lock, nothing written, so such attempts from one network do
not queue on its counter (an activation with a key that exists counts
only when its password is wrong: :mod:`.activations`).
Every per-address limit goes through :func:`hit_address`, which counts the
client's network (:func:`software_dna.server.crypto.rate_limit_network`: an
IPv4 address, or the IPv6 ``/64`` by default), so a home with a whole IPv6
network gets one counter, not one per address.

Lock ends are exact instants: a refusal carries ``retry_at``, the second at
which the next attempt is let through (bucket starts are whole seconds, so
it is exact), and ``Retry-After``, the whole seconds until then rounded up.
Two refusals of one key in a row, with nothing let through between them,
therefore name the same instant: the lock end never moves back.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from software_dna.server.models import RateLimitCounter
from software_dna.server.services.common import Context, precise_now
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["ADDRESS_PREFIX", "CounterState", "address_counter", "counter_state", "hit",
           "hit_address", "refund", "require_address_open", "require_open", "reset",
           "reset_keys"]

#: The key prefix of the per-network counters.
ADDRESS_PREFIX = "addr:"


#: Seconds after which any counter's bucket is swept, whatever its key: longer than
#: every window these counters use (seconds to an hour; a setting above a week is refused
#: by no one, but counts older than this are forgotten).
SWEEP_AFTER = 7 * 86400


def _serialize(session: Session, key: str) -> None:
    """Hold every other worker's :func:`hit` of ``key`` until this transaction ends."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                        {"key": "sdna-rate-limit:" + key})
    # SQLite: every transaction starts with BEGIN IMMEDIATE (one writer at a time).


def _upsert(session: Session, key: str, second: int) -> None:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RateLimitCounter).values(key=key, window_start=second, count=1)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[RateLimitCounter.key, RateLimitCounter.window_start],
        set_={"count": RateLimitCounter.count + 1},
    ))


def hit(session: Session, key: str, *, limit: int, window: int, now: float | None = None,
        commit: bool = True) -> None:
    """Count one attempt for ``key``; raise 429 ``rate_limited`` past ``limit`` per ``window``.

    Commits the session (an attempt let through counts even if the caller
    fails later; a refused one is not counted).  With ``commit=False`` an
    attempt let through is left in the caller's transaction, the key's lock
    held until it ends: it counts once the caller commits, and not if it
    rolls back (for callers that commit every outcome that must count); a
    refusal still commits.

    Args:
        key: what is limited, e.g. ``"lic:<id>"``.
        limit: attempts let through in any span of ``window`` seconds.
        window: the span, in seconds.
        now: unix time (seconds) for tests; default the current time.
        commit: False: see above.

    Raises:
        ServiceError: 429 ``rate_limited`` with ``retry_at`` (the whole second
        from which an attempt is let through again, the same for every
        refusal until then) and ``retry_after`` (the seconds until then,
        rounded up: 1 to ``window + 1``).
    """
    now = precise_now().timestamp() if now is None else now
    second = int(now)
    oldest = math.floor(now - window)  # buckets from here on touch the window
    _serialize(session, key)
    _upsert(session, key, second)
    buckets = session.execute(
        select(RateLimitCounter.window_start, RateLimitCounter.count)
        .where(RateLimitCounter.key == key, RateLimitCounter.window_start >= oldest)
        .order_by(RateLimitCounter.window_start.desc())
    ).all()
    if sum(count for _, count in buckets) <= limit:
        if secrets.randbelow(50) == 0:  # now and then, drop buckets no window needs
            # Other keys have windows of their own (a sign-in's is longer than an
            # activation's): only what is older than any window goes, and this key's own.
            # Other keys' rows only in a transaction that ends here: one the caller goes on
            # with must hold no row that another key's holder may wait for.
            own = (RateLimitCounter.key == key) & (RateLimitCounter.window_start < oldest)
            session.execute(delete(RateLimitCounter).where(
                ((RateLimitCounter.window_start < second - SWEEP_AFTER) | own) if commit
                else own))
        if commit:
            session.commit()
        return
    # Refused: take this attempt back out.
    session.execute(
        update(RateLimitCounter)
        .where(RateLimitCounter.key == key, RateLimitCounter.window_start == second)
        .values(count=RateLimitCounter.count - 1)  # >= 0: this attempt was just added
    )
    session.commit()
    earlier = [(start, count - (1 if start == second else 0)) for start, count in buckets]
    raise _refusal(_lifts(earlier, limit, window) or second + 1, now)


def _refusal(lifts: int, now: float) -> ServiceError:
    return ServiceError(
        Code.RATE_LIMITED, "Too many activation attempts. Wait and try again later.",
        retry_after=max(1, math.ceil(lifts - now)),
        retry_at=datetime.fromtimestamp(lifts, timezone.utc),
    )


def require_open(session: Session, key: str, *, limit: int, window: int,
                 now: float | None = None) -> None:
    """Raise the 429 :func:`hit` would raise for ``key`` now, without counting anything.

    One read, no lock and no write: what passes here is not an attempt of
    ``key``.  The answer is :func:`hit`'s for the same counter at the same
    moment (same ``retry_at``), so a client cannot tell from a refusal
    whether its attempt would have been counted.

    Args:
        key, limit, window, now: as for :func:`hit`.

    Raises:
        ServiceError: 429 ``rate_limited`` (see :func:`hit`).
    """
    now = precise_now().timestamp() if now is None else now
    lifts = _lifts(_buckets(session, key, math.floor(now - window)), limit, window)
    if lifts is not None:
        raise _refusal(lifts, now)


def _buckets(session: Session, key: str, oldest: int) -> list[tuple[int, int]]:
    """``(second, count)`` of ``key`` from ``oldest`` on, newest first."""
    return [(int(start), int(count)) for start, count in session.execute(
        select(RateLimitCounter.window_start, RateLimitCounter.count)
        .where(RateLimitCounter.key == key, RateLimitCounter.window_start >= oldest)
        .order_by(RateLimitCounter.window_start.desc())
    ).all()]


def _lifts(buckets: list[tuple[int, int]], limit: int, window: int) -> int | None:
    """The whole second from which one more attempt is let through (None: now).

    ``buckets`` are ``(second, count)`` newest first, those still touching the
    window.  The next attempt passes once the bucket holding the limit-th
    newest attempt is out of the window: ``floor(t - window) > second``, so
    from ``second + 1 + window`` on -- a whole second, the same for every
    refusal until an attempt is let through.
    """
    seen = 0
    for start, count in buckets:
        seen += count
        if seen >= limit:
            return start + 1 + window
    return None


def hit_address(session: Session, ctx: Context, client_address: str | None, *,
                limit: int | None = None, window: int | None = None) -> None:
    """Count one attempt from ``client_address``'s network (:func:`hit`); None: not counted.

    The counter is ``addr:`` + :meth:`Vault.address_key` (the keyed hash of
    the network, so every address of one IPv6 ``/64`` -- by default -- and an
    IPv4 address in either notation share it).

    Args:
        client_address: the address the server received the request from
            (any string: one that is not an IP address counts as one shared
            network).
        limit: attempts per window (default ``rate_limit_address_attempts``).
        window: seconds (default ``rate_limit_window``).

    Raises:
        ServiceError: 429 ``rate_limited`` (see :func:`hit`).
    """
    if not client_address:
        return
    settings = ctx.settings
    hit(session, address_counter(ctx, client_address),
        limit=settings.rate_limit_address_attempts if limit is None else limit,
        window=settings.rate_limit_window if window is None else window)


def require_address_open(session: Session, ctx: Context, client_address: str | None) -> None:
    """:func:`require_open` on ``client_address``'s network counter (None: nothing to check).

    For the attempts that do not count toward the network's limit but must
    not pass while it is reached (the answer would tell a guess from a right
    key). Limit and window: as :func:`hit_address` by default.

    Raises:
        ServiceError: 429 ``rate_limited`` (see :func:`hit`).
    """
    if not client_address:
        return
    settings = ctx.settings
    require_open(session, address_counter(ctx, client_address),
                 limit=settings.rate_limit_address_attempts, window=settings.rate_limit_window)


def address_counter(ctx: Context, client_address: str) -> str:
    """The counter key of ``client_address``'s network (``addr:<keyed hash>``)."""
    return ADDRESS_PREFIX + ctx.vault.address_key(client_address)


@dataclass(frozen=True)
class CounterState:
    """One counter as :func:`hit` would see it now.

    ``count``: attempts let through in the window; ``locked_until``: the
    instant (aware UTC, a whole second) from which :func:`hit` lets an
    attempt through again, None when the next attempt would pass.
    """

    key: str
    count: int
    limit: int
    window: int
    locked_until: datetime | None


def counter_state(session: Session, key: str, *, limit: int, window: int,
                  now: float | None = None) -> CounterState:
    """What :func:`hit` would answer for ``key`` now, without counting anything.

    ``locked_until`` is exactly the ``retry_at`` a refusal of :func:`hit` at
    this moment carries, so the vendor sees what the SDK is told.
    """
    now = precise_now().timestamp() if now is None else now
    buckets = _buckets(session, key, math.floor(now - window))
    lifts = _lifts(buckets, limit, window)
    return CounterState(key=key, count=sum(count for _, count in buckets), limit=limit,
                        window=window,
                        locked_until=(datetime.fromtimestamp(lifts, timezone.utc)
                                      if lifts is not None else None))


def refund(session: Session, key: str, *, now: float | None = None) -> None:
    """Take back one attempt :func:`hit` counted for ``key`` (it turned out good). No commit.

    For limits on failures only (panel sign-ins): :func:`hit` counts every
    attempt up front, so concurrent guesses can never pass the limit, and a
    successful one is taken back here.
    """
    second = int(precise_now().timestamp() if now is None else now)
    _serialize(session, key)
    newest = session.scalar(
        select(func.max(RateLimitCounter.window_start))
        .where(RateLimitCounter.key == key, RateLimitCounter.window_start <= second,
               RateLimitCounter.count > 0))
    if newest is not None:
        session.execute(update(RateLimitCounter)
                        .where(RateLimitCounter.key == key,
                               RateLimitCounter.window_start == newest)
                        .values(count=RateLimitCounter.count - 1))


def reset(session: Session, key: str) -> None:
    """Forget every counter of ``key`` (e.g. after the vendor unlocked it). Commits."""
    reset_keys(session, [key])
    session.commit()


def reset_keys(session: Session, keys: list[str]) -> dict[str, int]:
    """Forget the counters of ``keys``; returns the attempts forgotten per key. No commit."""
    forgotten: dict[str, int] = {}
    for key in keys:
        _serialize(session, key)
        total = session.scalar(select(func.coalesce(func.sum(RateLimitCounter.count), 0))
                               .where(RateLimitCounter.key == key))
        session.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))
        forgotten[key] = int(total or 0)
    return forgotten
