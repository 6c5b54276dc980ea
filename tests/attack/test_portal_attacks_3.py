"""Third attack pass on the end user's license portal (``/portal``).

Each test is one attack.  Those that failed on the build they were written on say so in
their docstring ("DEFECT"): the invariant the product promises and how the attack broke
it.  The others are regression tests of defences that held.  Everything runs in-process
(the real app on SQLite, a real SMTP server, the real outbox worker).
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server.models import Activation, EndUser, License
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import (
    PASSWORD,
    ROOMY,
    PortalLicense,
    PortalUser,
    add_seat,
    airgap_request,
    db,
    portal_link,
    setup_license,
)
from tests.server.helpers import Api, session_for
from tests.server.mailing import drain, mail_env
from tests.smtp import Mailbox, mailed_link


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every mail."""
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """The app in-process, mailing to ``mailbox``; limits per network high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-3"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(portal_server: InProcessServer) -> Iterator[Api]:
    """The public API of ``portal_server``."""
    client = Api.for_server(portal_server)
    yield client
    client.close()


def _email(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


def _last_mail_to(box: Mailbox, address: str, after: int):  # type: ignore[no-untyped-def]
    for message in reversed(box.messages[after:]):
        if address in str(message["To"]):
            return message
    raise AssertionError(f"no mail to {address}")


# --------------------------------------------------------------------------- the fold


@dataclass
class _Folded:
    mallory: PortalUser  # her link session (close it)
    mine: PortalLicense  # her license
    bob_license: dict[str, Any]
    bob_activation: dict[str, Any]
    bob_email: str


def _fold_bob_into_mallory(srv: InProcessServer, api: Api, box: Mailbox) -> _Folded:
    """Mallory (link session on her own license) changes her address to Bob's, whose own
    record is unconfirmed (he just activated); Bob presses Confirm in the mail that came
    from Mallory's change (same words as his own)."""
    mallory_email, bob_email = _email("mallory"), _email("bob")
    mine = setup_license(srv, api, box, email=mallory_email)
    bob_license = srv.admin.issue_license(mine.product_id, seats=3, password="bob's pw")
    before = len(box.messages)
    bob = api.activate(mine.product_id, bob_license["license_key"], machine="pc-bob",
                       password="bob's pw", email=bob_email, consent=True)
    assert bob.status_code in (200, 201), bob.text
    drain(srv)
    box.wait_for(before + 1)
    mallory = PortalUser(srv, mine.product_id)
    assert mallory.sign_in_by_link(box, mallory_email).status_code == 303
    before = len(box.messages)
    changed = mallory.post("email", {"email": bob_email})
    assert changed.status_code == 303, changed.text
    drain(srv)
    box.wait_for(before + 1)
    bait = mailed_link(_last_mail_to(box, bob_email, before))
    with session_for(srv) as http:  # Bob presses "Confirm" in the mail he opened
        assert http.post(bait, timeout=30).status_code == 200
    return _Folded(mallory=mallory, mine=mine, bob_license=bob_license,
                   bob_activation=bob.json(), bob_email=bob_email)


def test_the_fold_does_not_pull_a_strangers_seats_into_a_live_link_session(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: Mallory holds her own license and is signed in to its portal by a
    mailed link (personal reach).  Bob has just activated his license on his computer,
    typing bob@...; his record is unconfirmed and a confirmation mail is on its way to
    him.  Mallory, on her portal's email page, changes *her* address to Bob's: a second
    "Confirm your email address for Acme Editor" mail reaches Bob, the same words as his
    own.  Bob presses the button in the one he opens -- Mallory's.  Mallory's record is now
    the confirmed one of bob@..., and ``_fold_unconfirmed`` moves Bob's unconfirmed record
    (his seat, his purchases, his mails) into *Mallory's* record and deletes his.  Her link
    session, opened with her old address, lives on (``holder_of`` never re-checks the
    address) and "Download my data" hands her Bob's computer, his license and his mails.

    Invariant (docs/portal.md, docs/privacy.md): a link session reaches only its own end
    user's data; another person's seats and personal data never reach someone else's
    pages or export.  Before the fold Bob's click confirmed only Mallory's record; the
    fold turns it into a transfer of Bob's data to a session Mallory holds.
    """
    folded = _fold_bob_into_mallory(portal_server, api, mailbox)
    with folded.mallory as mallory:
        exported = mallory.post("data/export")
    with db(portal_server) as session:
        owner = session.scalars(select(Activation.end_user_id).where(
            Activation.id == folded.bob_activation["activation_id"])).one()
        mallorys = session.scalars(select(Activation.end_user_id).where(
            Activation.id == folded.mine.activations[0]["activation_id"])).one()
    leaked = exported.status_code == 200 and (
        folded.bob_activation["activation_id"] in exported.text
        or folded.bob_license["id"] in exported.text)
    assert owner != mallorys and not leaked, (
        "Bob's seat was folded into Mallory's record and her live link session exports it: "
        + (json.dumps(json.loads(exported.text).get("activations"))[:400]
           if exported.status_code == 200 else exported.text[:200]))


def test_a_stranger_cannot_erase_someone_elses_license_through_the_fold(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (high).  Attack: as above, Bob's unconfirmed record is folded into Mallory's
    after Bob confirms the mail Mallory's address change sent him.  Mallory then presses
    "Erase my data" in her own portal session.  ``erase`` covers every license of every
    activation of her record -- now Bob's license too: its activation password is deleted
    (``password_reset_required``), its settings dropped, it and Bob's computer are marked
    erased (limited tokens) until the vendor restores it.

    Invariant (docs/privacy.md, docs/portal.md): a person's erasure covers their own
    data; nobody's portal session erases or limits a license they do not hold.
    """
    folded = _fold_bob_into_mallory(portal_server, api, mailbox)
    with folded.mallory as mallory:
        page = mallory.get("erase")
        assert page.status_code == 200, page.text
        erased = mallory.post("erase")
        assert erased.status_code == 303, erased.text
    with db(portal_server) as session:
        bobs = session.get(License, folded.bob_license["id"])
        assert bobs is not None
        was_erased, password_gone = bool(bobs.erased), bobs.password_hash is None
    assert not was_erased and not password_gone, (
        f"Mallory's erasure erased Bob's license: erased={was_erased}, "
        f"password deleted={password_gone}")


# --------------------------------------------------------------------------- link requests


def test_strangers_fresh_browsers_do_not_lock_the_holder_out_of_link_sign_in(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (medium: denial of service; the second pass's fix is bypassed).  Attack:
    Mallory knows Ann's address, nothing else.  Each window she asks for sign-in links to
    it ten times, each time from a "new browser": she just drops the link cookie (a fresh
    cookie jar).  Ten requests is also exactly the default per-network limit
    (``SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS`` = 10), so one network suffices.  Ann's
    license has no activation password: a link is her only way in.

    Invariant (docs/portal.md, Security): "at most 3 requests per address and browser,
    and 10 per address from every browser, are mailed per window, so a stranger asking
    from their browser never uses up the holder's own share."  A browser is whatever
    cookie the client sends: ten fresh cookies spend the per-address counter
    (``portal_link_counter(index)``, ``LINK_MAILS_PER_ADDRESS``), and Ann's own request
    from her own browser then mails nothing while the page says a link is on its way.
    """
    email = _email("ann")
    held = setup_license(portal_server, api, mailbox, email=email, password=None)
    for _ in range(10):  # ten "browsers": a fresh cookie jar each
        with PortalUser(portal_server, held.product_id) as mallory:
            assert mallory.ask_link(email).status_code == 200
    drain(portal_server)
    time.sleep(0.5)
    with PortalUser(portal_server, held.product_id) as ann:
        before = len(mailbox.messages)
        assert ann.ask_link(email).status_code == 200
        drain(portal_server)
        time.sleep(0.5)  # the worker delivered what it had
        got = [m for m in mailbox.messages[before:] if email in str(m["To"])]
        signed_in = ann.use_link(portal_link(mailbox, before + 1)).status_code if got else None
    assert signed_in == 303, (
        "after ten link requests from a stranger's fresh cookie jars the holder's own "
        f"request mailed no link (mails: {len(got)}): she is locked out for the window")


# --------------------------------------------------------------------------- erasure


def test_erasure_covers_the_persons_record_on_another_license_not_yet_confirmed(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (medium: an erasure that misses data).  Attack (on oneself, as a privacy
    auditor would): Bob's address is confirmed on his first license.  He activates a
    second license of the same vendor on another computer, giving the same address and
    his registration (name).  ``attach_end_user`` joins a confirmed record only on the
    *same* license, so this makes a second, unconfirmed record of Bob and mails him yet
    another confirmation link.  Before opening it, Bob signs in to the portal by link and
    presses "Erase my data".

    Invariant (docs/privacy.md "One person, one record"; docs/portal.md "Erase my data"):
    the address is the person's, proven; an erasure covers every computer the person
    activated and leaves nothing of the address.  The second record keeps his address
    (and its look-up hash), his registration and the computer's seat; its confirmation
    link still works, and the export Bob downloaded before erasing lacked it too.
    """
    email = _email("bob")
    first = setup_license(portal_server, api, mailbox, email=email)
    second = portal_server.admin.issue_license(first.product_id, seats=3, password="pw 2")
    other = api.activate(first.product_id, second["license_key"], machine="pc-bob-2",
                         password="pw 2", email=email, consent=True,
                         registration={"name": "Bob Example"})
    assert other.status_code in (200, 201), other.text
    drain(portal_server)
    with PortalUser(portal_server, first.product_id) as bob:
        assert bob.sign_in_by_link(mailbox, email).status_code == 303
        exported = bob.post("data/export")
        assert exported.status_code == 200, exported.text
        assert bob.get("erase").status_code == 200
        erased = bob.post("erase")
        assert erased.status_code == 303, erased.text
    with db(portal_server) as session:
        activation = session.get(Activation, other.json()["activation_id"])
        assert activation is not None
        record = session.get(EndUser, activation.end_user_id) \
            if activation.end_user_id else None
        kept = record is not None and (record.email_ciphertext is not None
                                       or record.registration_ciphertext is not None)
    in_export = other.json()["activation_id"] in exported.text
    assert not kept, (
        "Bob erased his data in the portal, yet his record on the other license keeps his "
        f"address and registration (erased_at={record.erased_at if record else None}); "
        f"it was in his export before: {in_export}")


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_portal_server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
                     pg_databases: Any) -> Iterator[InProcessServer]:
    """The app in-process on a fresh PostgreSQL database, mailing to ``mailbox``."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-3-pg"),
                         env={**mail_env(mailbox), **ROOMY},
                         database_url=pg_databases.create()) as srv:
        yield srv


def _two_unconfirmed_records(srv: InProcessServer, api: Api, box: Mailbox,
                             email: str) -> tuple[list[str], list[str]]:
    """One person activates two licenses giving one address: two unconfirmed records and
    two confirmation links.  Returns (links, activation ids)."""
    pid = "p-" + secrets.token_hex(4)
    srv.admin.setup_product(pid, name="Acme Editor")
    links, ids = [], []
    for n in range(2):
        lic = srv.admin.issue_license(pid, seats=3, password=None)
        before = len(box.messages)
        made = api.activate(pid, lic["license_key"], machine=f"pc-{n}", email=email,
                            consent=True)
        assert made.status_code in (200, 201), made.text
        ids.append(made.json()["activation_id"])
        drain(srv)
        links.append(mailed_link(_last_mail_to(box, email, before)))
        box.wait_for(before + 1)
    return links, ids


@pytest.mark.postgres
def test_two_confirmations_of_one_address_at_once_fold_cleanly_on_postgresql(
        pg_portal_server: InProcessServer, mailbox: Mailbox) -> None:
    """DEFECT (low).  Attack (race): one address has two unconfirmed records (two
    licenses activated giving it); press "Confirm" in both mails at the same moment, on
    PostgreSQL (read committed).  Each confirmation folds the *other* record into its
    own: both read the other as unconfirmed, then each deletes the row the other has
    locked.  PostgreSQL detects the deadlock (the loser gets a 503 "database
    unavailable"), or the loser's used-token UPDATE matches a row the winner's fold
    deleted (``StaleDataError``: a 500).  The data ends consistent (one record holds
    both seats), but the person who pressed Confirm sees a server error.

    Invariant: never a server error for a valid request; afterwards one live record
    holds both seats.
    """
    api = Api.for_server(pg_portal_server)
    failures: list[str] = []
    try:
        for _ in range(4):
            email = _email("race")
            links, ids = _two_unconfirmed_records(pg_portal_server, api, mailbox, email)
            barrier = threading.Barrier(2)
            statuses: list[int] = []

            def press(link: str, barrier: threading.Barrier = barrier,
                      statuses: list[int] = statuses) -> None:
                with session_for(pg_portal_server) as http:
                    barrier.wait()
                    statuses.append(http.post(link, timeout=60).status_code)

            threads = [threading.Thread(target=press, args=(link,)) for link in links]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            with db(pg_portal_server) as session:
                rows = [session.get(Activation, i) for i in ids]
                owners = {row.end_user_id for row in rows if row is not None}
            if any(s >= 500 for s in statuses) or None in owners:
                failures.append(f"statuses {statuses}, owners {owners}")
    finally:
        api.close()
    assert not failures, failures


# --------------------------------------------------------------------------- export


def test_the_buyers_export_holds_no_settings_a_team_members_app_wrote(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (medium).  Attack: Carol bought a user-seat (team) license (the vendor issued
    it with her address as the buyer's) and uses a seat of it herself; Bob, a team member,
    holds another seat and his app stores its settings document (his recent files).  Carol
    signs in by link and presses "Download my data".

    Invariant (the second pass's fix; docs/portal.md, docs/privacy.md): on a user-seat
    license several people share the license's settings document, so it is nobody's
    personal data to export; a link session reaches only its own end user's data.  The
    export's rule (``export_end_user``: ``bought | held``) still adds the document of
    every license the person *bought*, whatever its seat mode: Carol downloads what
    Bob's app stored.
    """
    carol_email, bob_email = _email("carol"), _email("bob")
    pid = "p-" + secrets.token_hex(4)
    portal_server.admin.setup_product(pid, name="Acme Editor")
    team = portal_server.admin.issue_license(pid, seats=5, password=PASSWORD,
                                             seat_mode="user", email=carol_email)
    held = PortalLicense(product_id=pid, license=team, email=None, activations=[])
    add_seat(portal_server, api, mailbox, held, carol_email, machine="pc-carol")
    bob = add_seat(portal_server, api, mailbox, held, bob_email, machine="pc-bob")
    secret = f"bob-private-{secrets.token_hex(4)}"
    stored = api.put_settings(bob["activation_id"], bob["activation_secret"],
                              {"recent_files": [f"/home/bob/{secret}.txt"]})
    assert stored.status_code in (200, 204), stored.text
    with db(portal_server) as session:  # Carol's link reaches the team license as its buyer
        lic = session.get(License, team["id"])
        assert lic is not None and lic.buyer_id is not None
    with PortalUser(portal_server, pid) as carol:
        assert carol.sign_in_by_link(mailbox, carol_email).status_code == 303
        exported = carol.post("data/export")
        assert exported.status_code == 200, exported.text
    assert secret not in exported.text, (
        "Carol's export carries the settings Bob's app stored on the team license: "
        f"{json.loads(exported.text)['settings']}")


# --------------------------------------------------------------------------- read-only view


def test_the_read_only_view_after_ones_own_erasure_changes_nothing(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Held.  Attack: erase one's data in a link session, then keep using the session
    (it stays open for a read-only view of the limited license) with the old CSRF token:
    free the other computer, set a new activation password, set an address, export, and
    answer an air-gapped request.

    Invariant (services/portal.holder_of, portal/web.py ``read_only``): a session whose
    person erased their data reaches nothing but the limited license page.
    """
    email = _email("gone")
    held = setup_license(portal_server, api, mailbox, email=email, machines=2,
                         product={"air_gapped": True})
    other = held.activations[1]["activation_id"]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert user.post("erase").status_code == 303
        assert user.get("license").status_code == 200
        answers = {
            "release": user.post(f"activations/{other}/release").status_code,
            "password": user.post("password", {"password": "new one",
                                               "repeat": "new one"}).status_code,
            "email": user.post("email", {"email": _email("back")}).status_code,
            "export": user.post("data/export").status_code,
            "offline": user.post("offline", {"request": airgap_request(
                held.product_id, held.key, machine="air-x")}).status_code,
        }
    with db(portal_server) as session:
        activation = session.get(Activation, other)
        lic = session.get(License, held.license["id"])
        assert activation is not None and lic is not None
        still = activation.deactivated_at is None and lic.password_hash is None
        airgapped = session.scalars(select(Activation).where(
            Activation.license_id == lic.id)).all()
    assert still and len(airgapped) == 2, answers
    assert all(status in (303, 403) for status in answers.values()), answers
