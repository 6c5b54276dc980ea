"""The app's side of the license portal: ``portal_url()`` and a seat freed by the license holder.

The portal and the SDK meet on the real in-process server: the license holder
signs in with the key and password (tests/portal/helpers.PortalUser) and
frees a computer by posting the portal's form; the app on that computer then
learns it from its periodic check or a validation, as
:class:`~software_dna.ActivationReleased`, stored so that going offline does
not undo it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    ActivationMoved,
    ActivationReleased,
    LicenseClient,
    LicenseError,
    NetworkError,
    NotActivated,
    ServerError,
)
from software_dna.client.transport import Response, Transport
from software_dna.testing import SimulatedMachine
from software_dna.wire.paseto import SecretKey

from .inprocess import InProcessServer, unreachable
from .portal.helpers import PASSWORD, PortalUser
from .sdk_catalogue import sdk_catalogues

__all__ = ["sdk_catalogues"]  # the fixture, imported for this module


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process."""
    return inprocess_server


def offline_client(**options: Any) -> LicenseClient:
    """A client that never reaches a server (``portal_url`` needs none)."""
    keys = [SecretKey.generate().public_key.to_paserk()]
    return LicenseClient(public_keys=keys, transport=unreachable(), **options)


# --------------------------------------------------------------------------- portal_url


def test_portal_url_is_the_products_portal_page(tmp_path: Path) -> None:
    client = offline_client(product="acme-editor", server_url="https://license.example.com",
                            store_path=tmp_path)
    assert client.portal_url() == "https://license.example.com/portal/acme-editor/"


def test_portal_url_keeps_a_path_and_drops_a_trailing_slash(tmp_path: Path) -> None:
    client = offline_client(product="acme-editor",
                            server_url="https://example.com/licensing/", store_path=tmp_path)
    assert client.portal_url() == "https://example.com/licensing/portal/acme-editor/"


def test_portal_url_quotes_the_product_id(tmp_path: Path) -> None:
    # A product id is the vendor's word, but whatever it holds stays one path segment.
    client = offline_client(product="a b/../c?x#y", server_url="https://license.example.com",
                            store_path=tmp_path)
    url = client.portal_url()
    assert url == "https://license.example.com/portal/a%20b%2F..%2Fc%3Fx%23y/"
    assert "?" not in url and "#" not in url


@pytest.mark.parametrize(("language", "query"), [
    ("de", "?lang=de"), ("de-CH", "?lang=de"), ("DE_de.UTF-8", "?lang=de"),
    ("en", ""), ("en-GB", ""), (None, ""),
    # Not shipped: the portal follows the browser's language instead.
    ("xx", ""), ("fr", ""), ("", ""), ("de;q=1<script>", ""),
])
def test_portal_url_names_the_clients_language(tmp_path: Path, language: str | None,
                                               query: str) -> None:
    client = offline_client(product="acme-editor", server_url="https://license.example.com",
                            store_path=tmp_path, language=language)
    assert client.portal_url() == "https://license.example.com/portal/acme-editor/" + query


def test_portal_url_without_a_server_is_a_network_error(tmp_path: Path) -> None:
    client = offline_client(product="acme-editor", store_path=tmp_path)
    with pytest.raises(NetworkError, match="no license portal"):
        client.portal_url()


def test_language_must_be_a_string(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        offline_client(product="acme-editor", store_path=tmp_path, language=["de"])


# --------------------------------------------------------------------------- the real server


class App:
    """The vendor's app on one computer: a client on its own store."""

    def __init__(self, server: InProcessServer, product: str, keys: list[str], store: Path,
                 transport: Transport | None = None, **options: Any) -> None:
        self.args: dict[str, Any] = {
            "product": product, "public_keys": keys, "server_url": server.url,
            "store_path": store, "timeout": 10.0,
            "transport": transport or server.transport(), **options}
        self.client = LicenseClient(**self.args)

    def restart(self, **changes: Any) -> LicenseClient:
        """A new process of the app on the same store (``changes``: other options)."""
        self.client.close()
        self.client = LicenseClient(**{**self.args, **changes})
        return self.client


@pytest.fixture
def apps(server: InProcessServer, tmp_path: Path) -> Iterator[list[App]]:
    made: list[App] = []
    yield made
    for app in made:
        app.client.close()


def licensed(server: InProcessServer, tmp_path: Path, apps: list[App], count: int = 2,
             **options: Any) -> tuple[str, dict[str, Any], list[App]]:
    """A product, a license with a password, and ``count`` computers activated on it."""
    product = "p-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, name="Acme Editor")
    issued = server.admin.issue_license(product, seats=3, password=PASSWORD)
    made = []
    for n in range(count):
        app = App(server, product, keys, tmp_path / f"computer-{n}" / "store",
                  machine=SimulatedMachine(tmp_path / f"computer-{n}"), **options)
        app.client.activate(issued["license_key"], password=PASSWORD)
        apps.append(app)
        made.append(app)
    return product, issued, made


def free_in_portal(server: InProcessServer, product: str, key: str, activation_id: str) -> None:
    """The license holder signs in with the key and password and frees ``activation_id``."""
    with PortalUser(server, product) as holder:
        assert holder.sign_in(key).status_code == 303
        page = holder.get("license")
        assert activation_id in page.text
        answer = holder.post(f"activations/{activation_id}/release")
        assert answer.status_code == 303, answer.text


def test_portal_url_opens_the_portal_of_the_product(server: InProcessServer, tmp_path: Path,
                                                    apps: list[App]) -> None:
    _, _, (app, _) = licensed(server, tmp_path, apps)
    with server.session() as http:
        page = http.get(app.client.portal_url(), allow_redirects=False)
        assert page.status_code == 200, page.text
        assert 'name="license_key"' in page.text
        german = http.get(app.restart(language="de").portal_url(), allow_redirects=False)
        assert german.status_code == 200 and 'lang="de"' in german.text


def test_a_seat_freed_in_the_portal_is_reported_as_released(
        server: InProcessServer, tmp_path: Path, apps: list[App]) -> None:
    product, issued, (freed, kept) = licensed(server, tmp_path, apps)
    freed_id = freed.client.check().activation_id
    free_in_portal(server, product, issued["license_key"], freed_id)

    # The app's periodic check: the refresh's refusal goes to on_error, the license goes.
    errors: list[LicenseError] = []
    changes: list[tuple[object, object]] = []
    handle = freed.client.start_periodic_check(3600, on_error=errors.append,
                                               on_change=lambda old, new: changes.append(
                                                   (old, new)))
    try:
        handle.tick()
    finally:
        handle.stop()
    assert errors and isinstance(errors[0], ActivationReleased), errors
    assert isinstance(errors[0], NotActivated) and not isinstance(errors[0], ActivationMoved)
    assert "license holder" in str(errors[0]) and "license portal" in str(errors[0])
    assert changes and changes[-1][1] is None

    # Stored: the next start, offline, still refuses (and says why).
    restarted = freed.restart(transport=unreachable())
    with pytest.raises(ActivationReleased, match="license holder"):
        restarted.check()
    # The other computer is untouched.
    assert kept.client.refresh().activation_id != freed_id


def test_the_release_reaches_refresh_and_check_alike(server: InProcessServer, tmp_path: Path,
                                                     apps: list[App]) -> None:
    product, issued, (freed, _) = licensed(server, tmp_path, apps)
    activation_id = freed.client.check().activation_id
    free_in_portal(server, product, issued["license_key"], activation_id)
    with pytest.raises(ActivationReleased):
        freed.client.refresh()
    with pytest.raises(ActivationReleased):
        freed.client.check()
    # The credentials went with the seat: nothing is left to deactivate, and the
    # refusal stays.
    with pytest.raises(NotActivated, match="no activation to deactivate"):
        freed.client.deactivate()
    with pytest.raises(ActivationReleased):
        freed.client.check()


@pytest.mark.usefixtures("sdk_catalogues")
def test_the_release_is_reported_in_the_clients_language(
        server: InProcessServer, tmp_path: Path, apps: list[App]) -> None:
    product, issued, (freed, _) = licensed(server, tmp_path, apps, language="de")
    free_in_portal(server, product, issued["license_key"], freed.client.check().activation_id)
    with pytest.raises(ActivationReleased) as caught:
        freed.client.refresh()
    assert "Lizenzinhaber" in str(caught.value) and "Lizenzportal" in str(caught.value)
    with pytest.raises(ActivationReleased, match="Lizenzinhaber"):
        freed.restart(transport=unreachable()).check()
    # The same stored refusal, read by an English client: the server's own words.
    with pytest.raises(ActivationReleased, match="The license holder freed"):
        freed.restart(transport=unreachable(), language=None).check()


def test_activating_again_after_a_release_takes_a_new_seat(
        server: InProcessServer, tmp_path: Path, apps: list[App]) -> None:
    product, issued, (freed, _) = licensed(server, tmp_path, apps)
    old = freed.client.check().activation_id
    free_in_portal(server, product, issued["license_key"], old)
    with pytest.raises(ActivationReleased):
        freed.client.refresh()
    again = freed.client.activate(issued["license_key"], password=PASSWORD)
    assert again.activation_id != old
    assert freed.client.refresh().activation_id == again.activation_id
    # The stored refusal of the old activation does not stop the new one offline.
    assert freed.restart(transport=unreachable()).check().activation_id == again.activation_id


class Replaying(Transport):
    """The in-process server, except that validations are answered with ``answer``
    (what an attacker on the network could send: a real refusal of another request)."""

    def __init__(self, inner: Transport, answer: Response) -> None:
        self.inner = inner
        self.answer = answer

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        if path.endswith("/validate"):
            return self.answer
        return self.inner.request(method, path, json_body=json_body, bearer=bearer,
                                  retry=retry, deadline=deadline)


def test_a_replayed_release_does_not_end_another_activation(
        server: InProcessServer, tmp_path: Path, apps: list[App]) -> None:
    product, issued, (freed, victim) = licensed(server, tmp_path, apps)
    freed_id = freed.client.check().activation_id
    free_in_portal(server, product, issued["license_key"], freed_id)
    # Capture the server's real, signed refusal of the freed activation.
    captured: list[Response] = []

    class Recording(Transport):
        def request(self, method: str, path: str, **kwargs: Any) -> Response:
            answer = server.transport().request(method, path, **kwargs)
            captured.append(answer)
            return answer

    with pytest.raises(ActivationReleased):
        freed.restart(transport=Recording()).refresh()
    refusal = captured[-1]
    assert refusal.status == 410 and refusal.body["error"]["code"] == "activation_released"
    assert refusal.body["error"]["receipt"].startswith("v4.public.")

    # Replayed to the other computer: signed, but not an answer to its request.
    client = victim.restart(transport=Replaying(server.transport(), refusal))
    with pytest.raises(ServerError):
        client.refresh()
    assert client.check().activation_id != freed_id  # still licensed, offline too
    assert victim.restart().refresh().activation_id != freed_id
    # And an unsigned "released" is no verdict either.
    forged = Response(status=410, body={"error": {"code": "activation_released",
                                                  "message": "freed"}}, headers={})
    client = victim.restart(transport=Replaying(server.transport(), forged))
    with pytest.raises(ServerError):
        client.refresh()
    assert client.check() is not None


def test_a_computer_freed_twice_or_by_another_license_is_not_found(
        server: InProcessServer, tmp_path: Path, apps: list[App]) -> None:
    product, issued, (freed, _) = licensed(server, tmp_path, apps)
    _, _, (stranger,) = licensed(server, tmp_path / "other", apps, count=1)
    freed_id = freed.client.check().activation_id
    free_in_portal(server, product, issued["license_key"], freed_id)
    with PortalUser(server, product) as holder:
        assert holder.sign_in(issued["license_key"]).status_code == 303
        # Already freed: nothing happens twice.
        assert holder.post(f"activations/{freed_id}/release").status_code == 404
        # Another license's computer: not this holder's to free (an id is no authority).
        stranger_id = stranger.client.check().activation_id
        assert holder.post(f"activations/{stranger_id}/release").status_code == 404
    assert stranger.client.refresh().activation_id == stranger_id
