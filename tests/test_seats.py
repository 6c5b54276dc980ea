"""Seats from the app's side, against the real server: several computers with
roll-over, user seats, the re-activation lock-out (reset from the CLI), and the password
reset by email (a real SMTP server on 127.0.0.1).

The app and its database run in this process and the SDK reaches them with no
socket (tests/inprocess.py); the vendor's CLI works on the same database
(its remote mode, which opens its own connections, is tested in
tests/server/test_cli_vendor.py). The computers are simulated machines
(software_dna.testing: the ``machines`` fixture of its pytest plugin)."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    ActivationLocked,
    ActivationMoved,
    LicenseClient,
    LicenseExpired,
    Mode,
    NoSeatsLeft,
    NotActivated,
    PasswordResetFailed,
    SeatMode,
    UnknownLicenseKey,
    WrongPassword,
)
from software_dna.server import cli
from software_dna.server.testing import URL
from software_dna.testing.plugin import Machines
from tests.inprocess import InProcessServer, unreachable
from tests.smtp import Mailbox, mailed_link
from tests.test_client_e2e import App, make_app, new_product


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


__all__ = ["make_app"]  # the fixture, imported for this module


def issue(server: InProcessServer, product: str, **fields: Any) -> dict[str, Any]:
    answer: dict[str, Any] = server.admin.request("POST", "/licenses",
                                                  json={"product": product, **fields})
    return answer


def vendor_cli(server: InProcessServer, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main([*argv, "--data-dir", str(server.data_dir),
                         "--database-url", server.database_url])
    return code, out.getvalue() + err.getvalue()


# --------------------------------------------------------------------------- several computers


def test_roll_over_moves_the_least_recently_seen_computer(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = new_product(server.admin, refresh_interval=3600,
                                offline_grace_period=7200)
    lic = issue(server, product, seats=2, rollover=True)
    key = lic["license_key"]
    desk = make_app(product, keys, "desk", machine=machines("desk"))
    laptop = make_app(product, keys, "laptop", machine=machines("laptop"))
    desk.client.activate(key)
    laptop.client.activate(key)
    laptop.client.refresh()  # the laptop was seen last: the desk is least recently seen
    tablet = make_app(product, keys, "tablet", machine=machines("tablet"))
    tablet.client.activate(key)  # three computers, two seats: the desk is moved

    # Until its next refresh the desk does not know; it keeps its license offline...
    assert desk.restart().check().mode is Mode.FULL
    # ...and at its next refresh it learns, with a clear error that is kept.
    desk.offset = timedelta(seconds=3700)
    with pytest.raises(ActivationMoved, match="moved to another computer") as moved:
        desk.client.check()
    assert isinstance(moved.value, NotActivated)
    with pytest.raises(ActivationMoved):
        desk.restart().check()

    # Activating again moves it back (the laptop is now least recently seen).
    assert desk.client.activate(key).mode is Mode.FULL
    laptop.offset = timedelta(seconds=3700)
    with pytest.raises(ActivationMoved):
        laptop.client.check()
    # Without roll-over the next computer is refused, and waits for no lease.
    server.admin.update_license(lic["id"], rollover=False)
    with pytest.raises(NoSeatsLeft) as full:
        make_app(product, keys, "tv", machine=machines("tv")).client.activate(key)
    assert full.value.retry_after is None
    assert tablet.client.refresh().mode is Mode.FULL


def test_a_moved_computer_offline_keeps_its_grace_period_and_no_more(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines, tmp_path: Path
) -> None:
    product, keys = new_product(server.admin, refresh_interval=3600,
                                offline_grace_period=7200)
    key = issue(server, product, seats=1, rollover=True)["license_key"]
    laptop = make_app(product, keys, "laptop", machine=machines("laptop"))
    laptop.client.activate(key)
    make_app(product, keys, "phone", machine=machines("phone")).client.activate(key)
    # The laptop, moved, without a network.
    clock = {"offset": timedelta(seconds=3700)}
    offline = LicenseClient(product=product, public_keys=keys, store_path=tmp_path / "laptop",
                            transport=unreachable(), timeout=1.0,
                            machine=machines("laptop"),
                            clock=lambda: datetime.now(timezone.utc) + clock["offset"])
    try:
        assert offline.check().offline_grace_ends_at is not None  # in its grace period
        clock["offset"] = timedelta(seconds=3600 + 7200 + 60)
        with pytest.raises(LicenseExpired, match="grace period ended"):
            offline.check()
    finally:
        offline.close()
    laptop.offset = clock["offset"]
    with pytest.raises(ActivationMoved):
        laptop.client.check()  # online again: told it was moved


# --------------------------------------------------------------------------- user seats


def test_user_seats_share_a_key_and_a_password(server: InProcessServer,
                                              make_app: Callable[..., App],
                                              machines: Machines) -> None:
    product, keys = new_product(server.admin)
    lic = issue(server, product, seats=2, seat_mode="user", password="team pass")
    key = lic["license_key"]
    # Three OS accounts on one computer: each its own home and store, its own seat.
    computer = machines("ana")
    ana = make_app(product, keys, "ana", machine=computer)
    ben = make_app(product, keys, "ben", machine=machines.account(computer, "ben"))
    cy = make_app(product, keys, "cy", machine=machines.account(computer, "cy"))
    a = ana.client.activate(key, password="team pass", email="ana@example.com", consent=True)
    b = ben.client.activate(key, password="team pass", email="ben@example.com",
                            registration={"name": "Ben"}, consent=True)
    assert a.seat_mode is SeatMode.USER and a.activation_id != b.activation_id
    assert a.email == "ana@example.com" and b.registration == {"name": "Ben"}
    with pytest.raises(NoSeatsLeft):
        cy.client.activate(key, password="team pass")
    with pytest.raises(WrongPassword):
        cy.client.activate(key, password="wrong")
    assert ana.restart().activate(key, password="team pass").activation_id == a.activation_id

    # Ana's data is erased; Ben's seat and the shared password are untouched.
    erased = ana.client.request_erasure()
    assert erased.mode is Mode.LIMITED and erased.email is None
    kept = ben.client.refresh()
    assert kept.mode is Mode.FULL and kept.email == "ben@example.com"
    assert server.admin.find_end_users("ana@example.com") == []
    assert len(server.admin.find_end_users("ben@example.com")) == 1
    ana.client.deactivate()
    # Erasure sticks to the license: every new seat (here another account on Ana's
    # computer) starts limited until the vendor restores the license.
    assert cy.client.activate(key, password="team pass").mode is Mode.LIMITED


# --------------------------------------------------------------------------- lock-out


def test_reactivation_lockout_and_its_reset_from_the_cli(
    server: InProcessServer, make_app: Callable[..., App], machines: Machines
) -> None:
    product, keys = new_product(server.admin, reactivation_limit=1, reactivation_period=3600)
    lic = issue(server, product, seats=1)
    key = lic["license_key"]
    first, second = (make_app(product, keys, name, machine=machines(name))
                     for name in ("first", "second"))
    first.client.activate(key)
    first.client.deactivate()
    second.client.activate(key)  # the seat's one re-activation
    second.client.deactivate()
    with pytest.raises(ActivationLocked, match="locked") as locked:
        first.client.activate(key)
    assert locked.value.retry_after is not None
    lifts_in = locked.value.retry_after - datetime.now(timezone.utc)
    assert timedelta(seconds=3500) < lifts_in <= timedelta(seconds=3601)
    code, out = vendor_cli(server, "lockouts", "show", lic["id"])
    assert code == 0 and "2 in the last" in out and "locked until" in out
    code, out = vendor_cli(server, "lockouts", "reset", "--license", lic["id"])
    assert code == 0 and "Unlocked license" in out
    assert first.client.activate(key).mode is Mode.FULL


def test_lockout_by_client_address(server: InProcessServer, make_app: Callable[..., App],
                                   machines: Machines) -> None:
    product, keys = new_product(server.admin, address_activation_limit=2)
    apps = [make_app(product, keys, f"pc{i}", machine=machines(f"pc{i}")) for i in range(3)]
    licenses = [issue(server, product)["license_key"] for _ in apps]
    apps[0].client.activate(licenses[0])
    apps[1].client.activate(licenses[1])
    with pytest.raises(ActivationLocked, match="network address"):
        apps[2].client.activate(licenses[2])  # another license, the same address
    code, _ = vendor_cli(server, "lockouts", "reset", "--address", "127.0.0.1")
    assert code == 0
    assert apps[2].client.activate(licenses[2]).mode is Mode.FULL


# --------------------------------------------------------------------------- password reset


@pytest.fixture(scope="module")
def mail_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcessServer,
                                                                            Mailbox]]:
    with Mailbox() as box:
        env = {"SOFTWARE_DNA_SMTP_HOST": "127.0.0.1", "SOFTWARE_DNA_SMTP_PORT": str(box.port),
               "SOFTWARE_DNA_SMTP_TLS": "none", "SOFTWARE_DNA_SMTP_SENDER": "no-reply@acme.test",
               "SOFTWARE_DNA_PUBLIC_URL": URL}
        with InProcessServer(tmp_path_factory.mktemp("mail-server"), env=env) as srv:
            yield srv, box


def test_password_reset_by_email(mail_server: tuple[InProcessServer, Mailbox],
                                 machines: Machines, tmp_path: Path) -> None:
    srv, box = mail_server
    product, keys = new_product(srv.admin, password_required=True)
    key = srv.admin.issue_license(product, seats=2, password="forgotten")["license_key"]
    owner = App(srv, product, keys, tmp_path / "owner", machine=machines("owner"))
    new_pc = App(srv, product, keys, tmp_path / "new", machine=machines("new"))
    try:
        before = len(box.messages)
        owner.client.activate(key, password="forgotten", email="owner@example.com",
                              consent=True)
        # The address gets a confirmation link first; reset codes go only to confirmed ones.
        with srv.session() as http:
            assert http.post(mailed_link(box.wait_for(before + 1)[before]),
                             timeout=30).status_code == 200
        with pytest.raises(WrongPassword):
            new_pc.client.activate(key, password="what was it?")
        before = len(box.messages)
        ends = new_pc.client.request_password_reset(key)  # no activation needed
        assert timedelta(seconds=800) < ends - datetime.now(timezone.utc) <= timedelta(
            seconds=901)
        mail = box.wait_for(before + 1)[before]
        assert mail["To"] == "owner@example.com"
        text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "forgotten" not in text
        found = re.search(r"reset code: (\S+)", text)
        assert found is not None
        with pytest.raises(PasswordResetFailed, match="wrong, already used or expired"):
            new_pc.client.reset_password(key, "AAAA-BBBB-CCCC", "fresh start")
        typed = found[1].lower().replace("-", "\u2013")  # as typed: lower case, en dashes
        new_pc.client.reset_password(key, typed, "fresh start")
        with pytest.raises(PasswordResetFailed):
            new_pc.client.reset_password(key, found[1], "again")  # single use
        assert new_pc.client.activate(key, password="fresh start").mode is Mode.FULL
        with pytest.raises(PasswordResetFailed):
            new_pc.client.reset_password(key, found[1], "")
        with pytest.raises(UnknownLicenseKey):
            new_pc.client.request_password_reset("AAAA-BBBB-CCCC-DDDD")

        # No email on file: the end user is told that the vendor must reset it.
        quiet = srv.admin.issue_license(product, password="pw")["license_key"]
        silent = App(srv, product, keys, tmp_path / "silent", machine=machines("silent"))
        silent.client.activate(quiet, password="pw")
        with pytest.raises(PasswordResetFailed, match="vendor"):
            silent.client.request_password_reset(quiet)
        silent.client.close()
    finally:
        owner.client.close()
        new_pc.client.close()


def test_password_reset_without_mail_on_the_server(server: InProcessServer,
                                                   make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product, password="pw")["license_key"]
    app = make_app(product, keys, "mailless")
    app.client.activate(key, password="pw", email=f"u{secrets.token_hex(3)}@example.com",
                        consent=True)
    with pytest.raises(PasswordResetFailed, match="does not send email"):
        app.client.request_password_reset(key)
