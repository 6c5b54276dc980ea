"""Message catalogues: language negotiation, complete catalogues, and their build.

The catalogues are checked against a fresh extraction of the sources (Babel,
with the project's mapping files), so a text added to a page or to the SDK
without its translations fails here, not in front of an end user.
"""

from __future__ import annotations

import gettext
import shutil
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from tools.catalogues import (
    DOMAINS,
    LOCALE,
    CatalogueError,
    check,
    compile_catalogues,
    extract,
    placeholders,
    update,
)

from software_dna.i18n import DEFAULT, LANGUAGES, LOCALE_DIR, negotiate, normalize, translation

TRANSLATED = sorted(set(LANGUAGES) - {DEFAULT})


@pytest.fixture(scope="module")
def extracted() -> dict[str, Catalog]:
    """Each domain's messages as the sources have them now."""
    return {domain: extract(domain) for domain in DOMAINS}


# ---- choosing the language -------------------------------------------------------------

@pytest.mark.parametrize(("given", "expected"), [
    ("de", "de"), ("DE", "de"), ("de-AT", "de"), ("de-CH-1996", "de"), ("de_DE.UTF-8", "de"),
    ("de_DE@euro", "de"), ("de_DE.UTF-8@euro", "de"), (" en-GB ", "en"), ("EN_gb", "en"),
    ("fr", None), ("xx", None), ("C", None), ("POSIX", None), ("*", None), ("", None),
    (None, None), ("d", None), ("deutsch", None), ("de--AT", None), ("de-", None),
    ("de;q=1", None), ("../de", None), ("de\x00", None), ("de-" + "a" * 200, None),
    ("de-" + "-".join(["ab"] * 1000), None),
])
def test_normalize_names_a_shipped_language_or_none(given: str | None,
                                                    expected: str | None) -> None:
    assert normalize(given) == expected


@pytest.mark.parametrize(("header", "expected"), [
    ("de", "de"),
    ("fr, de;q=0.5", "de"),                      # the first shipped language wins
    ("de;q=0.5, en;q=0.8", "en"),                # by weight, not by position
    ("en;q=0.8, de;q=0.9", "de"),
    ("de, en", "de"), ("en, de", "en"),          # ties: as written
    ("de;q=0.7, en;q=0.7", "de"),
    ("en;q=0.700, de;q=0.7", "en"),
    ("de-CH, en;q=0.5", "de"),                   # a region tag names its language
    ("en-US,en;q=0.9,de;q=0.8", "en"),
    ("*", "en"), ("*, de;q=0.1", "de"),          # a wildcard names no language
    ("de;q=0", "en"), ("de;q=0.000, en", "en"),  # q=0: not acceptable
    ("DE;Q=1.0", "de"), ("de ; q = 0.5", "de"),
    ("xx", "en"), ("fr, it;q=0.9", "en"),
    # Malformed weights skip their range, never the whole header.
    ("de;q=2, en;q=0.1", "en"), ("de;q=-1", "en"), ("de;q=abc", "en"), ("de;q=", "en"),
    ("de;q=0.12345", "en"), ("de;q=1.5", "en"), ("de;q=0.5;q=0.9", "en"), ("de;level=1", "en"),
    ("de;q=0.5abc, en;q=0.1", "en"),
    # Garbage.
    ("", "en"), (None, "en"), (",,,;;;", "en"), (";q=0.9", "en"), ("q=1", "en"),
    ("de\x00", "en"), ("\u00e4\u00f6\u00fc", "en"), ("de;q=\u0660.5", "en"),
])
def test_negotiate_accept_language(header: str | None, expected: str) -> None:
    assert negotiate(header) == expected


def test_negotiate_bounds_huge_headers() -> None:
    # Only the first 30 ranges count, and a header over 1000 characters is not read.
    assert negotiate(", ".join(["fr"] * 29 + ["de"])) == "de"
    assert negotiate(", ".join(["fr"] * 30 + ["de"])) == "en"
    assert negotiate("de;q=0.5," + "x" * 990) == "de"
    assert negotiate("de," + "fr," * 400) == "en"
    assert negotiate("de-" + "a" * 5000) == "en"
    assert negotiate("de", default="de") == "de"
    assert negotiate("fr", default="de") == "de"


def test_translation_falls_back_to_english_and_never_raises() -> None:
    assert translation(None, "portal").gettext("Sign out") == "Sign out"
    assert translation("fr", "portal").gettext("Sign out") == "Sign out"
    assert translation("en", "portal").gettext("Sign out") == "Sign out"
    assert translation("de", "no-such-domain").gettext("Sign out") == "Sign out"
    assert translation("de", "portal").gettext("not a message of ours") == \
        "not a message of ours"


def test_german_portal_texts_come_from_the_catalogue() -> None:
    german = translation("de-DE", "portal")
    assert german.gettext("Sign out") == "Abmelden"
    assert german.gettext("Too many attempts. Try again in %(minutes)s minutes.") % {
        "minutes": 5} == "Zu viele Versuche. Versuchen Sie es in 5 Minuten erneut."


# ---- every shipped language is complete ------------------------------------------------

@pytest.mark.parametrize("language", TRANSLATED)
@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_every_message_is_translated(extracted: dict[str, Catalog], domain: str,
                                     language: str) -> None:
    template = extracted[domain]
    messages = [message for message in template if message.id]
    po = LOCALE / language / "LC_MESSAGES" / f"{domain}.po"
    if not messages:
        return  # nothing to translate in this domain yet
    assert po.exists(), f"{po} is missing: run `make messages` and translate it"
    catalog = check(po)
    missing, fuzzy, broken = [], [], []
    for message in messages:
        found = catalog.get(message.id, message.context)
        if found is None:
            missing.append(message.id)
        elif found.fuzzy:
            fuzzy.append(message.id)
        elif isinstance(message.id, str):
            if not isinstance(found.string, str) or not found.string.strip():
                missing.append(message.id)
            elif placeholders(found.string) != placeholders(message.id):
                broken.append((message.id, found.string))
        elif not isinstance(found.string, (tuple, list)) or \
                not all(form.strip() for form in found.string):
            missing.append(message.id)
    assert not missing, f"untranslated in {po} (run `make messages`): {missing}"
    assert not fuzzy, f"fuzzy (to check) in {po}: {fuzzy}"
    assert not broken, f"placeholders differ in {po}: {broken}"


@pytest.mark.parametrize("domain", sorted(DOMAINS))
def test_the_templates_are_up_to_date(extracted: dict[str, Catalog], domain: str) -> None:
    pot = LOCALE / f"{domain}.pot"
    assert pot.exists(), f"{pot} is missing: run `make messages`"
    with pot.open("rb") as source:
        stored = read_po(source)
    now = {message.id for message in extracted[domain] if message.id}
    kept = {message.id for message in stored if message.id}
    assert now == kept, f"{pot} is stale: run `make messages` (new: {now - kept}, " \
        f"gone: {kept - now})"


def test_the_portal_catalogue_holds_the_pages_texts(extracted: dict[str, Catalog]) -> None:
    # Both extractors are wired: Python page code (translate, N_) and the templates
    # ({{ _() }}, {% trans %} with variables, as new-style %(name)s placeholders).
    ids = {message.id for message in extracted["portal"]}
    assert "Too many attempts. Try again in %(minutes)s minutes." in ids  # translate()
    assert "Refused" in ids                                               # N_()
    assert "Skip to content" in ids                                       # {{ _() }}
    assert "Manage your %(product)s license" in ids                       # {% trans %}
    # The SDK's domain never takes the server's texts (web.py marks "Refused" with N_,
    # a keyword of the SDK's mapping too).
    sdk = {message.id for message in extracted["software_dna"]}
    assert not sdk & {"Refused", "Sign in with an email link", "License portal"}


# ---- the build ---------------------------------------------------------------------------

def test_placeholders() -> None:
    assert placeholders("Try again in %(minutes)s minutes.") == ["%(minutes)s"]
    assert placeholders("%(a)s and %(b)d, %s, 100%%") == ["%(a)s", "%(b)d", "%s"]
    assert placeholders("100 %!") == ["%!"]
    assert placeholders("no placeholder") == []


@pytest.mark.parametrize(("msgid", "msgstr"), [
    ("Try again in %(minutes)s minutes.", "Versuchen Sie es später erneut."),    # dropped
    ("Try again later.", "In %(minutes)s Minuten erneut versuchen."),            # unknown
    ("Try again later.", "Zu 100 % später."),                                    # stray %
])
def test_a_translation_with_other_placeholders_does_not_compile(
        tmp_path: Path, msgid: str, msgstr: str) -> None:
    po = tmp_path / "de" / "LC_MESSAGES" / "portal.po"
    po.parent.mkdir(parents=True)
    po.write_text(f'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=utf-8\\n"\n\n'
                  f'msgid "{msgid}"\nmsgstr "{msgstr}"\n', encoding="utf-8")
    with pytest.raises(CatalogueError, match="placeholders"):
        compile_catalogues(tmp_path / "out", locale=tmp_path)
    assert not (tmp_path / "out").exists()


def test_a_broken_po_file_does_not_compile(tmp_path: Path) -> None:
    po = tmp_path / "de" / "LC_MESSAGES" / "portal.po"
    po.parent.mkdir(parents=True)
    po.write_text('msgid "Sign out"\nmgstr "Abmelden"\n', encoding="utf-8")
    with pytest.raises(CatalogueError):
        compile_catalogues(locale=tmp_path)


def test_every_po_compiles_into_a_catalogue_gettext_reads(tmp_path: Path) -> None:
    written = compile_catalogues(tmp_path, only_stale=False)
    expected = {po.relative_to(LOCALE).with_suffix(".mo")
                for po in LOCALE.glob("*/LC_MESSAGES/*.po")}
    assert {mo.relative_to(tmp_path) for mo in written} == expected
    assert Path("de/LC_MESSAGES/portal.mo") in expected
    german = gettext.translation("portal", localedir=str(tmp_path), languages=["de"])
    assert german.gettext("Sign out") == "Abmelden"
    # Compiled again only when a .po is newer than its .mo.
    assert compile_catalogues(tmp_path) == []
    # The catalogues are built where the package reads them.
    assert LOCALE.resolve() == LOCALE_DIR.resolve()


def test_extraction_is_idempotent(tmp_path: Path) -> None:
    # `make messages` twice: the second run rewrites nothing (no churn in git).
    locale = tmp_path / "locale"
    shutil.copytree(LOCALE, locale, ignore=shutil.ignore_patterns("*.mo"))
    update(locale=locale)
    before = {path: path.read_bytes() for path in locale.rglob("*.po*")}
    assert update(locale=locale) == []
    assert {path: path.read_bytes() for path in locale.rglob("*.po*")} == before
