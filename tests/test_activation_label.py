"""The computer's label: set by the app with the end user's consent, personal data end to end.

``activate(label=...)`` sends the name the end user chose for this computer;
the server keeps it encrypted on the activation, shows it in the license
portal only to whom it belongs, exports it with the end user's data and
erases it with them. The SDK never makes one up.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import select

from software_dna import ActivationError, ConsentRequired, LicenseClient
from software_dna.client.transport import Response, Transport
from software_dna.server.models import Activation
from software_dna.testing import SimulatedMachine
from software_dna.wire.airgap import REQUEST, armor, dearmor
from tests.server.helpers import Api

from .inprocess import InProcessServer
from .portal.helpers import PASSWORD, PortalUser, db

LABEL = "<b>Anna</b>'s laptop ✓"


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process."""
    return inprocess_server


@pytest.fixture(scope="module")
def api(server: InProcessServer) -> Iterator[Api]:
    """The SDK's routes driven as JSON: what any client could send."""
    client = Api.for_server(server)
    yield client
    client.close()


class Recording(Transport):
    """The in-process server, keeping every request body the SDK sent."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.bodies: list[tuple[str, Mapping[str, Any] | None]] = []

    def request(self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None,
                bearer: str | None = None, retry: bool = False,
                deadline: float | None = None) -> Response:
        self.bodies.append((path, json_body))
        return self.inner.request(method, path, json_body=json_body, bearer=bearer,
                                  retry=retry, deadline=deadline)


def product_and_license(server: InProcessServer, **license: Any) -> tuple[str, list[str],
                                                                          dict[str, Any]]:
    product = "p-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, name="Acme Editor")
    issued = server.admin.issue_license(product, seats=3, password=PASSWORD, **license)
    return product, keys, issued


def client_for(server: InProcessServer, product: str, keys: list[str], where: Path,
               transport: Transport | None = None) -> LicenseClient:
    return LicenseClient(product=product, public_keys=keys, server_url=server.url,
                         store_path=where / "store", machine=SimulatedMachine(where),
                         transport=transport or server.transport(), timeout=10.0)


def stored_label(server: InProcessServer, activation_id: str) -> bytes | None:
    with db(server) as session:
        row = session.get(Activation, activation_id)
        assert row is not None
        label: bytes | None = row.label_ciphertext
        return label


def test_label_is_sent_with_consent_and_stored_encrypted(server: InProcessServer,
                                                         tmp_path: Path) -> None:
    product, keys, issued = product_and_license(server)
    recording = Recording(server.transport())
    client = client_for(server, product, keys, tmp_path, recording)
    lic = client.activate(issued["license_key"], password=PASSWORD, label=LABEL, consent=True)
    sent = [body for path, body in recording.bodies if path == "/v1/activations"]
    assert sent and sent[-1] is not None and sent[-1]["label"] == LABEL
    ciphertext = stored_label(server, lic.activation_id)
    assert ciphertext is not None and LABEL.encode() not in ciphertext
    # Nowhere in the database's files in clear (the audit log and indexes included).
    for part in server.data_dir.glob("server.db*"):
        raw = part.read_bytes()
        assert LABEL.encode() not in raw and b"Anna</b>'s laptop" not in raw, part
    # Bound to its activation: the same ciphertext under another id does not open.
    vault = server.app.state.sdna.ctx.vault
    assert vault.decrypt_field(ciphertext, aad=f"activation:{lic.activation_id}:label") \
        == LABEL.encode()
    with pytest.raises(Exception):  # noqa: B017  # whatever the vault raises: no plaintext
        vault.decrypt_field(ciphertext, aad="activation:act_other:label")


def test_no_label_is_ever_made_up(server: InProcessServer, tmp_path: Path) -> None:
    product, keys, issued = product_and_license(server)
    recording = Recording(server.transport())
    client = client_for(server, product, keys, tmp_path, recording)
    lic = client.activate(issued["license_key"], password=PASSWORD, email="ana@example.com",
                          consent=True)
    for _, body in recording.bodies:
        assert body is None or "label" not in body
    assert stored_label(server, lic.activation_id) is None


@pytest.mark.parametrize("label", [LABEL, "x"])
def test_label_without_consent_is_refused_before_anything_is_sent(
        server: InProcessServer, tmp_path: Path, label: str) -> None:
    product, keys, issued = product_and_license(server)
    recording = Recording(server.transport())
    client = client_for(server, product, keys, tmp_path, recording)
    with pytest.raises(ConsentRequired, match="consent"):
        client.activate(issued["license_key"], password=PASSWORD, label=label)
    assert not recording.bodies


@pytest.mark.parametrize("label", [
    "", "   ", "x" * 65, "line\nbreak", "nul\x00", "escape\x1b[31m", "tab\there",
    "bidi\u202eevil", "para\u2029graph", 42, b"bytes",
])
def test_unreadable_labels_are_refused_locally(server: InProcessServer, tmp_path: Path,
                                               label: Any) -> None:
    product, keys, issued = product_and_license(server)
    recording = Recording(server.transport())
    client = client_for(server, product, keys, tmp_path, recording)
    with pytest.raises(ActivationError, match="1 to 64 characters"):
        client.activate(issued["license_key"], password=PASSWORD, label=label, consent=True)
    assert not recording.bodies


def test_sixty_four_characters_of_any_script_are_a_label(server: InProcessServer,
                                                         tmp_path: Path) -> None:
    product, keys, issued = product_and_license(server)
    label = ("Ünïcødé 电脑 👩‍💻 " * 8)[:64]
    lic = client_for(server, product, keys, tmp_path).activate(
        issued["license_key"], password=PASSWORD, label=label, consent=True)
    vault = server.app.state.sdna.ctx.vault
    ciphertext = stored_label(server, lic.activation_id)
    assert ciphertext is not None
    assert vault.decrypt_field(ciphertext, aad=f"activation:{lic.activation_id}:label") \
        == label.encode()


# The server decides for itself: what another client sends past the SDK's checks.


def test_the_server_refuses_a_label_without_consent(server: InProcessServer, api: Api) -> None:
    product, _, issued = product_and_license(server)
    extras: list[dict[str, Any]] = [{}, {"consent": False}]
    for extra in extras:
        answer = api.activate(product, issued["license_key"], password=PASSWORD,
                              label=LABEL, **extra)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "consent_required"
    # Nothing was taken: no activation holds the label.
    with db(server) as session:
        rows = session.scalars(select(Activation).where(
            Activation.license_id == issued["id"])).all()
        assert rows == []


@pytest.mark.parametrize("label", [
    "", "   ", "x" * 65, "line\nbreak", "nul\x00", "bidi\u202eevil", 42, ["list"], {"a": 1},
])
def test_the_server_refuses_an_unreadable_label(server: InProcessServer, api: Api,
                                                label: Any) -> None:
    product, _, issued = product_and_license(server)
    answer = api.activate(product, issued["license_key"], password=PASSWORD, label=label,
                          consent=True)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_request" and "label" in error["message"]


def test_activating_the_same_computer_again_replaces_or_keeps_the_label(
        server: InProcessServer, tmp_path: Path) -> None:
    product, keys, issued = product_and_license(server)
    client = client_for(server, product, keys, tmp_path)
    first = client.activate(issued["license_key"], password=PASSWORD, label="Old name",
                            consent=True)
    vault = server.app.state.sdna.ctx.vault

    def label_now() -> str | None:
        ciphertext = stored_label(server, first.activation_id)
        return None if ciphertext is None else vault.decrypt_field(
            ciphertext, aad=f"activation:{first.activation_id}:label").decode()

    again = client.activate(issued["license_key"], password=PASSWORD, label="New name",
                            consent=True)
    assert again.activation_id == first.activation_id and label_now() == "New name"
    client.activate(issued["license_key"], password=PASSWORD)
    assert label_now() == "New name"


def test_the_portal_shows_the_label_to_its_holder_only(server: InProcessServer,
                                                       tmp_path: Path) -> None:
    # A machine license: the key holder's own computers, named in the portal (escaped).
    product, keys, issued = product_and_license(server)
    client_for(server, product, keys, tmp_path / "own").activate(
        issued["license_key"], password=PASSWORD, label=LABEL, consent=True)
    with PortalUser(server, product) as holder:
        assert holder.sign_in(issued["license_key"]).status_code == 303
        page = holder.get("license").text
        assert str(escape(LABEL)) in page
        assert "<b>Anna</b>" not in page
    # A user-seat license: each seat is a person's; a password session sees no one's label.
    product, keys, issued = product_and_license(server, seat_mode="user")
    client_for(server, product, keys, tmp_path / "colleague").activate(
        issued["license_key"], password=PASSWORD, label="Bob's desktop", consent=True)
    with PortalUser(server, product) as holder:
        assert holder.sign_in(issued["license_key"]).status_code == 303
        page = holder.get("license").text
        assert "Bob" not in page


def test_the_label_is_exported_and_erased_with_the_end_user(server: InProcessServer,
                                                            tmp_path: Path) -> None:
    product, keys, issued = product_and_license(server)
    email = f"ana.{secrets.token_hex(3)}@example.com"
    lic = client_for(server, product, keys, tmp_path).activate(
        issued["license_key"], password=PASSWORD, email=email, label=LABEL, consent=True)
    (person,) = server.admin.find_end_users(email)
    exported = server.admin.export_end_user(person["id"])
    (entry,) = [a for a in exported["activations"] if a["id"] == lic.activation_id]
    assert entry["label"] == LABEL
    server.admin.erase_end_user(person["id"])
    assert stored_label(server, lic.activation_id) is None
    after = server.admin.export_end_user(person["id"])
    assert all(a.get("label") is None for a in after["activations"])
    for part in server.data_dir.glob("server.db*"):
        assert LABEL.encode() not in part.read_bytes()


def test_an_air_gapped_request_carries_the_label_with_consent(server: InProcessServer,
                                                              tmp_path: Path) -> None:
    product = "p-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, name="Acme Editor", air_gapped=True)
    key = server.admin.issue_license(product)["license_key"]
    client = client_for(server, product, keys, tmp_path)
    with pytest.raises(ConsentRequired):
        client.create_activation_request(key, label=LABEL)
    with pytest.raises(ActivationError):
        client.create_activation_request(key, label="bad\x1b", consent=True)
    request = client.create_activation_request(key, label=LABEL, consent=True)
    lic = client.activate_offline(str(server.admin.offline_respond(request)["response"]))
    ciphertext = stored_label(server, lic.activation_id)
    vault = server.app.state.sdna.ctx.vault
    assert ciphertext is not None and vault.decrypt_field(
        ciphertext, aad=f"activation:{lic.activation_id}:label") == LABEL.encode()


def test_an_air_gapped_request_block_is_held_to_the_same_rules(server: InProcessServer,
                                                               tmp_path: Path) -> None:
    # A block written by hand (no SDK checks): the server decides, as on the online route.
    product = "p-" + secrets.token_hex(4)
    keys = server.admin.setup_product(product, name="Acme Editor", air_gapped=True)
    key = server.admin.issue_license(product)["license_key"]
    client = client_for(server, product, keys, tmp_path)
    document = dict(dearmor(client.create_activation_request(key), REQUEST))
    for label, consent, code in [(LABEL, False, "consent_required"),
                                 ("x" * 65, True, "invalid_request"),
                                 ("nul\x00", True, "invalid_request")]:
        forged = armor(REQUEST, {**document, "label": label, "consent": consent})
        with server.session() as http:
            answer = http.post(f"{server.url}/v1/offline/activations",
                               json={"request": forged, "password": PASSWORD})
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == code
