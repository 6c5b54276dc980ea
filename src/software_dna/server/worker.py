"""The outbox worker: delivers what the outbox holds and runs the scheduled jobs.

``software-dna server worker`` runs one (and ``server run`` one per server
process, in a thread, unless ``--no-worker``).  Any number of workers may run
against one database: an item is claimed by one conditional ``UPDATE``
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL) with a lease, and a scheduled job
by moving its ``next_run_at`` forward, so each item and each due time is
handled by one worker (docs/commerce.md, "The outbox and the worker").

One pass (:meth:`Worker.run_once`):

1. run the scheduled jobs that are due (at most every ``job_poll`` seconds);
2. claim up to ``batch`` due items and commit the claim (lease ``lease`` s);
3. deliver each outside any transaction with its channel's handler, after
   renewing its lease (so the lease outlasts one delivery, not the batch);
4. record each outcome (:func:`services.outbox.finish`), one commit per item.

A worker killed between 3 and 4 leaves its lease to expire; another worker
then delivers the item again with the same id.  That is the only repeat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence

from sqlalchemy.orm import Session, sessionmaker

from software_dna.server.models import OutboxItem
from software_dna.server.services import mailer, outbox, schedule, webhooks
from software_dna.server.services.common import Context, new_id

__all__ = ["DEFAULT_BATCH", "DEFAULT_LEASE", "DEFAULT_POLL", "Handler", "Worker",
           "default_handlers"]

log = logging.getLogger("software_dna.server.worker")

Handler = outbox.Handler

#: Items claimed per pass.
DEFAULT_BATCH = 20
#: Seconds an item stays claimed (renewed before its delivery): longer than one delivery
#: may take (the webhook call's connect + read timeouts, an SMTP exchange), so no other
#: worker takes it over meanwhile.
DEFAULT_LEASE = 120
#: Seconds between two passes when nothing was due.
DEFAULT_POLL = 1.0
#: Seconds between two looks at the scheduled jobs.
DEFAULT_JOB_POLL = 15.0

def default_handlers(sessions: sessionmaker[Session]) -> dict[str, Handler]:
    """The handlers per channel: webhooks and e-mail."""
    return {outbox.WEBHOOK: webhooks.deliverer(sessions), outbox.EMAIL: mailer.deliverer(sessions)}


class Worker:
    """Delivers outbox items and runs scheduled jobs; safe to run several at once.

    Args:
        ctx: the context (decrypts payloads and secrets).
        sessions: the session factory.
        handlers: channel -> ``handler(ctx, item, payload) -> Outcome``; only
            these channels are claimed (default: :func:`default_handlers`).
        jobs: the scheduled jobs (default: :data:`schedule.DEFAULT_JOBS`; ``()``: none).
        batch: items claimed per pass.
        lease: seconds an item stays claimed (longer than one delivery).
        poll: seconds to wait when nothing was due.
        job_poll: seconds between two looks at the jobs (0: every pass).
    """

    def __init__(self, ctx: Context, sessions: sessionmaker[Session],
                 handlers: Mapping[str, Handler] | None = None,
                 jobs: Sequence[schedule.Job] = schedule.DEFAULT_JOBS, *,
                 batch: int = DEFAULT_BATCH, lease: int = DEFAULT_LEASE,
                 poll: float = DEFAULT_POLL, job_poll: float = DEFAULT_JOB_POLL) -> None:
        if batch < 1 or lease < 1 or poll < 0 or job_poll < 0:
            raise ValueError("batch and lease must be >= 1, poll and job_poll >= 0")
        self.ctx = ctx
        self.sessions = sessions
        self.handlers = dict(handlers) if handlers is not None else default_handlers(sessions)
        self.jobs = tuple(jobs)
        self.batch = batch
        self.lease = lease
        self.poll = poll
        self.job_poll = job_poll
        #: Set to stop after the item in flight (graceful stop).
        self.stopping = threading.Event()
        self._jobs_at: float | None = None

    def run_jobs(self) -> dict[str, int]:
        """Run the due scheduled jobs now; ``{name: result}`` of those this worker ran."""
        self._jobs_at = time.monotonic()
        return schedule.run_due(self.sessions, self.ctx, self.jobs) if self.jobs else {}

    def run_once(self) -> int:
        """One pass: due jobs, then claim, deliver and record a batch.

        Returns:
            The number of items attempted.
        """
        if self.jobs and (self._jobs_at is None
                          or time.monotonic() - self._jobs_at >= self.job_poll):
            self.run_jobs()
        if not self.handlers:
            return 0
        claim = new_id("wk")
        with self.sessions() as session:
            items = outbox.claim(session, worker=claim, limit=self.batch, lease=self.lease,
                                 channels=sorted(self.handlers))
            session.expunge_all()
        done = 0
        for index, item in enumerate(items):
            if self.stopping.is_set():
                with self.sessions() as session:
                    outbox.release(session, claim, [i.id for i in items[index:]])
                break
            with self.sessions() as session:
                # The lease covers one delivery: renewed before each, so a slow batch never
                # lets another worker take over an item this one is about to send.
                if not outbox.renew(session, item.id, claim, lease=self.lease):
                    continue
            self._deliver(item, claim)
            done += 1
        return done

    def _deliver(self, item: OutboxItem, claim: str) -> None:
        started = time.monotonic()
        try:
            payload = outbox.payload_of(self.ctx, item)
        except LookupError:
            outcome = outbox.Outcome(False, error="payload dropped", permanent=True)
        except Exception as exc:  # an unreadable payload fails this item, never the worker
            outcome = outbox.Outcome(False, error=type(exc).__name__, permanent=True)
        else:
            try:
                outcome = self.handlers[item.channel](self.ctx, item, payload)
            except Exception as exc:  # a handler's bug is a failed attempt, retried
                outcome = outbox.Outcome(False, error=type(exc).__name__)
        elapsed = int((time.monotonic() - started) * 1000)
        with self.sessions() as session:
            done = outbox.finish(session, item.id, claim, outcome, duration_ms=elapsed)
            status = done.status if done is not None else "gone"
        # Ids, channel, topic and codes only: never an address or a payload.
        log.info("%s %s %s attempt %d: %s%s%s -> %s (%d ms)", item.id, item.channel, item.topic,
                 item.attempts, "delivered" if outcome.delivered else "failed",
                 f" {outcome.status_code}" if outcome.status_code is not None else "",
                 f" ({outcome.error})" if outcome.error else "", status, elapsed)

    def run(self, stop: threading.Event | None = None) -> None:
        """Pass after pass until ``stop`` (or :attr:`stopping`) is set.

        The item in flight when asked to stop is finished and recorded; the
        rest of the batch is given back at once.  An error of one pass
        (the database away) is logged and the next pass tried after ``poll``.
        """
        if stop is not None:
            self.stopping = stop
        while not self.stopping.is_set():
            try:
                done = self.run_once()
            except Exception as exc:  # the database went away: try again, never die
                log.warning("worker pass failed: %s", type(exc).__name__)
                done = 0
            if done == 0:
                self.stopping.wait(self.poll)

    def start(self) -> threading.Thread:
        """Run :meth:`run` in a daemon thread (``server run``); stop it with :meth:`stop`."""
        thread = threading.Thread(target=self.run, name="sdna-outbox-worker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        """Ask :meth:`run` to stop after the item in flight."""
        self.stopping.set()
