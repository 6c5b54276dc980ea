"""Second attack pass on the end user's license portal (``/portal``).

Each test is one attack.  Those that failed on the build they were written on
say so in their docstring ("DEFECT"): the invariant the product promises and
how the attack broke it.  The others are regression tests of defences that
held.  Everything runs in-process (the real app on real SQLite or PostgreSQL,
a real SMTP server, the real outbox worker), through the portal's helpers.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from software_dna.server.models import Activation, EndUser, License, RateLimitCounter
from software_dna.server.testing import InProcessServer
from tests.portal.helpers import (
    PASSWORD,
    ROOMY,
    PortalUser,
    add_seat,
    airgap_request,
    db,
    portal_link,
    set_product,
    setup_license,
)
from tests.server.helpers import Api
from tests.server.mailing import drain, mail_env
from tests.server.test_password_reset_server import ask, confirm, mailed_code
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every mail."""
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """The app in-process, mailing to ``mailbox``; limits per network high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-2"),
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


# --------------------------------------------------------------------------- data export


def test_the_export_holds_no_settings_another_seat_holder_wrote(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: on a user-seat license shared by a team, Mallory (her own seat, her
    own confirmed address) signs in by link and presses "Download my data".  Bob's app,
    on his own seat of the same license, stored its settings document (his recent files,
    his preferences).

    Invariant (docs/portal.md, docs/privacy.md): on a ``user``-seat license a link
    session reaches only its own end user's data; "My data" is "everything held about
    the end user".  ``export_end_user`` adds the *license's* settings document for every
    license the person ever had an activation on -- on a user-seat license that is the
    document every seat holder's app writes, so Mallory downloads what Bob's app stored
    (and keeps getting it after her seat is freed, as long as the activation row lasts).
    """
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    mallory_email, bob_email = _email("mallory"), _email("bob")
    add_seat(portal_server, api, mailbox, held, mallory_email, machine="pc-mallory")
    bob = add_seat(portal_server, api, mailbox, held, bob_email, machine="pc-bob")
    secret = f"bob-private-{secrets.token_hex(4)}"
    stored = api.put_settings(bob["activation_id"], bob["activation_secret"],
                              {"recent_files": [f"/home/bob/{secret}.txt"]})
    assert stored.status_code in (200, 204), stored.text
    with PortalUser(portal_server, held.product_id) as mallory:
        assert mallory.sign_in_by_link(mailbox, mallory_email).status_code == 303
        exported = mallory.post("data/export")
        assert exported.status_code == 200, exported.text
        document = json.loads(exported.text)
    assert secret not in json.dumps(document), (
        "Mallory's export carries the settings Bob's app stored: "
        f"{document['settings']}")


# --------------------------------------------------------------------------- erasure


def test_erasure_after_an_address_change_keeps_no_hash_of_the_old_address(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (low).  Attack: an end user asks for a sign-in link (the portal counts the
    mails per address under ``portal-mail:<email_index[:32]>``), then changes the address
    in the portal and erases their data.  Read the database afterwards.

    Invariant (docs/privacy.md, the first pass's fix): after erasure nothing of the
    address, its hashes included, is kept.  ``erase`` drops the link counter of the
    *current* address only; ``set_email`` replaced the address without dropping the old
    address's counter, so the old address's look-up hash survives the erasure.
    """
    old, new = _email("olga"), _email("olga-new")
    held = setup_license(portal_server, api, mailbox, email=old)
    (found,) = portal_server.admin.find_end_users(old)
    with db(portal_server) as session:
        person = session.get(EndUser, found["id"])
        assert person is not None and person.email_index is not None
        trace = person.email_index[:32]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, old).status_code == 303
        assert user.post("email", {"email": new}).status_code == 303
        assert user.post("erase").status_code == 303
    with db(portal_server) as session:
        left = session.scalars(select(RateLimitCounter.key).where(
            RateLimitCounter.key.contains(trace))).all()
    assert left == [], f"the erased person's former address's hash is still kept: {left}"


# --------------------------------------------------------------------------- language


def test_the_language_machinery_injects_nothing(portal_server: InProcessServer,
                                                api: Api) -> None:
    """Held.  Attack: ``?lang=`` and the language cookie with CR/LF, quotes, markup and
    long values; the language form's ``next=`` pointing elsewhere (encoded slashes,
    backslashes, dot segments, a scheme).

    Invariant: the page's language is one of the catalogue's (``<html lang>``,
    ``Content-Language``), no header or markup is injected, and the form redirects only
    inside this product's portal, with no 5xx.
    """
    held = setup_license(portal_server, api, None)
    pid = held.product_id
    odd = ['de"><script>x</script>', "de\r\nX-Evil: 1", "x" * 5000, "DE", "de-CH;q=1",
           "../../etc", "\u00e9"]
    with PortalUser(portal_server, pid) as user:
        for value in odd:
            page = user.get("", params={"lang": value})
            assert page.status_code == 200, (value, page.status_code)
            assert page.headers["Content-Language"] in ("en", "de"), value
            assert "X-Evil" not in page.headers and "<script>x" not in page.text
            assert page.cookies.get("sdna_portal_lang") in (None, "en", "de")
        user.http.cookies.set("sdna_portal_lang", 'de"><b>', path="/portal")
        page = user.get("")
        assert page.status_code == 200 and "<b>" not in page.text
        user.http.cookies.clear()
        for target in (f"/portal/{pid}/%2F%2Fevil.example/", f"/portal/{pid}/..%2F..%2F",
                       f"/portal/{pid}/\t/evil.example", "https://evil.example/",
                       f"/portal/{pid}/\r\nLocation: https://evil.example/",
                       f"/portal/{pid}/@evil.example", f"/portal/{pid}/..\\..\\"):
            answer = user.post("language", {"lang": "de", "next": target}, csrf="")
            assert answer.status_code == 303, (target, answer.status_code)
            location = answer.headers["Location"]
            assert location.startswith(f"/portal/{pid}/"), (target, location)
            assert "\n" not in location and "\r" not in location


# --------------------------------------------------------------------------- password


def test_a_team_member_link_session_cannot_replace_the_shared_password(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Held.  Attack: on a user-seat license (one password shared by the team), a member
    signs in by link and sets a new password leaving "current" empty, or with a wrong
    one, or with the field repeated (a right value after a wrong one).

    Invariant (docs/portal.md): on a ``user``-seat license nobody replaces the shared
    password without knowing it.
    """
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    email = _email("member")
    add_seat(portal_server, api, mailbox, held, email, machine="pc-member")
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        for current in ("", "wrong"):
            answer = user.post("password", {"current": current, "password": "taken over",
                                            "repeat": "taken over"})
            assert answer.status_code == 400, (current, answer.status_code)
        # Still the old password: the app activates with it.
        again = api.activate(held.product_id, held.key, machine="pc-other",
                             password=PASSWORD)
        assert again.status_code in (200, 201), again.text


# --------------------------------------------------------------------------- release limit


def _free_two_at_once(srv: InProcessServer, api: Api) -> None:
    """Limit 1; two password sessions free two different computers at the same moment:
    exactly one is freed, the other refused with 429, no 5xx."""
    held = setup_license(srv, api, None, machines=2, seats=3)
    set_product(srv, held.product_id, portal_release_limit=1)
    users = [PortalUser(srv, held.product_id) for _ in range(2)]
    try:
        for user in users:
            assert user.sign_in(held.key).status_code == 303
        barrier = threading.Barrier(2)
        statuses: list[int] = []

        def free(user: PortalUser, activation_id: str) -> None:
            barrier.wait()
            statuses.append(user.post(f"activations/{activation_id}/release").status_code)

        threads = [threading.Thread(target=free, args=(u, a["activation_id"]))
                   for u, a in zip(users, held.activations, strict=True)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for user in users:
            user.close()
    assert sorted(statuses) == [303, 429], statuses
    with db(srv) as session:
        freed = session.scalars(select(Activation.id).where(
            Activation.license_id == held.license["id"],
            Activation.deactivated_at.is_not(None))).all()
    assert len(freed) == 1, freed


def test_two_sessions_freeing_two_computers_at_once_stay_within_the_limit(
        portal_server: InProcessServer, api: Api) -> None:
    """Held.  Attack: the limit is one computer per period; two browsers (two password
    sessions) free two *different* computers at the same moment.

    Invariant (docs/portal.md): "Two browsers freeing at the same moment cannot pass the
    limit" -- at most one freed, and no 5xx (SQLite: ``BEGIN IMMEDIATE``).
    """
    for _ in range(3):
        _free_two_at_once(portal_server, api)


# --------------------------------------------------------------------------- air-gapped


def test_the_air_gapped_page_of_a_link_session_still_asks_for_the_password(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Held.  Attack: a team member signs in by link (no password typed) and answers an
    air-gapped request for the license without the activation password, or with a
    repeated ``password`` field (empty first).

    Invariant (docs/portal.md): the answer follows the rules of an online activation; a
    session is not the password.
    """
    held = setup_license(portal_server, api, None, machines=0, seat_mode="machine",
                         product={"air_gapped": True})
    email = _email("airgap")
    add_seat(portal_server, api, mailbox, held, email, machine="pc-airgap")
    request = airgap_request(held.product_id, held.key, machine="air-x")
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        page = user.get("offline")
        assert page.status_code == 200, page.text
        answer = user.post("offline", {"request": request})
        assert answer.status_code >= 400 and "BEGIN" not in answer.text.split("</textarea>")[-1]
        with db(portal_server) as session:
            live = session.scalars(select(Activation.id).where(
                Activation.license_id == held.license["id"],
                Activation.offline.is_(True))).all()
        assert live == []


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_portal_server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
                     pg_databases: Any) -> Iterator[InProcessServer]:
    """The app in-process on a fresh PostgreSQL database, mailing to ``mailbox``."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-2-pg"),
                         env={**mail_env(mailbox), **ROOMY},
                         database_url=pg_databases.create()) as srv:
        yield srv


@pytest.mark.postgres
def test_a_nul_in_a_form_field_gets_a_4xx_on_postgresql(
        pg_portal_server: InProcessServer, mailbox: Mailbox) -> None:
    """Attack: put a NUL character in the fields the portal's forms send (the license key
    and password of the sign-in, the address of a link request, the new address, the
    new password, the air-gapped request and its password), on PostgreSQL.

    Invariant: malformed input gets a 4xx, never a 500 (PostgreSQL text holds no NUL).
    """
    api = Api.for_server(pg_portal_server)
    try:
        email = _email("nul")
        held = setup_license(pg_portal_server, api, mailbox, email=email,
                             product={"air_gapped": True})
    finally:
        api.close()
    answers = {}
    with PortalUser(pg_portal_server, held.product_id) as user:
        answers["sign-in key"] = user.post("sign-in", {"license_key": held.key + "\x00",
                                                       "password": PASSWORD}, csrf="").status_code
        answers["sign-in password"] = user.post(
            "sign-in", {"license_key": held.key, "password": "a\x00b"}, csrf="").status_code
        answers["link email"] = user.post("link", {"email": "a\x00b@example.com"},
                                          csrf="").status_code
        answers["link token"] = user.http.post(user.url("link/abc%00def"),
                                               allow_redirects=False).status_code
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        answers["new email"] = user.post("email", {"email": "x\x00y@example.com"}).status_code
        answers["new password"] = user.post("password", {"password": "p\x00q",
                                                         "repeat": "p\x00q"}).status_code
        answers["air-gapped password"] = user.post(
            "offline", {"request": airgap_request(held.product_id, held.key, machine="air-n"),
                        "password": "a\x00b"}).status_code
    failed = {what: status for what, status in answers.items() if status >= 500}
    assert not failed, failed


@pytest.mark.postgres
def test_two_computers_freed_at_once_stay_within_the_limit_on_postgresql(
        pg_portal_server: InProcessServer) -> None:
    """Held.  The same race on PostgreSQL (``SELECT ... FOR UPDATE`` of the license row,
    read committed): two browsers freeing two different computers at once with a limit
    of one free exactly one."""
    api = Api.for_server(pg_portal_server)
    try:
        for _ in range(3):
            _free_two_at_once(pg_portal_server, api)
    finally:
        api.close()


# --------------------------------------------------------------------------- reach


def test_a_link_session_that_lost_its_seat_cannot_set_the_password(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: Ann used a team's machine license that has no activation password
    (reached by email links only).  She signs in by link and keeps the browser open;
    then she leaves: her computer is freed and a colleague takes the seat.  From her
    still open session she opens the license page, then the password page, and sets an
    activation password of her own.

    Invariant (the first pass's fix, docs/portal.md): a link reaches a license only
    while its end user holds it (its buyer or a live seat), re-checked at every request
    (``Holder.member``).  ``member`` is honoured by ``sees`` and ``personal`` only: the
    license page, the password page and the air-gapped page take any session of the
    product.  ``change_password`` asks no current password when the license has none,
    so the former user sets one: every new activation of the license (the colleagues')
    now needs Ann's password, and the key plus her password sign her in for good.  The
    same session also answers air-gapped requests, taking the license's free seats.
    """
    email = _email("ann")
    held = setup_license(portal_server, api, mailbox, email=email, password=None,
                         machines=1, seats=2, product={"air_gapped": True})
    ann = held.activations[0]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert api.deactivate(ann["activation_id"], ann["activation_secret"]).status_code \
            == 200
        colleague = api.activate(held.product_id, held.key, machine="colleague-pc")
        assert colleague.status_code == 201, colleague.text
        page = user.get("license")
        answered = user.post("offline", {"request": airgap_request(
            held.product_id, held.key, machine="ann-offline-pc")})
        taken = user.post("password", {"password": "ann's now", "repeat": "ann's now"})
    with db(portal_server) as session:
        lic = session.get(License, held.license["id"])
        assert lic is not None
        password_set = lic.password_hash is not None
        offline = session.scalars(select(Activation.id).where(
            Activation.license_id == lic.id, Activation.offline.is_(True),
            Activation.deactivated_at.is_(None))).all()
    assert not password_set and not offline and page.status_code != 200, (
        f"a former user's session read the license page ({page.status_code}), activated "
        f"an air-gapped computer ({answered.status_code}, {len(offline)} made) and set the "
        f"license's password ({taken.status_code}, set: {password_set})")


# --------------------------------------------------------------------------- password


def test_a_password_reset_by_mail_ends_the_portal_sessions_of_the_old_password(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: Mallory learnt a machine license's activation password and keeps a
    portal session open with it.  The license holder notices and changes the password
    the way the app offers when it is forgotten: a reset code mailed to their address
    (``POST /v1/password-resets`` then ``/confirm``).  Mallory's browser stays signed in
    and goes on freeing the holder's computers.

    Invariant (docs/portal.md, services.endusers.end_password_sessions): the portal's
    password sessions end "when the password or the key changes or is erased" -- every
    other path (the portal's own password page, the vendor's, erasure) ends them.
    ``password_reset.confirm`` sets ``password_hash`` itself and never calls
    ``end_password_sessions``.
    """
    email = _email("holder")
    held = setup_license(portal_server, api, mailbox, email=email, machines=2)
    with PortalUser(portal_server, held.product_id) as mallory:
        assert mallory.sign_in(held.key).status_code == 303
        before = len(mailbox.messages)
        asked = ask(portal_server, held.product_id, held.key)
        assert asked.status_code == 202, asked.text
        drain(portal_server)
        code, _ = mailed_code(mailbox, before + 1)
        done = confirm(portal_server, held.product_id, held.key, code, "brand new secret")
        assert done.status_code == 200, done.text
        page = mallory.get("license")
        freed = mallory.post(f"activations/{held.activations[1]['activation_id']}/release")
    assert page.status_code == 303 and freed.status_code == 403, (
        f"the old password's session lives on after the reset: license page "
        f"{page.status_code}, freeing a computer {freed.status_code}")


# --------------------------------------------------------------------------- links


def test_a_strangers_link_requests_do_not_lock_the_holder_out_of_link_sign_in(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (medium: denial of service).  Attack: Mallory knows Ann's address (nothing
    else).  Every 15 minutes she asks the portal for sign-in links to it, three times,
    from her own browser.  Ann's license has no activation password, so a link is her
    only way in.

    Invariant (docs/portal.md): a link request mails the end user a link that works in
    the browser that asked; the mail limit per address exists so that "nobody can flood
    a mailbox through the portal", not so that a stranger can decide who signs in.  The
    per-address counter (``LINK_MAILS_PER_WINDOW`` = 3) is spent by *anyone's*
    requests: Ann receives three links bound to Mallory's browser (useless to her),
    and her own request in the window mails nothing while the page says a link is on
    its way.  Three requests per window keep her out indefinitely.
    """
    email = _email("ann")
    held = setup_license(portal_server, api, mailbox, email=email, password=None)
    with PortalUser(portal_server, held.product_id) as mallory:
        for _ in range(3):
            assert mallory.ask_link(email).status_code == 200
    drain(portal_server)
    with PortalUser(portal_server, held.product_id) as ann:
        before = len(mailbox.messages)
        assert ann.ask_link(email).status_code == 200
        drain(portal_server)
        time.sleep(0.5)  # the worker delivered what it had
        got = [m for m in mailbox.messages[before:] if email in str(m["To"])]
        signed_in = ann.use_link(portal_link(mailbox, before + 1)).status_code if got else None
    assert signed_in == 303, (
        "after a stranger's three link requests the holder's own request mailed no link "
        f"(mails: {len(got)}): she cannot sign in by link for the whole window")
