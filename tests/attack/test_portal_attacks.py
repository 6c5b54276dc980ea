"""Attacks on the end user's license portal (``/portal``), from what a browser controls.

Each test is one attack.  Those that failed on the build they were written on
say so in their docstring ("DEFECT"): the invariant the product promises and
how the attack broke it.  The others are regression tests of defences that
held.  Everything runs in-process (the real app on real SQLite, a real SMTP
server, the real outbox worker), through the portal's helpers.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from software_dna.server.logconfig import RedactAccessLog
from software_dna.server.models import Activation, EndUser, RateLimitCounter
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
    tables,
)
from tests.server.helpers import Api
from tests.server.mailing import drain, mail_env
from tests.smtp import Mailbox

#: Failed sign-ins per key (and per network) on the strict server.
LIMIT = 3


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every mail."""
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """The app in-process, mailing to ``mailbox``; every request comes from one address, so
    the limits per network are high."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks"),
                         env={**mail_env(mailbox), **ROOMY}) as srv:
        yield srv


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """A server with the portal's sign-in limit low (:data:`LIMIT`)."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-strict"), env={
            **mail_env(mailbox), "SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": str(LIMIT),
            "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS": "100000",
            "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": "100000"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(portal_server: InProcessServer) -> Iterator[Api]:
    """The public API of ``portal_server``."""
    client = Api.for_server(portal_server)
    yield client
    client.close()


@pytest.fixture(scope="module")
def strict_api(strict_server: InProcessServer) -> Iterator[Api]:
    """The public API of ``strict_server``."""
    client = Api.for_server(strict_server)
    yield client
    client.close()


def _new_network(srv: InProcessServer) -> None:
    """Every in-process request comes from 127.0.0.1: forget the portal's counters of that
    network, as if the next request came from another one (a botnet's next member)."""
    with db(srv) as session:
        session.execute(delete(RateLimitCounter).where(
            RateLimitCounter.key.like("portal:%") | RateLimitCounter.key.like("portal-link:%")
            | RateLimitCounter.key.like("portal-use:%")))
        session.commit()


def _email(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


# --------------------------------------------------------------------------- sign-in


def test_key_spelled_otherwise_escapes_the_per_key_sign_in_limit(
        strict_server: InProcessServer, strict_api: Api) -> None:
    """DEFECT.  Attack: guess a license's activation password from many networks; once the
    key is locked, type the same key without its dashes (or with an en dash, in lower
    case...) and go on guessing.

    Invariant: "Wrong sign-ins are counted ... per license key" -- at most
    ``portal_sign_in_attempts`` guesses per key per window, whatever the network.  The
    per-key counter is keyed on the key *as typed* (spaces removed, upper-cased), while
    the look-up normalises dashes and regroups the key (``keytext.normalize``): every
    spelling of one key has its own counter, thousands of them per key.
    """
    held = setup_license(strict_server, strict_api, None)
    with PortalUser(strict_server, held.product_id) as user:
        for _ in range(LIMIT):
            _new_network(strict_server)
            assert user.sign_in(held.key, "guess").status_code == 401
        _new_network(strict_server)
        assert user.sign_in(held.key, "guess").status_code == 429  # the key is locked
        spellings = [held.key.replace("-", ""), held.key.replace("-", "\u2013"),
                     held.key.lower(), held.key.replace("-", " ")]
        answers = []
        for spelling in spellings:
            _new_network(strict_server)
            answers.append(user.sign_in(spelling, "guess").status_code)
        assert answers == [429] * len(spellings), (
            f"the locked key took more guesses when spelled otherwise: {answers}")


# --------------------------------------------------------------------------- reach


def test_a_former_seat_holder_cannot_free_the_current_computers(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: Ann activated a team's machine license once with her address, then
    left; her computer was deactivated and the seat went to a colleague.  Ann asks the
    portal for a sign-in link with her (still confirmed) address, and frees the
    colleague's computer.

    Invariant: a link reaches the licenses the end user holds a seat of (or bought).
    ``_reachable_licenses`` counts every activation that ever named the end user, live or
    freed, so a person who no longer uses the license keeps operating it: freeing the
    computers of the people who do (and erasing the license's password).
    """
    email = _email("ann")
    held = setup_license(portal_server, api, mailbox, email=email, machines=1, seats=1)
    ann = held.activations[0]
    assert api.deactivate(ann["activation_id"], ann["activation_secret"]).status_code == 200
    colleague = api.activate(held.product_id, held.key, machine="colleague-pc",
                             password=PASSWORD)
    assert colleague.status_code == 201, colleague.text
    theirs = colleague.json()["activation_id"]
    with PortalUser(portal_server, held.product_id) as user:
        before = len(mailbox.messages)
        assert user.ask_link(email).status_code == 200
        drain(portal_server)
        if len(mailbox.messages) == before:
            return  # no link for a license she no longer holds: the defence held
        user.use_link(portal_link(mailbox, before + 1))
        user.post(f"activations/{theirs}/release")
    with db(portal_server) as session:
        row = session.get(Activation, theirs)
        assert row is not None
        assert row.deactivated_at is None, (
            "a former seat holder freed the computer of the license's current user")


def test_an_address_set_in_the_portal_captures_another_seats_personal_data(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: on a user-seat license shared by a team, Mallory signs in by link and
    sets her address to her colleague Bob's (the portal only mails Bob a confirmation he
    ignores).  When Bob activates the app with his address, the server files Bob's seat,
    computer name and registration under Mallory's end user, whose link session is still
    open: Mallory sees Bob's computer name, exports his registration and frees his seat.

    Invariant: "on a user-seat license, each end user reaches only their own seat's
    data".  ``set_email`` lets a session take an address that is not (yet) proven to be
    its own, and ``attach_end_user`` then reuses any end user of the license with that
    address's hash, confirmed or not.
    """
    held = setup_license(portal_server, api, None, machines=0, seat_mode="user")
    mallory_email, bob_email = _email("mallory"), _email("bob")
    add_seat(portal_server, api, mailbox, held, mallory_email, machine="pc-mallory")
    with PortalUser(portal_server, held.product_id) as mallory:
        assert mallory.sign_in_by_link(mailbox, mallory_email).status_code == 303
        assert mallory.post("email", {"email": bob_email}).status_code == 303
        label = f"Bob laptop {secrets.token_hex(3)}"
        answer = api.activate(held.product_id, held.key, machine="pc-bob", password=PASSWORD,
                              email=bob_email, consent=True, label=label,
                              registration={"name": "Bob Example"})
        assert answer.status_code == 201, answer.text
        bobs_seat = answer.json()["activation_id"]
        page = mallory.get("license").text
        exported = json.loads(mallory.post("data/export").text)
    leaked = [what for what, shown in (
        ("Bob's seat on Mallory's license page", bobs_seat in page),
        ("Bob's computer name on Mallory's license page", label in page),
        ("Bob's seat in Mallory's export",
         bobs_seat in [a["id"] for a in exported["activations"]]),
        ("Bob's registration in Mallory's export", "Bob Example" in json.dumps(exported)),
    ) if shown]
    assert not leaked, leaked


# --------------------------------------------------------------------------- erasure


def test_erasure_leaves_no_hash_of_the_address_in_the_link_counters(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT.  Attack: after an end user erased their data in the portal, read the
    database files (a backup, a stolen copy) and look for the keyed hash of their address.

    Invariant (docs/privacy.md): after erasure the server holds nothing of the address;
    the opt-outs and the reminders' dedup keys are deleted because they hold the
    address's look-up hash.  The portal's link request counts mails per address in
    ``rate_limit_counters`` under ``portal-mail:<email_index[:32]>``: the hash of the
    erased address stays there (until some later rate-limit hit happens to sweep old
    buckets, 1 time in 50).
    """
    email = _email("erin")
    held = setup_license(portal_server, api, mailbox, email=email)
    (found,) = portal_server.admin.find_end_users(email)
    with db(portal_server) as session:
        person = session.get(EndUser, found["id"])
        assert person is not None and person.email_index is not None
        trace = person.email_index[:32]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        assert user.post("erase").status_code == 303
    with db(portal_server) as session:
        left = session.scalars(select(RateLimitCounter.key).where(
            RateLimitCounter.key.contains(trace))).all()
    assert left == [], f"the erased address's look-up hash is still kept: {left}"


def test_erasure_ends_the_password_sessions_opened_with_the_erased_password(
        portal_server: InProcessServer, api: Api) -> None:
    """DEFECT.  Attack: Mallory once learnt a machine license's activation password and keeps
    a portal session open with it.  The license holder erases their data from the app
    (``request_erasure``): the server deletes the activation password ("an erased license
    never silently becomes password-free"; the vendor sets a new one).  Mallory's session
    lives on: it still lists and frees the computers, and sets a new activation password
    of her choice without typing any (``change_password`` asks for the current one only
    while there is one).

    Invariant: a password session is as good as the password it was opened with; "an
    erasure or a changed password takes effect at once".  A changed password ends the
    license's password sessions (``set_license_password``); the erasure of the password
    (``erase_license_data``) ends none.
    """
    held = setup_license(portal_server, api, None, machines=1)
    first = held.activations[0]
    with PortalUser(portal_server, held.product_id) as mallory:
        assert mallory.sign_in(held.key).status_code == 303
        erased = api.erasure(first["activation_id"], first["activation_secret"])
        assert erased.status_code == 200, erased.text
        taken = mallory.post("password", {"password": "mallory's now",
                                          "repeat": "mallory's now"})
    with PortalUser(portal_server, held.product_id) as check:
        signed = check.sign_in(held.key, "mallory's now").status_code
    assert (taken.status_code, signed) != (303, 303), (
        "a password session opened before the erasure set a new activation password "
        "without knowing any")


# --------------------------------------------------------------------------- oracles


def test_a_link_request_takes_as_long_for_an_unknown_address(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """DEFECT (low).  Attack: time the answer to "mail me a sign-in link" to learn whether
    an address is a confirmed end user of the product (an enumeration of customers).

    Invariant: "the same 'if it is on file, a link is on its way' for every address".
    The page is the same, but for an address on file the request also creates the link
    rows, queues the mail (encrypting it) and audits, in the request: about 2 ms more
    in-process, every time.  Measured as a sign test: 16 addresses on file, each asked
    3 times (the mails per address per window) interleaved with an address not on file,
    the fastest of each 3 compared; without a difference, 14 or more of 16 "slower"
    happen 0.2 % of the time.
    """
    pid = "p-" + secrets.token_hex(4)
    portal_server.admin.setup_product(pid, name="Timing")
    known = [_email(f"known{n}") for n in range(16)]
    for address in known:
        setup_license(portal_server, api, mailbox, email=address, product_id=pid)
    drain(portal_server)
    slower = 0
    with PortalUser(portal_server, pid) as user:
        user.ask_link(_email("warm-up"))
        for address in known:
            took: dict[str, list[float]] = {"known": [], "unknown": []}
            for _ in range(3):
                for what, typed in (("unknown", _email("nobody")), ("known", address)):
                    start = time.perf_counter()
                    assert user.ask_link(typed).status_code == 200
                    took[what].append(time.perf_counter() - start)
            slower += min(took["known"]) > min(took["unknown"])
    assert slower < 14, f"{slower} of 16 addresses on file answered slower than unknown ones"


def test_the_access_log_does_not_keep_portal_link_tokens() -> None:
    """DEFECT (low).  Attack: read the server's access log (a log shipper, a support
    engineer) and collect the portal sign-in links' tokens.

    Invariant (server/logconfig.py): "no personal data in any line"; the token of an email
    confirmation link is cut from the logged path because it is a secret.  The portal's
    own mailed links (``/portal/{product}/link/{token}``, opened by GET and POST) are
    logged whole: half of a sign-in credential, and a marker of who signed in when.
    """
    token = secrets.token_urlsafe(32)
    for method in ("GET", "POST"):
        record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1,
                                   '%s - "%s %s HTTP/%s" %d',
                                   ("203.0.113.9:5000", method, f"/portal/acme/link/{token}",
                                    "1.1", 200), None)
        assert RedactAccessLog().filter(record)
        assert token not in record.getMessage(), record.getMessage()


# --------------------------------------------------------------------------- seats


def test_freeing_an_air_gapped_computer_does_not_give_its_seat_twice(
        portal_server: InProcessServer, api: Api) -> None:
    """DEFECT.  Attack: on a one-seat license of a product allowing air-gapped activation,
    answer an air-gapped request for computer A in the portal, free A in the portal, then
    answer a request for computer B: both computers run the app.  A never meets the
    server again, so it never learns it was freed, and its token lives the product's
    ``air_gapped_token_days`` (365 by default; for ever where perpetual).  Repeat within
    the release limit: a one-seat license runs on a new computer every ten days.

    Invariant: a license runs on at most ``seats`` computers.  The SDK frees an
    air-gapped seat only with the computer's signed deactivation receipt
    (``deactivate_offline``) and roll-over never takes an air-gapped seat "(they could
    not learn about it)"; the portal frees it on the holder's word.
    """
    held = setup_license(portal_server, api, None, machines=0, seats=1,
                         product={"air_gapped": True})
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in(held.key).status_code == 303
        first = user.post("offline", {"request": airgap_request(held.product_id, held.key,
                                                                "air-a"),
                                      "password": PASSWORD, "then": "download"})
        assert first.status_code == 200, first.text
        with db(portal_server) as session:
            (computer_a,) = session.scalars(select(Activation.id).where(
                Activation.license_id == held.license["id"])).all()
        user.post(f"activations/{computer_a}/release")
        second = user.post("offline", {"request": airgap_request(held.product_id, held.key,
                                                                 "air-b"),
                                       "password": PASSWORD, "then": "download"})
    assert (first.status_code, second.status_code) != (200, 200), (
        "two air-gapped computers hold answers for a one-seat license: the first was "
        "freed in the portal without its deactivation receipt")


# --------------------------------------------------------------------------- mail


def test_one_link_request_sends_one_mail(portal_server: InProcessServer, api: Api,
                                         mailbox: Mailbox) -> None:
    """DEFECT (low).  Attack: flood a customer's mailbox through "mail me a sign-in link".
    The portal counts requests per address (3 per window), but sends one mail per end-user
    record holding the address: a person who activated five licenses of the product gets
    five mails per request, fifteen per window from one attacker, more than
    ``LINK_MAILS_PER_WINDOW`` says ("so nobody can flood a mailbox through the portal").

    Invariant: one request, at most one mail (with every link in it).
    """
    pid = "p-" + secrets.token_hex(4)
    portal_server.admin.setup_product(pid, name="Mail flood")
    email = _email("flooded")
    for _ in range(3):
        setup_license(portal_server, api, mailbox, email=email, product_id=pid)
    drain(portal_server)
    with PortalUser(portal_server, pid) as attacker:
        before = len(mailbox.messages)
        assert attacker.ask_link(email).status_code == 200
        drain(portal_server)
        mailbox.wait_for(before + 1)
        got = [m for m in mailbox.messages[before:] if email in str(m["To"])]
    assert len(got) <= 1, f"one link request sent {len(got)} mails to {email}"


# --------------------------------------------------------------------------- defences that held


def test_a_planted_session_cookie_never_becomes_a_session(portal_server: InProcessServer,
                                                          api: Api) -> None:
    """Held.  Session fixation: a cookie value the attacker chose (planted from a sibling
    site) is not a session, and signing in replaces it with a fresh random one."""
    held = setup_license(portal_server, api, None)
    planted = secrets.token_urlsafe(32)
    with PortalUser(portal_server, held.product_id) as victim:
        victim.http.cookies.set("sdna_portal_session", planted, path="/portal")
        assert victim.get("license").status_code == 303  # not signed in
        signed = victim.sign_in(held.key)
        assert signed.status_code == 303
        assert "sdna_portal_session=" in signed.headers["set-cookie"]
        assert planted not in signed.headers["set-cookie"]
    with PortalUser(portal_server, held.product_id) as attacker:
        attacker.http.cookies.set("sdna_portal_session", planted, path="/portal")
        assert attacker.get("license").status_code == 303


def test_a_link_in_another_browser_fails_without_using_it_up(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Held.  A mail scanner or a thief opens the link (GET and POST) in another browser,
    with a made-up link cookie: refused, and the link still works once in the browser
    that asked for it (and then never again)."""
    email = _email("lea")
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as owner, \
            PortalUser(portal_server, held.product_id) as thief:
        before = len(mailbox.messages)
        assert owner.ask_link(email).status_code == 200
        drain(portal_server)
        link = portal_link(mailbox, before + 1)
        assert thief.http.get(link, allow_redirects=False).status_code == 200  # a button
        assert thief.http.post(link, allow_redirects=False).status_code == 401
        thief.http.cookies.set("sdna_portal_browser", secrets.token_urlsafe(32),
                               path="/portal")
        assert thief.http.post(link, allow_redirects=False).status_code == 401
        assert thief.get("license").status_code == 303
        assert owner.use_link(link).status_code == 303
        assert owner.get("email").status_code == 200
        assert owner.http.post(link, allow_redirects=False).status_code == 401


def test_the_mailed_link_ignores_the_host_the_request_named(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox) -> None:
    """Held.  Host header poisoning: a link request sent with ``Host``/``X-Forwarded-Host``
    of the attacker's site still mails a link to the configured public URL."""
    email = _email("hal")
    held = setup_license(portal_server, api, mailbox, email=email)
    with PortalUser(portal_server, held.product_id) as user:
        before = len(mailbox.messages)
        answer = user.http.post(user.url("link"), data={"email": email},
                                headers={"Host": "evil.example",
                                         "X-Forwarded-Host": "evil.example"},
                                allow_redirects=False)
        assert answer.status_code == 200
        drain(portal_server)
        link = portal_link(mailbox, before + 1)
    assert link.startswith(f"{portal_server.url}/portal/{held.product_id}/link/"), link


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example", "/portal/x/",
    "/portal/{pid}/../../\\\\evil.example", "/portal/{pid}//evil.example",
    "/portal/{pid}/\r\nSet-Cookie: sdna_portal_session=planted",
    "/portal/{pid}/%0d%0aSet-Cookie:%20a=b", "javascript:alert(1)//",
])
def test_the_language_form_redirects_only_inside_the_portal(
        portal_server: InProcessServer, api: Api, target: str) -> None:
    """Held.  Open redirect / header injection through the language form's ``next``."""
    pid = "p-lang"
    if pid not in {p["id"] for p in portal_server.admin.list_products()}:
        portal_server.admin.setup_product(pid, name="Lang")
    with PortalUser(portal_server, pid) as user:
        answer = user.post("language", {"lang": "de", "next": target.format(pid=pid)},
                           csrf="")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(f"/portal/{pid}/") and "\n" not in location, location
    assert not location.startswith("//") and "evil.example" not in location.split("/")[2:3]
    assert "planted" not in answer.headers.get("set-cookie", "").split("sdna_portal_session")[0]
    assert "sdna_portal_session" not in answer.headers.get("set-cookie", "")


def test_one_computer_freed_twice_at_once_counts_once(portal_server: InProcessServer,
                                                      api: Api, mailbox: Mailbox) -> None:
    """Held.  Race: a password session and a link session free the same computer at the
    same instant; one succeeds, the other is told it is gone, one release is counted."""
    email = _email("rae")
    held = setup_license(portal_server, api, mailbox, email=email, machines=3, seats=3)
    set_product(portal_server, held.product_id, portal_release_limit=2)
    target = held.activations[1]["activation_id"]
    with PortalUser(portal_server, held.product_id) as by_key, \
            PortalUser(portal_server, held.product_id) as by_link:
        assert by_key.sign_in(held.key).status_code == 303
        assert by_link.sign_in_by_link(mailbox, email).status_code == 303
        answers: list[int] = []
        start = threading.Barrier(2)

        def free(user: PortalUser) -> None:
            start.wait()
            answers.append(user.post(f"activations/{target}/release").status_code)

        threads = [threading.Thread(target=free, args=(u,)) for u in (by_key, by_link)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(answers) == [303, 404], answers
        assert "You may free 1 more computer(s) now" in by_key.get("license").text


def test_markup_in_a_label_or_registration_stays_text(portal_server: InProcessServer,
                                                      api: Api, mailbox: Mailbox) -> None:
    """Held.  HTML injection: the app (or whoever holds the key and password) sets a
    computer name and registration details with markup; the portal pages show them as
    text, and the pages allow no script anyway (CSP)."""
    email = _email("xss")
    held = setup_license(portal_server, api, None, machines=0)
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&'
    seat = add_seat(portal_server, api, mailbox, held, email, machine="xss-pc", label=evil,
                    registration={"name": evil})
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        for path in ("license", "data", f"activations/{seat['activation_id']}/release"):
            page = user.get(path)
            assert page.status_code == 200, path
            assert "<script>alert(1)" not in page.text and "<img src=x" not in page.text, path
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text, path
            assert "script-src" not in page.headers["content-security-policy"]
            assert "default-src 'none'" in page.headers["content-security-policy"]


def test_malformed_posts_get_a_4xx_never_a_5xx(portal_server: InProcessServer, api: Api,
                                               mailbox: Mailbox) -> None:
    """Held.  Non-UTF-8 bytes, NUL characters, repeated and surplus fields, multipart with
    files, JSON bodies, garbage content types and odd product ids, on every portal form of
    a link session: never a server error (and nothing is changed by a refused one)."""
    email = _email("fuzz")
    held = setup_license(portal_server, api, mailbox, email=email,
                         product={"air_gapped": True})
    act = held.activations[0]["activation_id"]
    forms = ["sign-in", "link", "link/tok", "language", "password", "email", "email/remove",
             "data/export", "offline", f"activations/{act}/release", "sign-out"]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        csrf = (user.csrf or "").encode()
        bodies: list[tuple[bytes, str]] = [
            (b"csrf=" + csrf + b"&email=%ff%fe&license_key=\xff\xfe&password=\xc3"
             b"&request=\xff&lang=\xff&next=\xff&current=\xc0",
             "application/x-www-form-urlencoded"),
            (b"csrf=" + csrf + b"&email=a%00@b.c&license_key=A%00B&password=%00"
             b"&request=%00&lang=%00&next=%00", "application/x-www-form-urlencoded"),
            (b"csrf=" + csrf + b"&" + b"&".join([b"email=a@b.c"] * 30 + [b"csrf=zz"]),
             "application/x-www-form-urlencoded"),
            (b"&".join(b"f%d=1" % n for n in range(3000)), "application/x-www-form-urlencoded"),
            (b'{"csrf": "x", "email": "a@b.c"}', "application/json"),
            (b"\x00\x01\x02", "multipart/form-data"),
            (b"--zz\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + csrf
             + b"\r\n--zz\r\nContent-Disposition: form-data; name=\"email\"; filename=\"a\"\r\n"
             b"Content-Type: text/html\r\n\r\n<b>x</b>\r\n--zz--\r\n",
             "multipart/form-data; boundary=zz"),
        ]
        for path in forms:
            for body, content_type in bodies:
                answer = user.http.post(user.url(path), data=body, allow_redirects=False,
                                        headers={"Content-Type": content_type})
                assert answer.status_code < 500, (path, body[:40], answer.text[:200])
        for odd in ("%00", "a%00b", "%ff", "x" * 300, "%C3%A9", "%0d%0a", "%20", "%252F"):
            for sub in ("", "license", "logo", "brand.css", "link/t%00", "sign-in", "link"):
                for method in ("GET", "POST"):
                    answer = user.http.request(method, f"{portal_server.url}/portal/{odd}/{sub}",
                                               data={"csrf": user.csrf or ""},
                                               allow_redirects=False)
                    assert answer.status_code < 500, (method, odd, sub, answer.text[:200])


@pytest.mark.parametrize("headers", [
    {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
    {"Origin": "http://inprocess.invalid.evil.example"},
    {"Origin": "http://evil.example", "Sec-Fetch-Site": "same-origin"},
])
def test_cross_site_posts_are_refused_even_with_the_right_token(
        portal_server: InProcessServer, api: Api, mailbox: Mailbox,
        headers: dict[str, str]) -> None:
    """Held.  A form posted by another site's page (or a ``data:``/``file:`` page, or a
    sibling subdomain) is refused, even carrying the victim's valid CSRF token and
    cookie, for the signed-in forms and for signing in (login CSRF) alike; nothing
    changes."""
    email = _email("csrf")
    held = setup_license(portal_server, api, mailbox, email=email, machines=2)
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        ignore = {"portal_sessions": {"last_seen_at"}}
        before = tables(portal_server, ignore=ignore)
        posts = [("erase", {}), ("email/remove", {}), ("data/export", {}),
                 (f"activations/{held.activations[1]['activation_id']}/release", {}),
                 ("password", {"password": "csrf new", "repeat": "csrf new"}),
                 ("sign-in", {"license_key": held.key, "password": PASSWORD}),
                 ("link", {"email": email}), ("sign-out", {})]
        for path, data in posts:
            answer = user.post(path, data, headers=headers)
            assert answer.status_code == 403, (path, answer.status_code)
        assert tables(portal_server, ignore=ignore) == before


def test_a_logo_that_is_also_html_is_served_as_an_inert_image(
        portal_server: InProcessServer) -> None:
    """Held.  The vendor (or whoever holds a products key) uploads a PNG that is also an
    HTML/SVG page; an SVG is refused, and the polyglot is served as ``image/png`` with
    ``nosniff`` and a CSP that runs nothing."""
    pid = "p-" + secrets.token_hex(4)
    portal_server.admin.setup_product(pid, name="Logo")
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    http = portal_server.session()
    url = f"{portal_server.url}/v1/admin/products/{pid}/logo"
    auth = {"Authorization": f"Bearer {portal_server.admin_key}"}
    refused = http.put(url, data=svg, headers={**auth, "Content-Type": "image/svg+xml"})
    assert refused.status_code in (400, 415), refused.text
    polyglot = b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>"
    stored = http.put(url, data=polyglot,
                      headers={**auth, "Content-Type": "application/octet-stream"})
    assert stored.status_code == 200, stored.text
    served = http.get(f"{portal_server.url}/portal/{pid}/logo")
    assert served.status_code == 200
    assert served.headers["content-type"] == "image/png"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'"


def test_address_changes_cannot_flood_mailboxes(portal_server: InProcessServer, api: Api,
                                                mailbox: Mailbox) -> None:
    """Held.  Mail flooding through the email page: a link session changes its address
    again and again, to addresses of people it wants to spam (each change mails a
    confirmation link).  At most 3 changes per window go through; the 4th is refused
    next to its field and mails nothing."""
    email = _email("spammer")
    held = setup_license(portal_server, api, mailbox, email=email)
    victims = [_email(f"victim{n}") for n in range(5)]
    with PortalUser(portal_server, held.product_id) as user:
        assert user.sign_in_by_link(mailbox, email).status_code == 303
        before = len(mailbox.messages)
        answers = [user.post("email", {"email": victim}).status_code for victim in victims]
        drain(portal_server)
    assert answers == [303, 303, 303, 429, 429], answers
    mailed = [m for m in mailbox.messages[before:]
              if any(v in str(m["To"]) for v in victims)]
    assert 1 <= len(mailed) <= 3, [str(m["To"]) for m in mailed]


# --------------------------------------------------------------------------- PostgreSQL


@pytest.fixture(scope="module")
def pg_portal_server(tmp_path_factory: pytest.TempPathFactory, mailbox: Mailbox,
                     pg_databases: Any) -> Iterator[InProcessServer]:
    """The app in-process on a fresh PostgreSQL database, mailing to ``mailbox``."""
    with InProcessServer(tmp_path_factory.mktemp("portal-attacks-pg"),
                         env={**mail_env(mailbox), **ROOMY},
                         database_url=pg_databases.create()) as srv:
        yield srv


@pytest.mark.postgres
def test_a_nul_in_a_path_gets_a_4xx_on_postgresql(pg_portal_server: InProcessServer) -> None:
    """DEFECT (low).  Attack: put a NUL character (``%00``) in the product id or the
    activation id of a portal address, on a server that runs on PostgreSQL.

    Invariant: "The server answers malformed input with a 4xx and a clear message, never a
    500".  PostgreSQL text cannot hold NUL: the sign-in page, the logo, the stylesheet
    and the release page look the raw path parameter up in the database
    (``session.get(Product, product_id)`` / ``session.get(Activation, ...)``) and the
    driver's ``DataError`` becomes a 500.
    """
    api = Api.for_server(pg_portal_server)
    try:
        held = setup_license(pg_portal_server, api, None)
    finally:
        api.close()
    answers = {}
    with PortalUser(pg_portal_server, held.product_id) as user:
        for path in ("/portal/a%00b/", "/portal/a%00b/logo", "/portal/a%00b/brand.css"):
            answers["GET " + path] = user.http.get(pg_portal_server.url + path,
                                                   allow_redirects=False).status_code
        answers["POST sign-in"] = user.http.post(
            pg_portal_server.url + "/portal/a%00b/sign-in",
            data={"license_key": held.key, "password": PASSWORD},
            allow_redirects=False).status_code
        assert user.sign_in(held.key).status_code == 303
        answers["GET release"] = user.get("activations/a%00b/release").status_code
        answers["POST release"] = user.post("activations/a%00b/release").status_code
    failed = {what: status for what, status in answers.items() if status >= 500}
    assert not failed, failed
