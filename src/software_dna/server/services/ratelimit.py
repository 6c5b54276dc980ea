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
Keys are ``lic:<license id>`` and ``addr:<keyed hash of the client address>``
(no address is stored in clear).
"""

from __future__ import annotations

import math
import secrets

from sqlalchemy import delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from software_dna.server.models import RateLimitCounter
from software_dna.server.services.common import precise_now
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["hit", "reset"]


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


def hit(session: Session, key: str, *, limit: int, window: int, now: float | None = None) -> None:
    """Count one attempt for ``key``; raise 429 ``rate_limited`` past ``limit`` per ``window``.

    Commits the session (an attempt let through counts even if the caller
    fails later; a refused one is not counted).

    Args:
        key: what is limited, e.g. ``"lic:<id>"``.
        limit: attempts let through in any span of ``window`` seconds.
        window: the span, in seconds.
        now: unix time (seconds) for tests; default the current time.

    Raises:
        ServiceError: 429 ``rate_limited`` with ``retry_after`` (whole seconds
        until an attempt is let through again, at most ``window + 1``).
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
            session.execute(delete(RateLimitCounter).where(RateLimitCounter.window_start < oldest))
        session.commit()
        return
    # Refused: take this attempt back out.
    session.execute(
        update(RateLimitCounter)
        .where(RateLimitCounter.key == key, RateLimitCounter.window_start == second)
        .values(count=RateLimitCounter.count - 1)  # >= 0: this attempt was just added
    )
    session.commit()
    # The next attempt passes once the bucket holding the limit-th newest attempt is
    # out of the window: floor(t - window) > that bucket's second.
    seen = 0
    lifts = now + 1
    for start, count in buckets:
        seen += count - (1 if start == second else 0)
        if seen >= limit:
            lifts = start + 1 + window
            break
    raise ServiceError(
        Code.RATE_LIMITED, "Too many activation attempts. Wait and try again later.",
        retry_after=max(1, math.ceil(lifts - now)),
    )


def reset(session: Session, key: str) -> None:
    """Forget every counter of ``key`` (e.g. after the vendor unlocked it). Commits."""
    session.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))
    session.commit()
