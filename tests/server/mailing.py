"""Shared pieces of the mail tests: the server's mail settings, a test clock, and the
worker's e-mail pass run for real on the app's database."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from software_dna.server.models import OutboxItem
from software_dna.server.services import mailer, outbox
from software_dna.server.services.common import Context, clock_override
from software_dna.server.testing import URL
from software_dna.server.worker import Worker

from ..inprocess import InProcessServer
from ..smtp import Mailbox

SENDER = "licenses@vendor.example"


def mail_env(box: Mailbox, *, public_url: bool = True) -> dict[str, str]:
    """The settings that send the server's mail to ``box`` (plain SMTP on 127.0.0.1)."""
    env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(box.port),
           "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": SENDER}
    if public_url:
        env["SOFTWARE_DNA_PUBLIC_URL"] = URL
    return env


class Clock:
    """A clock the test moves (``clock_override``); starts at the real now."""

    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc).replace(microsecond=0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, **delta: float) -> datetime:
        """Move forward by ``timedelta(**delta)``; returns the new now."""
        with self._lock:
            self.now += timedelta(**delta)
            return self.now


@contextmanager
def moving_clock() -> Iterator[Clock]:
    """A :class:`Clock` every service of this process uses for the block."""
    clock = Clock()
    with clock_override(clock):
        yield clock


@dataclass
class Attempt:
    """What one delivery attempt gave."""

    item_id: str
    topic: str
    outcome: outbox.Outcome


def drain(srv: InProcessServer, ctx: Context | None = None) -> list[Attempt]:
    """One pass of the real worker over the due mails (no scheduled jobs): each claimed,
    delivered by ``mailer.deliver`` and recorded; returns what each attempt gave.

    ``ctx``: the context the worker runs with (default the app's; a test may point the
    SMTP settings elsewhere).
    """
    state = srv.app.state.sdna
    attempts: list[Attempt] = []

    def recording(ctx: Context, item: OutboxItem, payload: dict[str, Any]) -> outbox.Outcome:
        outcome = mailer.deliver(ctx, item, payload, sessions=state.sessions)
        attempts.append(Attempt(item.id, item.topic, outcome))
        return outcome

    Worker(ctx or state.ctx, state.sessions, {outbox.EMAIL: recording}, jobs=(),
           batch=100).run_once()
    return attempts


def items(srv: InProcessServer, **where: Any) -> list[OutboxItem]:
    """Outbox e-mail items (``license_id=...``, ``topic=...``), oldest first."""
    state = srv.app.state.sdna
    with state.sessions() as session:
        query = select(OutboxItem).where(OutboxItem.channel == outbox.EMAIL)
        for name, value in where.items():
            query = query.where(getattr(OutboxItem, name) == value)
        return list(session.scalars(query.order_by(OutboxItem.created_at, OutboxItem.id)))
