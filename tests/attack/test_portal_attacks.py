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
    in-process, every time (a sign test over 12 interleaved pairs, each address asked
    once; without a difference, 11 or more of 12 happen 0.3 % of the time).
    """
    pid = "p-" + secrets.token_hex(4)
    portal_server.admin.setup_product(pid, name="Timing")
    known = [_email(f"known{n}") for n in range(12)]
    for address in known:
        setup_license(portal_server, api, mailbox, email=address, product_id=pid)
    drain(portal_server)
    slower = 0
    with PortalUser(portal_server, pid) as user:
        user.ask_link(_email("warm-up"))
        for address in known:
            took = {}
            for what, typed in (("unknown", _email("nobody")), ("known", address)):
                start = time.perf_counter()
                assert user.ask_link(typed).status_code == 200
                took[what] = time.perf_counter() - start
            slower += took["known"] > took["unknown"]
    assert slower <= 10, f"{slower} of 12 known addresses answered slower than unknown ones"


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
