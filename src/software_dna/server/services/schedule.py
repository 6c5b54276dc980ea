"""Scheduled work run by the outbox worker: once per due time, however many workers poll.

A :class:`Job` is a name, an interval in seconds and a function
``fn(session, ctx, now) -> int`` (how many things it did; it commits its own
work).  Each job has a row in ``scheduled_jobs``; a worker runs a job only
after it moved the row's ``next_run_at`` forward by one conditional
``UPDATE ... WHERE next_run_at <= now`` and committed: of several workers
polling at once exactly one sees its update change the row (PostgreSQL
re-checks the condition after the row lock, SQLite serialises writers).  A
job that raises is logged in ``last_error`` and runs again at its next time.

Add a job with one line in :data:`DEFAULT_JOBS` (or pass your own list to
the worker).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from software_dna.server.db import wal_checkpoint
from software_dna.server.models import AuditEntry, ScheduledJob
from software_dna.server.services import emails, events, leases, stores
from software_dna.server.services.common import Context, utcnow

__all__ = ["DEFAULT_JOBS", "Job", "checkpoint_after_erasure", "cull_leases", "run_due"]

log = logging.getLogger("software_dna.server.worker")

_ERROR_LENGTH = 200


@dataclass(frozen=True)
class Job:
    """One periodic job.

    Attributes:
        name: unique name (at most 64 characters; the ``scheduled_jobs`` key).
        interval: seconds between two runs (>= 1).
        fn: ``fn(session, ctx, now) -> int``; commits its own work.
    """

    name: str
    interval: int
    fn: Callable[[Session, Context, datetime], int]


def cull_leases(session: Session, _ctx: Context, now: datetime) -> int:
    """Delete floating leases that lapsed long ago (:func:`leases.cull_expired`)."""
    return leases.cull_expired(session, now)


#: How often the WAL job looks for erasures (seconds).
CHECKPOINT_EVERY = 300


def checkpoint_after_erasure(session: Session, _ctx: Context, now: datetime) -> int:
    """SQLite: empty the WAL when an erasure was committed since the job's last run.

    The process that erased asks for the checkpoint itself
    (:class:`db.CheckpointJob`); this job covers a process that ended first.
    Nothing on PostgreSQL.  Returns 1 when a checkpoint ran to the end.
    """
    engine = session.get_bind()
    if engine.dialect.name != "sqlite":
        return 0
    since = now - timedelta(seconds=2 * CHECKPOINT_EVERY)
    erased = session.scalar(select(AuditEntry.id).where(AuditEntry.action == "end_user.erase",
                                                        AuditEntry.at >= since).limit(1))
    session.rollback()  # no open read transaction while checkpointing
    if erased is None:
        return 0
    return 1 if wal_checkpoint(engine.engine) else 0


#: The jobs every worker runs.
DEFAULT_JOBS: tuple[Job, ...] = (
    Job("leases.cull", 3600, cull_leases),
    Job("wal.checkpoint_after_erasure", CHECKPOINT_EVERY, checkpoint_after_erasure),
    Job("license.expiry_events", 3600, events.expiry_events),
    Job("mail.reminders", 3600, emails.queue_reminders),
    Job("stores.suspend_overdue", 3600, stores.suspend_overdue),
)


def _claim(session: Session, job: Job, now: datetime) -> bool:
    if session.get(ScheduledJob, job.name) is None:
        try:
            with session.begin_nested():
                session.add(ScheduledJob(name=job.name, next_run_at=now, last_run_at=None))
        except IntegrityError:
            pass  # another worker created it first
        session.commit()
    result = session.execute(
        update(ScheduledJob)
        .where(ScheduledJob.name == job.name, ScheduledJob.next_run_at <= now)
        .values(next_run_at=now + timedelta(seconds=max(1, job.interval)), last_run_at=now)
        .execution_options(synchronize_session=False))
    session.commit()
    return int(getattr(result, "rowcount", 0) or 0) == 1


def run_due(sessions: sessionmaker[Session], ctx: Context,
            jobs: Sequence[Job] = DEFAULT_JOBS) -> dict[str, int]:
    """Run every job that is due and claimed by this caller.

    Returns:
        ``{job name: its result}`` for the jobs this caller ran (-1: it raised).
    """
    ran: dict[str, int] = {}
    for job in jobs:
        now = utcnow()
        with sessions() as session:
            if not _claim(session, job, now):
                continue
        with sessions() as session:
            try:
                ran[job.name] = int(job.fn(session, ctx, now))
                error = None
            except Exception as exc:  # a failing job must not stop the worker
                session.rollback()
                log.warning("scheduled job %s failed: %s", job.name, type(exc).__name__)
                ran[job.name] = -1
                error = type(exc).__name__[:_ERROR_LENGTH]  # never the message: it may quote data
            row = session.get(ScheduledJob, job.name, populate_existing=True)
            if row is not None:
                row.last_error = error
                session.commit()
    return ran
