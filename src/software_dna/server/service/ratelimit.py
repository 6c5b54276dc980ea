"""Rate limiting in the database, so that every worker shares the counters.

Fixed windows: the counter of ``(key, window_start)`` is incremented with a
single atomic ``INSERT ... ON CONFLICT DO UPDATE SET count = count + 1
RETURNING count`` (SQLite >= 3.35 and PostgreSQL), committed at once, so
concurrent attempts in any worker are all counted.  Keys are
``lic:<license id>`` and ``addr:<keyed hash of the client address>`` (no
address is stored in clear).
"""

from __future__ import annotations

import secrets
import time

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from software_dna.server.models import RateLimitCounter
from software_dna.server.service._common import ServiceError

__all__ = ["hit", "reset"]


def _upsert(session: Session, key: str, window_start: int) -> int:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(RateLimitCounter).values(key=key, window_start=window_start, count=1)
    upsert = stmt.on_conflict_do_update(
        index_elements=[RateLimitCounter.key, RateLimitCounter.window_start],
        set_={"count": RateLimitCounter.count + 1},
    ).returning(RateLimitCounter.count)
    return int(session.execute(upsert).scalar_one())


def hit(session: Session, key: str, *, limit: int, window: int, now: float | None = None) -> None:
    """Count one attempt for ``key``; raise 429 ``rate_limited`` past ``limit`` per ``window``.

    Commits the session (the attempt counts even if the caller fails later).

    Args:
        key: what is limited, e.g. ``"lic:<id>"``.
        limit: attempts allowed per window.
        window: window length in seconds.
        now: unix time (seconds) for tests; default the current time.

    Raises:
        ServiceError: 429 ``rate_limited`` with ``retry_after`` (seconds until
        the window ends).
    """
    now = time.time() if now is None else now
    window_start = int(now // window) * window
    count = _upsert(session, key, window_start)
    if secrets.randbelow(50) == 0:  # now and then, drop old windows
        session.execute(
            delete(RateLimitCounter).where(RateLimitCounter.window_start < window_start - window)
        )
    session.commit()
    if count > limit:
        retry_after = max(1, int(window_start + window - now + 0.999))
        raise ServiceError(
            429,
            "rate_limited",
            "Too many activation attempts. Wait and try again later.",
            retry_after=retry_after,
        )


def reset(session: Session, key: str) -> None:
    """Forget every counter of ``key`` (e.g. after the vendor unlocked it). Commits."""
    session.execute(delete(RateLimitCounter).where(RateLimitCounter.key == key))
    session.commit()
