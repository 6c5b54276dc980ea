"""``LicenseClient(language=...)``: the SDK's end-user messages from its message catalogue.

English is the source: a client without a language, with ``"en"`` or with a
language not shipped says exactly what it always said. German ships complete:
every ``N_``-marked sentence of the SDK has a translation with the same
placeholders, and the exceptions an app shows (local checks, the server's
refusals, messages with values) arrive in German.
"""

from __future__ import annotations

import gettext
import re
import secrets
import socket
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po

import software_dna
from software_dna import (
    ActivationError,
    ActivationLocked,
    ConsentRequired,
    LicenseClient,
    LicenseError,
    NotActivated,
    ServerUnreachable,
    StoreCorrupted,
    UnknownLicenseKey,
    WrongPassword,
)
from software_dna.errors import Message, localize
from software_dna.i18n import LANGUAGES, translation
from software_dna.testing import SimulatedMachine
from software_dna.wire.paseto import SecretKey

from .inprocess import InProcessServer
from .sdk_catalogue import SOURCES, sdk_catalogues

__all__ = ["sdk_catalogues"]  # the fixture, imported for this module

pytestmark = pytest.mark.usefixtures("sdk_catalogues")

PACKAGE = Path(software_dna.__file__).resolve().parent
#: The SDK's sources whose N_-marked messages the catalogue must hold (never the server's).
SDK_SOURCES = [PACKAGE / "errors.py", PACKAGE / "store.py", PACKAGE / "license.py",
               *sorted((PACKAGE / "fingerprint").glob("*.py")),
               *sorted((PACKAGE / "client").glob("*.py"))]
PLACEHOLDER = re.compile(r"%\(\w+\)s")
PASSWORD = "open sesame"


def marked_messages() -> set[str]:
    """Every message marked ``N_`` in the SDK's sources, extracted as Babel extracts it."""
    found: set[str] = set()
    for path in SDK_SOURCES:
        for _, message, _, _ in extract_from_file("python", str(path), keywords={"N_": None}):
            assert isinstance(message, str)
            found.add(message)
    return found


def german_catalogue() -> dict[str, Any]:
    with (SOURCES / "de" / "LC_MESSAGES" / "software_dna.po").open("rb") as source:
        return {m.id: m for m in read_po(source, locale="de") if isinstance(m.id, str) and m.id}


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process."""
    return inprocess_server


@pytest.fixture
def product(server: InProcessServer) -> tuple[str, list[str], dict[str, Any]]:
    """A product and a license with an activation password."""
    name = "p-" + secrets.token_hex(4)
    keys = server.admin.setup_product(name, name="Acme Editor")
    return name, keys, server.admin.issue_license(name, seats=2, password=PASSWORD)


ClientFactory = Callable[..., LicenseClient]


@pytest.fixture
def client_for(server: InProcessServer, product: tuple[str, list[str], dict[str, Any]],
               tmp_path: Path) -> ClientFactory:
    made = 0

    def make(**options: Any) -> LicenseClient:
        nonlocal made
        made += 1
        where = tmp_path / f"computer-{made}"
        return LicenseClient(product=product[0], public_keys=product[1],
                             server_url=server.url, store_path=where / "store",
                             machine=SimulatedMachine(where), transport=server.transport(),
                             timeout=10.0, **options)

    return make


def message_of(action: Callable[[], object], error: type[LicenseError]) -> str:
    with pytest.raises(error) as caught:
        action()
    return str(caught.value)


# --------------------------------------------------------------------------- the catalogue


def test_every_marked_message_has_a_german_translation() -> None:
    marked = marked_messages()
    assert len(marked) > 80  # the extraction found the SDK's messages
    german = german_catalogue()
    missing = sorted(marked - german.keys())
    assert not missing, f"not in de/software_dna.po (run the extraction and translate): {missing}"
    for msgid in marked:
        entry = german[msgid]
        assert entry.string and entry.string != msgid, f"untranslated: {msgid!r}"
        assert not entry.fuzzy, f"fuzzy: {msgid!r}"
        assert sorted(PLACEHOLDER.findall(entry.string)) == sorted(PLACEHOLDER.findall(msgid)), \
            f"placeholders differ: {msgid!r}"


def test_the_catalogue_holds_no_server_message() -> None:
    # Only the SDK's sources are extracted: the server's texts live in their own domain.
    german = german_catalogue()
    stale = sorted(set(german) - marked_messages())
    assert not stale, f"in the catalogue but no longer in the SDK's sources: {stale}"


def test_every_shipped_language_has_a_catalogue() -> None:
    for language in set(LANGUAGES) - {"en"}:
        assert (SOURCES / language / "LC_MESSAGES" / "software_dna.po").is_file(), language


def test_translation_reads_the_compiled_catalogue(sdk_catalogues: Path) -> None:
    assert (sdk_catalogues / "de" / "LC_MESSAGES" / "software_dna.mo").is_file()
    german = translation("de")
    assert isinstance(german, gettext.GNUTranslations)
    assert german.gettext("Enter a license key.") == "Geben Sie einen Lizenzschlüssel ein."
    assert translation("de-AT").gettext("Enter a license key.") == \
        "Geben Sie einen Lizenzschlüssel ein."
    # Unknown and English: the message ids themselves.
    for language in ("en", "xx", None, "", "../../etc"):
        assert translation(language).gettext("Enter a license key.") == "Enter a license key."


def test_a_message_with_values_is_translated_with_the_same_values() -> None:
    msgid = "Too many activation attempts. Try again after %(time)s."
    text = Message(msgid, time="2026-12-03T10:00:00Z")
    assert text == "Too many activation attempts. Try again after 2026-12-03T10:00:00Z."
    assert text.msgid == msgid
    error = ActivationLocked(text)
    localize(error, translation("de"))
    assert str(error) == "Zu viele Aktivierungsversuche. Versuchen Sie es nach " \
        "2026-12-03T10:00:00Z erneut."
    assert error.retry_after is None  # the rest of the exception is untouched


def test_localize_leaves_an_unknown_text_and_english_alone() -> None:
    error = LicenseError("Something the catalogue does not know.")
    localize(error, translation("de"))
    assert str(error) == "Something the catalogue does not know."
    english = NotActivated()
    before = english.args
    localize(english, translation("en"))
    assert english.args == before


def test_a_broken_translation_keeps_the_english() -> None:
    class Broken(gettext.NullTranslations):
        def gettext(self, message: str) -> str:
            return "Kaputt %(missing)s"

    text = Message("After %(time)s.", time="noon")
    assert text.translated(Broken()) == "After noon."


# --------------------------------------------------------------------------- the client


def test_german_local_checks(client_for: ClientFactory,
                             product: tuple[str, list[str], dict[str, Any]]) -> None:
    client = client_for(language="de")
    assert message_of(client.check, NotActivated) == (
        "Dieses Produkt ist auf diesem Computer nicht aktiviert. Geben Sie Ihren "
        "Lizenzschlüssel ein, um es zu aktivieren.")
    assert message_of(lambda: client.activate(" "), UnknownLicenseKey) == \
        "Geben Sie einen Lizenzschlüssel ein."
    assert "Einwilligung" in message_of(
        lambda: client.activate(product[2]["license_key"], email="ana@example.com"),
        ConsentRequired)
    assert message_of(
        lambda: client.activate(product[2]["license_key"], label="x" * 65, consent=True),
        ActivationError) == "Der Name des Computers muss 1 bis 64 Zeichen lang sein, ohne " \
        "Steuerzeichen."


def test_german_server_refusals(client_for: ClientFactory,
                                product: tuple[str, list[str], dict[str, Any]]) -> None:
    client = client_for(language="de")
    key = product[2]["license_key"]
    assert message_of(lambda: client.activate(key, password="wrong"), WrongPassword) == \
        "Das Aktivierungspasswort ist falsch."
    assert message_of(lambda: client.activate(key), WrongPassword) == \
        "Diese Lizenz benötigt ein Aktivierungspasswort: Geben Sie es ein und versuchen Sie " \
        "es erneut."
    assert message_of(lambda: client.activate("AAAA-BBBB-CCCC-DDDD", password=PASSWORD),
                      UnknownLicenseKey) == \
        "Dieser Lizenzschlüssel ist für dieses Produkt nicht bekannt. Prüfen Sie ihn und " \
        "geben Sie ihn erneut ein."
    # The same refusals in English: the server's own words, as before.
    english = client_for()
    assert message_of(lambda: english.activate(key, password="wrong"), WrongPassword) == \
        "The activation password is wrong."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_german_message_with_the_servers_address(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    client = LicenseClient(product="acme-editor",
                           public_keys=[SecretKey.generate().public_key.to_paserk()],
                           server_url=url, store_path=tmp_path / "store", timeout=2.0,
                           machine=SimulatedMachine(tmp_path), language="de")
    text = message_of(lambda: client.activate("ABCD-EFGH-JKLM-NPQR"), ServerUnreachable)
    assert url in text and "Lizenzserver" in text, text


@pytest.mark.parametrize("language", ["xx", "fr", "", "zz-ZZ", "de\x00", "../de", "e" * 300])
def test_languages_not_shipped_speak_english(client_for: ClientFactory,
                                             product: tuple[str, list[str], dict[str, Any]],
                                             language: str) -> None:
    client, plain = client_for(language=language), client_for()
    assert client.language == "en"
    key = product[2]["license_key"]
    actions: list[tuple[Callable[[LicenseClient], object], type[LicenseError]]] = [
        (lambda c: c.check(), NotActivated),
        (lambda c: c.activate(key, password="wrong"), WrongPassword),
        (lambda c: c.activate(key, email="a@example.com"), ConsentRequired)]
    for action, error in actions:
        assert message_of(partial(action, client), error) == \
            message_of(partial(action, plain), error)


def test_english_is_unchanged(client_for: ClientFactory,
                              product: tuple[str, list[str], dict[str, Any]]) -> None:
    key = product[2]["license_key"]
    for language in (None, "en", "en-US"):
        client = client_for(language=language)
        assert message_of(client.check, NotActivated) == (
            "This product is not activated on this machine. Enter your license key to "
            "activate it.")
        assert message_of(partial(client.activate, key), WrongPassword) == (
            "This license needs an activation password: enter it and try again.")
        assert message_of(partial(client.activate, "AAAA-BBBB-CCCC-DDDD", password=PASSWORD),
                          UnknownLicenseKey) == \
            "This license key does not exist for this product. Check the key."


def test_german_store_errors_with_their_parts(client_for: ClientFactory) -> None:
    english, german = client_for(), client_for(language="de")
    for client in (english, german):
        client.store_path.parent.mkdir(parents=True, exist_ok=True)
        client.store_path.write_bytes(b"not a license store")
    said = message_of(english.check, StoreCorrupted)
    assert said.startswith(f"The license store {english.store_path} is unreadable: ")
    assert " It was moved to " in said and said.endswith(
        "the license server recognises this computer, so no other seat is taken.")
    with pytest.raises(StoreCorrupted) as caught:
        german.check()
    text = str(caught.value)
    assert text.startswith(f"Der Lizenzspeicher {german.store_path} ist nicht lesbar: ")
    assert f" Er wurde nach {caught.value.moved_to} verschoben. " in text
    assert text.endswith("daher wird kein weiterer Platz belegt.")
