"""Usage counts: how many validations, activations and trials, per product, day and outcome.

Counting must cost nothing on the hot path, so each process counts in memory
(:class:`UsageCounter`: a dict increment under a lock) and adds its counts to
the ``usage_counts`` table every few seconds with :func:`flush` (one upsert,
``count = count + n``, so any number of workers add up, on SQLite and on
PostgreSQL). The app flushes from a background task and once more at
shutdown; the CLI and the worker flush what they counted before they exit.

Nothing here is personal data: a day, a product id, an event name and an
outcome (``ok`` or a protocol refusal code).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from software_dna.server.models import Activation, License, UsageCount

__all__ = [
    "ACTIVATION",
    "OK",
    "TRIAL_CONVERTED",
    "TRIAL_STARTED",
    "VALIDATION",
    "DailyCount",
    "UsageCounter",
    "activation_product",
    "add_counts",
    "counter_of",
    "daily_counts",
    "flush",
]

#: Event names (``UsageCount.event``).
VALIDATION = "validation"
ACTIVATION = "activation"
TRIAL_STARTED = "trial_started"
TRIAL_CONVERTED = "trial_converted"
#: The outcome of a request that succeeded (refusals count under their error code).
OK = "ok"

#: The bounds of the table's columns: longer names are cut, never refused.
_PRODUCT_MAX, _EVENT_MAX, _OUTCOME_MAX = 64, 32, 40

_Key = tuple[date, str, str, str]  # day, product_id, event, outcome


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _next_midnight() -> float:
    """The Unix time at which the current UTC day ends."""
    return (time.time() // 86400 + 1) * 86400


class UsageCounter:
    """The counts of one process not yet added to the database (thread-safe).

    One per app (``app.state.usage``) or per CLI run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[_Key, int] = {}
        # Today (UTC) and when it ends, so a count does not build a date each time.
        self._day = _today()
        self._day_ends = _next_midnight()

    def record(self, event: str, outcome: str, product_id: str = "", *,
               day: date | None = None) -> None:
        """Count one ``event`` that ended with ``outcome`` for ``product_id`` today (UTC).

        Args:
            event: :data:`VALIDATION`, :data:`ACTIVATION`, :data:`TRIAL_STARTED`,
                :data:`TRIAL_CONVERTED` (any short name).
            outcome: :data:`OK` or a refusal code.
            product_id: the product, ``""`` when the request named no known one.
            day: the UTC day to count it on (default: today; tests pass one).
        """
        if day is None:
            if time.time() >= self._day_ends:
                self._day, self._day_ends = _today(), _next_midnight()
            day = self._day
        key = (day, product_id[:_PRODUCT_MAX], event[:_EVENT_MAX], outcome[:_OUTCOME_MAX])
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def take(self) -> dict[_Key, int]:
        """Everything counted so far, leaving the counter empty."""
        with self._lock:
            counts, self._counts = self._counts, {}
        return counts

    def give_back(self, counts: Mapping[_Key, int]) -> None:
        """Put counts that could not be written back, to be flushed later."""
        with self._lock:
            for key, n in counts.items():
                self._counts[key] = self._counts.get(key, 0) + n

    def pending(self) -> int:
        """How many events are counted and not yet flushed."""
        with self._lock:
            return sum(self._counts.values())


class _Uncounted(UsageCounter):
    """Counts nothing: for an app assembled without a counter (no ``state.usage``)."""

    def record(self, event: str, outcome: str, product_id: str = "", *,
               day: date | None = None) -> None:
        """Do nothing."""


_UNCOUNTED = _Uncounted()


def counter_of(app_state: object) -> UsageCounter:
    """The app's counter (``app.state.usage``, set by ``create_app``), else one that counts
    nothing (routers mounted on another app)."""
    counter = getattr(app_state, "usage", None)
    return counter if isinstance(counter, UsageCounter) else _UNCOUNTED


def add_counts(session: Session, counts: Mapping[_Key, int]) -> None:
    """Add ``counts`` to the table in one upsert (``count = count + n``); no commit.

    Rows are written in key order, so two workers flushing the same keys
    at once wait for each other instead of deadlocking (PostgreSQL).

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database refused or is unreachable.
    """
    if not counts:
        return
    rows = [{"day": day, "product_id": product, "event": event, "outcome": outcome,
             "count": n} for (day, product, event, outcome), n in sorted(counts.items())]
    dialect = session.get_bind().dialect.name
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    stmt = insert(UsageCount)
    stmt = stmt.on_conflict_do_update(
        index_elements=[UsageCount.day, UsageCount.product_id, UsageCount.event,
                        UsageCount.outcome],
        set_={"count": UsageCount.count + stmt.excluded.count},
    )
    session.execute(stmt, rows)


def flush(session: Session, counter: UsageCounter) -> int:
    """Add what ``counter`` holds to the database and commit; returns the events written.

    On a database error the counts go back into the counter (nothing is lost
    while the process lives) and the error propagates.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: as :func:`add_counts`.
    """
    counts = counter.take()
    if not counts:
        return 0
    try:
        add_counts(session, counts)
        session.commit()
    except BaseException:
        session.rollback()
        counter.give_back(counts)
        raise
    return sum(counts.values())


def activation_product(sessions: Callable[[], Session], activation_id: str) -> str:
    """The product of an activation (``""`` if there is none), for counting a refusal.

    Only for a request that authenticated as the activation (a refusal after
    the secret matched): an id that anyone can make up never names a row.
    """
    session = sessions()
    try:
        found = session.scalar(select(License.product_id)
                               .join(Activation, Activation.license_id == License.id)
                               .where(Activation.id == activation_id))
        return found or ""
    finally:
        session.close()


@dataclass(frozen=True)
class DailyCount:
    """One row of :func:`daily_counts`: ``count`` events ``event``/``outcome`` on ``day``."""

    day: date
    event: str
    outcome: str
    count: int


def daily_counts(session: Session, *, days: int = 30, product_id: str | None = None,
                 events: Iterable[str] | None = None,
                 today: date | None = None) -> list[DailyCount]:
    """The flushed counts of the last ``days`` days (today included), summed over products.

    Args:
        days: how many days back (1 or more).
        product_id: only this product (None: all).
        events: only these events (None: all).
        today: the last day (default: today, UTC).

    Returns:
        :class:`DailyCount` rows ordered by day, event, outcome.
    """
    last = today or _today()
    first = last - timedelta(days=max(days, 1) - 1)
    query = (select(UsageCount.day, UsageCount.event, UsageCount.outcome,
                    func.sum(UsageCount.count))
             .where(UsageCount.day >= first, UsageCount.day <= last)
             .group_by(UsageCount.day, UsageCount.event, UsageCount.outcome)
             .order_by(UsageCount.day, UsageCount.event, UsageCount.outcome))
    if product_id is not None:
        query = query.where(UsageCount.product_id == product_id)
    if events is not None:
        query = query.where(UsageCount.event.in_(list(events)))
    return [DailyCount(day=d, event=e, outcome=o, count=int(n or 0))
            for d, e, o, n in session.execute(query)]
