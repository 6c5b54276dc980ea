"""The portal speaks the end user's language: every page in English and in German.

The language comes from ``?lang=`` (kept in a cookie), else the cookie set when
the end user chose one, else ``Accept-Language``.  A page is checked as a whole:
``<html lang>``, ``Content-Language``, and none of the other language's texts
(every text of the ``portal`` catalogue whose translation differs).
"""

from __future__ import annotations

import html
import re
import secrets
from functools import cache

import pytest
import requests
from babel.messages.pofile import read_po
from tools.catalogues import LOCALE

from software_dna.server.testing import InProcessServer
from tests.portal.helpers import PortalUser, portal_link, setup_license
from tests.server.helpers import Api
from tests.server.mailing import drain
from tests.smtp import Mailbox

_PLACEHOLDER = re.compile(r"%\([^)]*\)[a-z]")
_TAG = re.compile(r"<[^>]+>")
LANG_COOKIE = "sdna_portal_lang"


@cache
def _texts() -> dict[str, frozenset[str]]:
    """Per language, the fragments (between placeholders) of the texts that differ from
    the other language's: what must not show on a page in the other language."""
    with (LOCALE / "de" / "LC_MESSAGES" / "portal.po").open("rb") as source:
        catalog = read_po(source)
    english: set[str] = set()
    german: set[str] = set()
    for message in catalog:
        if not isinstance(message.id, str) or not isinstance(message.string, str) \
                or not message.id or message.string == message.id:
            continue
        english.update(_PLACEHOLDER.split(message.id))
        german.update(_PLACEHOLDER.split(message.string))
    english = {text.strip() for text in english if len(text.strip()) >= 4}
    german = {text.strip() for text in german if len(text.strip()) >= 4}
    # A word both languages use ("Computer", "Status") tells nothing.
    return {"en": frozenset(t for t in english if not any(t in other for other in german)),
            "de": frozenset(t for t in german if not any(t in other for other in english))}


def _text_of(page: str) -> str:
    """The page's visible text (and its title), tags removed, entities decoded."""
    return html.unescape(_TAG.sub(" ", page))


def assert_speaks(answer: requests.Response, language: str, *expected: str) -> None:
    """The page is in ``language``: its ``lang``, its ``Content-Language``, the
    ``expected`` texts present, and no text of the other language left."""
    assert f'<html lang="{language}">' in answer.text, answer.text[:300]
    assert answer.headers["Content-Language"] == language
    text = _text_of(answer.text)
    for wanted in expected:
        assert wanted in text, f"{wanted!r} missing from the {language} page"
    other = "de" if language == "en" else "en"
    left = sorted(fragment for fragment in _texts()[other] if fragment in text)
    assert not left, f"{other} texts on the {language} page: {left}"


# The pages' own texts, per language (titles and a sentence of each).
T = {
    "en": {"sign_in": ["Manage your Acme Editor license", "License key", "Activation password"],
           "wrong": ["The license key or the activation password is wrong."],
           "sent": ["Check your mail", "minutes, and only in this browser"],
           "open": ["Sign in to the license portal", "Continue"],
           "failed": ["Link not valid", "This sign-in link cannot be used"],
           "license": ["Your license", "Computers using this license", "Sign out"],
           "release": ["Free a computer", "Free this computer"],
           "freed": ["The computer was freed."],
           "unknown": ["Computer not found"],
           "expired": ["Form expired"],
           "signed_out": ["You are signed out."],
           "no_product": ["Page not found"],
           "home": ["Open the license portal from your app"],
           "password": ["Change", "New activation password", "Save the new password"],
           "repeat": ["The two new passwords differ."],
           "changed": ["The activation password is changed."],
           "email": ["Your email address", "Address on file", "Remove my address"],
           "bad_email": ["Enter a whole email address"],
           "same_email": ["This is the address on file already."],
           "data": ["My data", "Registration details", "Download my data (JSON)"],
           "erase": ["Erase my data", "What happens to each license", "Erase my data now"],
           "erased": ["Your personal data is erased.", "Limited"],
           "offline": ["Activation request", "Answer the request"],
           "no_request": ["Paste the activation request the app showed."],
           "bad_request": ["This is not a valid activation request"],
           "personal": ["Sign in with an email link"]},
    "de": {"sign_in": ["Ihre Lizenz für Acme Editor verwalten", "Lizenzschlüssel",
                       "Aktivierungspasswort"],
           "wrong": ["Der Lizenzschlüssel oder das Aktivierungspasswort ist falsch."],
           "sent": ["Prüfen Sie Ihr Postfach", "Minuten lang und nur in diesem Browser"],
           "open": ["Beim Lizenzportal anmelden", "Weiter"],
           "failed": ["Link ungültig", "Dieser Anmeldelink kann nicht verwendet werden"],
           "license": ["Ihre Lizenz", "Computer, die diese Lizenz verwenden", "Abmelden"],
           "release": ["Einen Computer freigeben", "Diesen Computer freigeben"],
           "freed": ["Der Computer wurde freigegeben."],
           "unknown": ["Computer nicht gefunden"],
           "expired": ["Formular abgelaufen"],
           "signed_out": ["Sie sind abgemeldet."],
           "no_product": ["Seite nicht gefunden"],
           "home": ["Öffnen Sie das Lizenzportal aus Ihrer App"],
           "password": ["Ändern", "Neues Aktivierungspasswort", "Neues Passwort speichern"],
           "repeat": ["Die beiden neuen Passwörter stimmen nicht überein."],
           "changed": ["Das Aktivierungspasswort wurde geändert."],
           "email": ["Ihre E-Mail-Adresse", "Hinterlegte Adresse", "Meine Adresse entfernen"],
           "bad_email": ["Geben Sie eine vollständige E-Mail-Adresse ein"],
           "same_email": ["Diese Adresse ist bereits hinterlegt."],
           "data": ["Meine Daten", "Registrierungsangaben", "Meine Daten herunterladen (JSON)"],
           "erase": ["Meine Daten löschen", "Was mit jeder Lizenz geschieht",
                     "Meine Daten jetzt löschen"],
           "erased": ["Ihre personenbezogenen Daten wurden gelöscht.", "Eingeschränkt"],
           "offline": ["Aktivierungsanfrage", "Anfrage beantworten"],
           "no_request": ["Fügen Sie die Aktivierungsanfrage ein, die die App angezeigt hat."],
           "bad_request": ["Dies ist keine gültige Aktivierungsanfrage"],
           "personal": ["Mit einem Link per E-Mail anmelden"]},
}


@pytest.mark.parametrize("language", ["en", "de"])
def test_every_page_in_both_languages(portal_server: InProcessServer, api: Api,
                                      mailbox: Mailbox, language: str) -> None:
    email = f"holder-{secrets.token_hex(3)}@example.com"
    held = setup_license(portal_server, api, mailbox, email=email, machines=2,
                         product={"air_gapped": True})
    said = T[language]
    header = "de-DE,de;q=0.9,en;q=0.5" if language == "de" else "en-GB,en;q=0.9,de;q=0.5"
    with PortalUser(portal_server, held.product_id, language=header) as user:
        assert_speaks(user.http.get(f"{portal_server.url}/portal/"), language, *said["home"])
        assert_speaks(user.http.get(f"{portal_server.url}/portal/no-such-product/"), language,
                      *said["no_product"])
        assert_speaks(user.get(), language, *said["sign_in"])
        wrong = user.sign_in(held.key, "not the password")
        assert wrong.status_code == 401
        assert_speaks(wrong, language, *said["wrong"])
        failed = user.http.post(user.url("link/" + "A" * 43), allow_redirects=False)
        assert failed.status_code == 401
        assert_speaks(failed, language, *said["failed"])

        # Signing in by a mailed link walks the link pages.
        before = len(mailbox.messages)
        sent = user.ask_link(email)
        assert_speaks(sent, language, *said["sent"])
        drain(portal_server)
        link = portal_link(mailbox, before + 1)
        assert_speaks(user.http.get(link), language, *said["open"])
        assert user.use_link(link).status_code == 303

        assert_speaks(user.get("license"), language, *said["license"])
        activation = held.activations[1]["activation_id"]
        assert_speaks(user.get(f"activations/{activation}/release"), language,
                      *said["release"])
        unknown = user.get("activations/no-such-activation/release")
        assert unknown.status_code == 404
        assert_speaks(unknown, language, *said["unknown"])
        done = user.post(f"activations/{activation}/release")
        assert done.status_code == 303
        assert_speaks(user.get("license"), language, *said["freed"])
        # The air-gapped page, its refusals next to the field.
        assert_speaks(user.get("offline"), language, *said["offline"])
        assert_speaks(user.post("offline", {"request": " "}), language, *said["no_request"])
        assert_speaks(user.post("offline", {"request": "not a request"}), language,
                      *said["bad_request"])
        # The personal pages (a session opened by a mailed link).
        assert_speaks(user.get("data"), language, *said["data"])
        assert_speaks(user.get("email"), language, *said["email"])
        bad = user.post("email", {"email": "not an address"})
        assert bad.status_code == 400
        assert_speaks(bad, language, *said["bad_email"])
        assert user.post("email", {"email": email}).status_code == 303
        assert_speaks(user.get("email"), language, *said["same_email"])
        # The password page, an error next to its field, and the notice of a change.
        assert_speaks(user.get("password"), language, *said["password"])
        differ = user.post("password", {"password": "new secret", "repeat": "other"})
        assert differ.status_code == 400
        assert_speaks(differ, language, *said["repeat"])
        assert user.post("password", {"password": "new secret",
                                      "repeat": "new secret"}).status_code == 303
        assert_speaks(user.get("license"), language, *said["changed"])
        assert_speaks(user.get("erase"), language, *said["erase"])
        assert user.post("erase").status_code == 303
        assert_speaks(user.get("license"), language, *said["erased"])
        # Erased: the personal pages say how to reach them (here: no longer).
        refused = user.get("data")
        assert refused.status_code == 403
        assert_speaks(refused, language, *said["personal"])
        expired = user.post("sign-out", csrf="0" * 64)
        assert expired.status_code == 403
        assert_speaks(expired, language, *said["expired"])
        assert user.post("sign-out").status_code == 303
        assert_speaks(user.get(), language, *said["signed_out"], *said["sign_in"])


def test_accept_language_picks_the_best_shipped_language(portal_server: InProcessServer,
                                                         api: Api) -> None:
    held = setup_license(portal_server, api, None)
    for header, language in [("fr, de;q=0.5", "de"), ("xx", "en"), ("de;q=0.4, en;q=0.6", "en"),
                             ("de-AT", "de"), ("*", "en"), ("de;q=2, en;q=0.1", "en"),
                             ("de," + "x" * 2000, "en"), (";;;,,,", "en")]:
        with PortalUser(portal_server, held.product_id, language=header) as user:
            page = user.get()
            assert page.status_code == 200
            assert_speaks(page, language)
            # Negotiated, not chosen: no cookie remembers it.
            assert LANG_COOKIE not in page.cookies


def test_lang_parameter_is_kept_in_a_cookie(portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id, language="en") as user:
        page = user.get("?lang=de")
        assert_speaks(page, "de", *T["de"]["sign_in"])
        assert page.cookies.get(LANG_COOKIE) == "de"
        # The choice outweighs the browser's languages, on every page after.
        assert_speaks(user.get(), "de")
        assert user.sign_in(held.key).status_code == 303
        assert_speaks(user.get("license"), "de", *T["de"]["license"])
        # ?lang= outweighs the cookie, and changes it.
        assert_speaks(user.get("license?lang=en"), "en", *T["en"]["license"])
        assert_speaks(user.get("license"), "en")


@pytest.mark.parametrize("given", ["xx", "<script>", "de\"><b>", "*", "", "d" * 5000])
def test_a_lang_the_portal_does_not_ship_changes_nothing(portal_server: InProcessServer,
                                                         api: Api, given: str) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id, language="de") as user:
        page = user.get("", params={"lang": given})
        assert page.status_code == 200
        assert_speaks(page, "de")
        assert LANG_COOKIE not in page.cookies
        # A forged cookie is no better.
        user.http.cookies.set(LANG_COOKIE, given or "x", path="/portal")
        assert_speaks(user.get(), "de")
        user.http.cookies.set(LANG_COOKIE, "en", path="/portal")
        assert_speaks(user.get(), "en")


def test_the_language_form_sets_the_cookie(portal_server: InProcessServer, api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        page = user.get()
        assert_speaks(page, "en")
        # The form is on every page, labelled, and offers every shipped language.
        assert '<label for="lang-choice">Language</label>' in page.text
        assert re.search(r'<option value="de"[^>]*>Deutsch</option>', page.text)
        assert not re.search(r'<option value="de"[^>]*\bselected\b', page.text)
        assert user.sign_in(held.key).status_code == 303
        chosen = user.post("language", {"lang": "de",
                                        "next": f"/portal/{held.product_id}/license"})
        assert chosen.status_code == 303
        assert chosen.headers["location"] == f"/portal/{held.product_id}/license"
        assert chosen.cookies.get(LANG_COOKIE) == "de"
        cookie = next(c for c in chosen.cookies if c.name == LANG_COOKIE)
        assert cookie.has_nonstandard_attr("HttpOnly")
        licence = user.get("license")
        assert_speaks(licence, "de", *T["de"]["license"])
        assert re.search(r'<option value="de"[^>]*\bselected\b[^>]*>Deutsch</option>',
                         licence.text)
        # An unknown language keeps the current one.
        assert user.post("language", {"lang": "xx"}).status_code == 303
        assert_speaks(user.get("license"), "de")


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example/x",
                                    "/portal/other-product/", "/portal/%s/\\\\elsewhere",
                                    "/portal/%s//elsewhere.example", "javascript:alert(1)"])
def test_the_language_form_goes_back_only_into_its_portal(
        portal_server: InProcessServer, api: Api, target: str) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id) as user:
        chosen = user.post("language", {"lang": "de", "next": target.replace(
            "%s", held.product_id)})
        assert chosen.status_code == 303
        assert chosen.headers["location"] == f"/portal/{held.product_id}/"


def test_another_site_cannot_choose_the_language(portal_server: InProcessServer,
                                                 api: Api) -> None:
    held = setup_license(portal_server, api, None)
    with PortalUser(portal_server, held.product_id, language="de") as user:
        refused = user.post("language", {"lang": "en"},
                            headers={"Sec-Fetch-Site": "cross-site"})
        assert refused.status_code == 403
        assert LANG_COOKIE not in refused.cookies
        assert_speaks(refused, "de", "Formular abgelehnt")
        assert_speaks(user.get(), "de")
