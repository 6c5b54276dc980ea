"""Reminders, one-click unsubscribe and erasure of the sent log, on SQLite and PostgreSQL.

A real SMTP server (aiosmtpd) receives the mails; the app runs in-process with an
injected clock (services.common.clock_override); the scheduled job
(emails.queue_reminders) runs many times and from two threads at once, and the
worker's e-mail handler (mailer.deliver) is driven by tests/server/mailing.py.
"""

from __future__ import annotations

import re
import secrets
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, text

from software_dna.server.crypto import DecryptionError
from software_dna.server.db import checkpoint_job
from software_dna.server.models import MailOptOut
from software_dna.server.services import emails
from software_dna.server.services.common import utcnow
from tests.server.helpers import Api, session_for
from tests.smtp import Mailbox, mailed_link

from ..inprocess import InProcessServer
from .mailing import Clock, drain, items, mail_env, moving_clock

REMINDER = re.compile(r"ends in (\d+) days?$")


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, database_url: str,
        mailbox: Mailbox) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("reminders"), database_url=database_url,
                         env=mail_env(mailbox)) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: InProcessServer) -> Iterator[Api]:
    client = Api.for_server(srv)
    yield client
    client.close()


def _address(who: str = "buyer") -> str:
    return f"{who}.{secrets.token_hex(4)}@example.org"


def _to(box: Mailbox, address: str) -> list[EmailMessage]:
    with box.lock:
        return [m for m in box.messages if m["To"] == address]


def _reminders(box: Mailbox, address: str) -> list[EmailMessage]:
    """The reminders mailed to ``address``, in order."""
    return [m for m in _to(box, address) if REMINDER.search(str(m["Subject"]))]


def _reminder_days(box: Mailbox, address: str) -> list[int]:
    """The "N days" of each reminder mailed to ``address``, in order."""
    return [int(found[1]) for m in _to(box, address)
            if (found := REMINDER.search(str(m["Subject"])))]


def _job(srv: InProcessServer, workers: int = 2) -> int:
    """The reminder job run by ``workers`` threads at once; returns how many mails it queued."""
    state = srv.app.state.sdna
    barrier = threading.Barrier(workers)
    counts: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with state.sessions() as session:
                barrier.wait(timeout=30)
                counts.append(emails.queue_reminders(session, state.ctx, utcnow()))
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return sum(counts)


def _confirmed_user(srv: InProcessServer, api: Api, box: Mailbox, pid: str, key: str,
                    email: str, *, machine: str, confirm: bool = True) -> None:
    """Activate ``machine`` with ``email`` (consent) and confirm it through the mailed link."""
    before = len(box.messages)
    made = api.activate(pid, key, machine=machine, email=email, consent=True)
    assert made.status_code in (200, 201), made.text
    message = box.wait_for(before + 1)[before]
    assert message["To"] == email
    if confirm:
        with session_for(srv) as http:
            done = http.post(mailed_link(message), timeout=30)
        assert done.status_code == 200, done.text


def _run_until(srv: InProcessServer, clock: Clock, until: datetime, *,
               step: timedelta = timedelta(hours=6)) -> None:
    """Every ``step`` until ``until``: run the job (two workers, twice) and the worker's loop."""
    while clock() <= until:
        _job(srv)
        _job(srv, workers=1)
        drain(srv)
        clock.advance(seconds=step.total_seconds())


def test_reminders_at_7_3_1_once_and_again_after_renewal(srv: InProcessServer, api: Api,
                                                         mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    buyer, user, unconfirmed = _address(), _address("user"), _address("unconfirmed")
    with moving_clock() as clock:
        start = clock()
        end = start + timedelta(days=10)
        lic = srv.admin.issue_license(pid, seats=3, expires_at=end, email=buyer)
        _confirmed_user(srv, api, mailbox, pid, lic["license_key"], user, machine="m1")
        _confirmed_user(srv, api, mailbox, pid, lic["license_key"], unconfirmed,
                        machine="m2", confirm=False)
        # The buyer activates too, with the same address: one reminder, not two.
        _confirmed_user(srv, api, mailbox, pid, lic["license_key"], buyer, machine="m3")
        _run_until(srv, clock, start + timedelta(days=9, hours=18))
        assert _reminder_days(mailbox, buyer) == [7, 3, 1]
        assert _reminder_days(mailbox, user) == [7, 3, 1]
        assert _reminder_days(mailbox, unconfirmed) == []
        reminder = _reminders(mailbox, buyer)[0]
        assert reminder["List-Unsubscribe"].startswith("<http")
        assert "/v1/unsubscribe/" in reminder["List-Unsubscribe"]
        assert reminder["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert buyer not in reminder["List-Unsubscribe"]
        body = reminder.get_body(("plain",))
        assert body is not None and lic["key_hint"][-4:] in body.get_content()

        # Renewed before its end: reminded again for the new end, once per day again.
        srv.admin.extend_license(lic["id"], days=30)
        new_end = end + timedelta(days=30)
        _run_until(srv, clock, new_end - timedelta(days=6, hours=12))
        assert _reminder_days(mailbox, buyer) == [7, 3, 1, 7]
        assert _reminder_days(mailbox, user) == [7, 3, 1, 7]
        # Many more runs at the same moment change nothing.
        for _ in range(5):
            assert _job(srv) == 0
        assert drain(srv) == []
    sent = [e for e in srv.admin.mail_log(license_id=lic["id"], limit=100)
            if e["template"] == "expiry_reminder"]
    assert len(sent) == 8 and {e["status"] for e in sent} == {"delivered"}
    assert len({e["id"] for e in sent}) == 8


def test_only_the_nearest_due_day_is_sent(srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    srv.admin.update_product(pid, reminder_days=[14, 7, 3, 1])
    buyer = _address()
    with moving_clock() as clock:
        lic = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=2), email=buyer)
        evaluation = srv.admin.issue_license(pid, kind="evaluation", expires_after_days=10,
                                             email=_address())
        perpetual = srv.admin.issue_license(pid, email=_address())
        _run_until(srv, clock, clock() + timedelta(days=1, hours=12))
    assert _reminder_days(mailbox, buyer) == [2, 1]  # the 3-day reminder, then the 1-day one
    keys = [i.dedup_key for i in items(srv, license_id=lic["id"], topic="expiry_reminder")]
    assert [k.split(":")[3] for k in keys if k] == ["3", "1"]
    # No end yet (an evaluation before its first use), or none at all: no reminder.
    for other in (evaluation, perpetual):
        assert [i.topic for i in items(srv, license_id=other["id"])] == ["license_key"]


def test_trial_ending_for_evaluations(srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    buyer = _address()
    with moving_clock() as clock:
        lic = srv.admin.issue_license(pid, kind="evaluation", expires_after_days=5, email=buyer)
        srv.admin.extend_license(lic["id"], until=clock() + timedelta(days=5))
        _run_until(srv, clock, clock() + timedelta(days=4, hours=12))
    subjects = [str(m["Subject"]) for m in _to(mailbox, buyer)]
    assert [s for s in subjects if "evaluation ends in" in s] == [
        "Your Acme Editor evaluation ends in 5 days", "Your Acme Editor evaluation ends in 3 days",
        "Your Acme Editor evaluation ends in 1 day"]


def _unsubscribe_path(message: EmailMessage) -> str:
    found = re.match(r"^<https?://[^/]+(/v1/unsubscribe/[^>]+)>$", message["List-Unsubscribe"])
    assert found, message["List-Unsubscribe"]
    return found[1]


def _opt_outs(srv: InProcessServer, license_id: str) -> int:
    with srv.app.state.sdna.sessions() as session:
        return len(list(session.scalars(select(MailOptOut).where(
            MailOptOut.license_id == license_id))))


def test_one_click_unsubscribe_is_honoured(srv: InProcessServer, mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    buyer = _address()
    with moving_clock() as clock:
        lic = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=5), email=buyer)
        _run_until(srv, clock, clock())
        assert _reminder_days(mailbox, buyer) == [5]
        path = _unsubscribe_path(_reminders(mailbox, buyer)[-1])
        with session_for(srv) as http:
            page = http.get(srv.url + path, headers={"Accept": "text/html"}, timeout=30)
            assert page.status_code == 200 and 'method="post"' in page.text
            assert _opt_outs(srv, lic["id"]) == 0  # a GET (a link scanner) changes nothing
            # RFC 8058: the mail client's POST, a form body.
            done = http.post(srv.url + path, data={"List-Unsubscribe": "One-Click"},
                             timeout=30)
            assert done.status_code == 200, done.text
            assert done.json() == {"unsubscribed": True, "already": False}
            again = http.post(srv.url + path, data={"List-Unsubscribe": "One-Click"},
                              timeout=30)
            assert again.status_code == 200 and again.json()["already"] is True
            button = http.post(srv.url + path, headers={"Accept": "text/html"}, timeout=30)
            assert button.status_code == 200 and "Unsubscribed" in button.text
        assert _opt_outs(srv, lic["id"]) == 1
        _run_until(srv, clock, clock() + timedelta(days=4, hours=12))
    assert _reminder_days(mailbox, buyer) == [5]  # no 3-day or 1-day reminder
    # Another license of the same buyer is not affected.
    with moving_clock() as clock:
        other = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=1), email=buyer)
        _run_until(srv, clock, clock())
    assert _reminder_days(mailbox, buyer) == [5, 1]
    assert len([i for i in items(srv, license_id=other["id"])]) == 2


def test_a_mail_queued_before_the_opt_out_is_cancelled(srv: InProcessServer,
                                                       mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    buyer = _address()
    state = srv.app.state.sdna
    with moving_clock() as clock:
        lic = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=2), email=buyer)
        drain(srv)  # the key
        assert _job(srv) == 1
        url = emails.unsubscribe_url(state.ctx, lic["id"], state.ctx.vault.email_index(buyer))
        assert url is not None
        with session_for(srv) as http:
            assert http.post(url, timeout=30).status_code == 200
        (attempt,) = drain(srv)
    assert not attempt.outcome.delivered and attempt.outcome.permanent
    assert attempt.outcome.error == "unsubscribed"
    assert _reminder_days(mailbox, buyer) == []
    (item,) = items(srv, license_id=lic["id"], topic="expiry_reminder")
    assert item.status == "failed" and item.last_error == "unsubscribed"


def test_forged_unsubscribe_tokens_are_refused(srv: InProcessServer) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid)
    lic = srv.admin.issue_license(pid)
    ctx = srv.app.state.sdna.ctx
    index = ctx.vault.email_index("victim@example.org")
    genuine = emails.unsubscribe_token(ctx, lic["id"], index)
    license_id, hashed, mac = genuine.split(".")
    other = emails.unsubscribe_token(ctx, lic["id"], ctx.vault.email_index("x@example.org"))
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    forged = [
        "nonsense", "a.b.c", f"{license_id}.{hashed}", f"{license_id}.{hashed}.{flipped}",
        f"lic_other.{hashed}.{mac}", f"{license_id}.{other.split('.')[1]}.{mac}",
        f"{license_id}.{hashed}.{mac}=", f"{license_id}.{hashed[:-4]}.{mac}",
        f"{license_id}.{hashed}.{mac}.x", "." * 3, "%00",
    ]
    with session_for(srv) as http:
        for token in forged:
            posted = http.post(f"{srv.url}/v1/unsubscribe/{token}",
                               data={"List-Unsubscribe": "One-Click"}, timeout=30)
            assert posted.status_code == 400, (token, posted.text)
            assert posted.json()["error"]["code"] == "invalid_request"
            page = http.get(f"{srv.url}/v1/unsubscribe/{token}", timeout=30)
            assert page.status_code == 400 and "not valid" in page.text
        too_long = http.post(f"{srv.url}/v1/unsubscribe/{'x' * 300}", timeout=30)
        assert 400 <= too_long.status_code < 500
        json_body = http.post(f"{srv.url}/v1/unsubscribe/{genuine}", json={"x": 1}, timeout=30)
        assert json_body.status_code == 200
        assert http.post(f"{srv.url}/v1/unsubscribe/{genuine}", data="x=1", timeout=30,
                         headers={"Content-Type": "text/plain"}).status_code == 415
    assert _opt_outs(srv, lic["id"]) == 1  # only the genuine token


# -- erasure


def _raw_database(srv: InProcessServer) -> bytes:
    """Every byte the database holds: the SQLite files (after the erasure's checkpoint),
    or every PostgreSQL row as text."""
    engine = srv.app.state.sdna.engine
    if srv.database_url.startswith("sqlite"):
        assert checkpoint_job(engine).flush()
        path = Path(srv.database_url.removeprefix("sqlite:///"))
        return b"".join(Path(str(path) + s).read_bytes() for s in ("", "-wal", "-journal")
                        if Path(str(path) + s).exists())
    with engine.connect() as conn:
        return "\n".join(row for table in inspect(conn).get_table_names()
                         for (row,) in conn.execute(text(f'SELECT t::text FROM "{table}" t'))
                         ).encode()


def _decrypted_values(srv: InProcessServer) -> list[bytes]:
    """Every binary value of every table, decrypted where one of the server's associated
    data forms opens it (outbox rows, end users)."""
    state = srv.app.state.sdna
    out: list[bytes] = []
    with state.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            columns = [c["name"] for c in inspect(conn).get_columns(table)]
            if "id" not in columns:
                continue
            for row in conn.execute(text(f'SELECT * FROM "{table}"')).mappings():
                for value in row.values():
                    if not isinstance(value, (bytes, memoryview)):
                        continue
                    blob = bytes(value)
                    out.append(blob)
                    for aad in (f"outbox:{row['id']}", f"end_user:{row['id']}:email",
                                f"end_user:{row['id']}:registration"):
                        try:
                            out.append(state.ctx.vault.decrypt_field(blob, aad=aad))
                        except (DecryptionError, ValueError):
                            continue
    return out


def test_erasure_removes_the_address_from_the_sent_log(srv: InProcessServer, api: Api,
                                                       mailbox: Mailbox) -> None:
    pid = "rm-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    buyer = f"Erin.{secrets.token_hex(4)}@Example.org"
    mailed = buyer.replace("@Example.org", "@example.org")  # the domain kept lower-case
    state = srv.app.state.sdna
    index = state.ctx.vault.email_index(buyer)
    with moving_clock() as clock:
        first = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=6),
                                        email=buyer)
        second = srv.admin.issue_license(pid, expires_at=clock() + timedelta(days=2),
                                         email=buyer)
        _run_until(srv, clock, clock())
        assert len(_to(mailbox, mailed)) == 4  # two keys, two reminders
        reminder = next(m for m in _to(mailbox, mailed)
                        if second["id"] in str(m["List-Unsubscribe"] or ""))
        with session_for(srv) as http:
            assert http.post(srv.url + _unsubscribe_path(reminder), timeout=30).status_code == 200
        clock.advance(days=4, hours=12)
        assert _job(srv) == 1  # the first license's 3-day reminder: queued, not yet sent
    needles = [buyer.encode(), mailed.encode(), buyer.lower().encode(), index.encode()]
    before = _raw_database(srv) + b"\n".join(_decrypted_values(srv))
    assert mailed.encode() in before and index.encode() in before  # the search sees them

    (person,) = srv.admin.find_end_users(buyer.lower())
    exported = srv.admin.export_end_user(person["id"])
    assert sorted(exported["licenses"]) == sorted([first["id"], second["id"]])
    assert len(exported["mails"]) == 5 and {m["to"] for m in exported["mails"]} == {mailed}
    srv.admin.erase_end_user(person["id"])

    after = _raw_database(srv) + b"\n".join(_decrypted_values(srv))
    for needle in needles:
        assert needle not in after, needle
    log = srv.admin.mail_log(license_id=first["id"]) + srv.admin.mail_log(license_id=second["id"])
    assert len(log) == 5 and all(entry["to"] is None for entry in log)
    assert {e["status"] for e in log} == {"delivered", "cancelled"}
    assert srv.admin.find_end_users(buyer) == []
    assert srv.admin.get_license(first["id"])["erased"] is True
    assert _opt_outs(srv, second["id"]) == 0
    assert drain(srv) == []  # the queued reminder is not sent

