"""Air-gapped activation from the app's side: the client has no server URL at all.

The request and the receipt travel to the real server (the app in this
process, reached with no socket: tests/inprocess.py) the way an end user would
carry them (to the vendor, or from another, connected machine); the client
never gets a URL.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    ActivationError,
    ClockTampered,
    ConsentRequired,
    InvalidToken,
    LicenseClient,
    LicenseExpired,
    NotActivated,
    Protection,
    UnknownLicenseKey,
    WrongMachine,
    WrongProduct,
)
from software_dna.fingerprint import Fingerprint
from software_dna.server.adminclient import AdminClient
from software_dna.wire import airgap as off
from tests.airgapped import AirGapped
from tests.identifiers import appears, raw_identifiers
from tests.inprocess import InProcessServer


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


EMAIL = "grace.hopper@example.com"


def new_product(admin: AdminClient, **policy: Any) -> tuple[str, list[str]]:
    product = "off-" + secrets.token_hex(4)
    policy.setdefault("air_gapped", True)  # an explicit opt-in (off for new products)
    keys = admin.setup_product(product, name="Offline", features=["export"], **policy)
    return product, keys


def other_machine() -> Callable[[str], Fingerprint]:
    """Another computer's fingerprint (this test runs on one machine only)."""
    parts: dict[str, object] = {
        n: secrets.token_urlsafe(32)[:43] for n in ("machine_id", "os_arch", "cpu")}
    parts["mac"] = [secrets.token_urlsafe(32)[:43]]
    fake = Fingerprint.from_components(parts)
    return lambda _product: fake


def respond(server: InProcessServer, request_text: str, *, status: int = 201,
            password: str | None = None) -> str:
    """What the end user does on a connected machine: post the request (and type the
    license's activation password, if it has one, beside it), get the response."""
    body = {"request": request_text} if password is None else {"request": request_text,
                                                                "password": password}
    answer = server.session().post(f"{server.url}/v1/offline/activations",
                                   json=body, timeout=30)
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"response", "activation_id", "license_id", "product",
                         "fingerprint_id", "server_time"}
    return str(body["response"])


def refused(server: InProcessServer, request_text: str) -> tuple[int, str]:
    answer = server.session().post(f"{server.url}/v1/offline/activations",
                           json={"request": request_text}, timeout=30)
    assert 400 <= answer.status_code < 500, answer.text
    return answer.status_code, answer.json()["error"]["code"]


def send_receipt(server: InProcessServer, receipt: str) -> dict[str, Any]:
    answer = server.session().post(f"{server.url}/v1/offline/deactivations",
                           json={"receipt": receipt}, timeout=30)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def block_json(text: str) -> dict[str, Any]:
    """Decode an armored block by hand (what anyone holding the file can read)."""
    lines = text.strip().splitlines()
    payload = "".join(lines[1:-2])
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def rearmor(kind: str, document: dict[str, Any]) -> str:
    """A block rebuilt after editing its JSON: a valid checksum, so only signatures catch it."""
    return off.armor(kind, document)


def in_use(admin: AdminClient, license_id: str) -> int:
    return int(admin.get_license(license_id)["seats_in_use"])


# --------------------------------------------------------------------------- the whole flow


def test_air_gapped_activation_and_deactivation(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    admin = server.admin
    # A strict product: online machines must refresh; the air-gapped one never will.
    product, keys = new_product(admin, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600, password_required=True)
    issued = admin.issue_license(product, seats=1, password="open sesame")
    app = machine(product, keys)

    request = app.client.create_activation_request(issued["license_key"])
    lines = request.strip().splitlines()
    assert lines[0] == "-----BEGIN SOFTWARE_DNA ACTIVATION REQUEST-----"
    assert lines[-1] == "-----END SOFTWARE_DNA ACTIVATION REQUEST-----"
    assert all(len(line) <= 64 for line in lines[1:-1]) and len(lines) <= 20
    doc = block_json(request)
    assert doc["product"] == product and doc["license_key"] == issued["license_key"]
    assert doc["fingerprint"]["components"] and "email" not in doc and "registration" not in doc
    assert "password" not in doc and doc["v"] == off.REQUEST_VERSION
    for name, value in raw_identifiers().items():
        assert not appears(value, request) and not appears(value, json.dumps(doc)), name
    created = datetime.fromisoformat(doc["created_at"].replace("Z", "+00:00"))
    assert abs(created - app.now()) < timedelta(minutes=1)

    with pytest.raises(NotActivated):
        app.client.check()
    refused = server.session().post(f"{server.url}/v1/offline/activations",
                                    json={"request": request}, timeout=30)
    # The password is typed beside the block, never carried in it.
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "wrong_password"
    response = respond(server, "Dear vendor, here it is:\n\n" + request + "\nThanks!",
                       password="open sesame")
    assert response.startswith("-----BEGIN SOFTWARE_DNA ACTIVATION RESPONSE-----")

    lic = app.client.activate_offline("> pasted:\n" + response)
    assert lic.protection is Protection.OFFLINE
    assert lic.refresh_by is None and lic.license_expires_at is None
    # A finite lifetime: the product's air_gapped_token_days (365 by default).
    assert lic.expires_at is not None
    assert abs(lic.expires_at - lic.issued_at - timedelta(days=365)) < timedelta(seconds=1)
    assert lic.has_feature("export") and lic.license_id == issued["id"]
    assert in_use(admin, issued["id"]) == 1
    [row] = admin.list_activations(issued["id"])
    assert row["offline"] is True and row["id"] == lic.activation_id

    # Later starts, months later: no server, no refresh, no grace period.
    app.offset = timedelta(days=300)
    checked = app.restart().check()
    assert checked.activation_id == lic.activation_id and checked.offline_grace_ends_at is None

    receipt = app.client.deactivate_offline()
    assert receipt.startswith("-----BEGIN SOFTWARE_DNA DEACTIVATION RECEIPT-----")
    with pytest.raises(NotActivated):
        app.client.check()
    assert app.restart().deactivate_offline() == receipt  # asked again: the same receipt
    assert in_use(admin, issued["id"]) == 1  # until the vendor gets the receipt

    freed = send_receipt(server, receipt)
    assert freed["activation_id"] == lic.activation_id and not freed["already_deactivated"]
    assert in_use(admin, issued["id"]) == 0
    assert send_receipt(server, receipt)["already_deactivated"] is True  # idempotent


def test_the_same_request_answered_twice_takes_one_seat(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    admin = server.admin
    product, keys = new_product(admin)
    issued = admin.issue_license(product, seats=1)
    app = machine(product, keys)
    request = app.client.create_activation_request(issued["license_key"])
    first = respond(server, request)
    second = respond(server, request, status=200)
    assert block_json(first)["activation_id"] == block_json(second)["activation_id"]
    assert in_use(admin, issued["id"]) == 1
    assert app.client.activate_offline(second).activation_id == block_json(first)["activation_id"]


def test_a_license_with_an_end_date_ends_offline(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    admin = server.admin
    product, keys = new_product(admin, protection="opportunistic")
    ends = (datetime.now(timezone.utc) + timedelta(days=30)).replace(microsecond=0)
    issued = admin.issue_license(product, expires_at=ends)
    app = machine(product, keys)
    lic = app.client.activate_offline(respond(
        server, app.client.create_activation_request(issued["license_key"])))
    assert lic.license_expires_at == ends and lic.expires_at == ends and lic.refresh_by is None
    app.offset = timedelta(days=29)
    assert app.restart().check().license_id == issued["id"]
    app.offset = timedelta(days=31)
    with pytest.raises(LicenseExpired):
        app.restart().check()


def test_personal_data_needs_consent_and_travels_in_the_token(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    admin = server.admin
    product, keys = new_product(admin)
    issued = admin.issue_license(product)
    app = machine(product, keys)
    with pytest.raises(ConsentRequired):
        app.client.create_activation_request(issued["license_key"], email=EMAIL)
    with pytest.raises(UnknownLicenseKey):
        app.client.create_activation_request("  ")
    with pytest.raises(ActivationError, match="registration details"):
        app.client.create_activation_request(
            issued["license_key"], registration={f"k{i}": "v" * 256 for i in range(64)},
            consent=True)
    request = app.client.create_activation_request(
        issued["license_key"], email=EMAIL, registration={"company": "Navy"}, consent=True)
    assert block_json(request)["consent"] is True
    lic = app.client.activate_offline(respond(server, request))
    assert lic.email == EMAIL and lic.registration == {"company": "Navy"}
    assert [u["id"] for u in admin.find_end_users(EMAIL)]


def test_an_offline_activation_stays_offline_when_refreshed_online(
    server: InProcessServer, tmp_path: Path
) -> None:
    """The server remembers the activation is air-gapped: a refresh keeps "offline"."""
    admin = server.admin
    product, keys = new_product(admin, protection="mandatory", refresh_interval=3600,
                                offline_grace_period=600)
    issued = admin.issue_license(product)
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "m", timeout=5, transport=server.transport())
    client.activate_offline(respond(server, client.create_activation_request(
        issued["license_key"])))
    refreshed = client.refresh()
    assert refreshed.protection is Protection.OFFLINE and refreshed.refresh_by is None
    # The validation (the fast path included) keeps the air-gapped lifetime: never perpetual.
    assert refreshed.expires_at is not None
    assert abs(refreshed.expires_at - refreshed.issued_at - timedelta(days=365)) \
        < timedelta(seconds=1)
    client.close()


def test_an_online_activation_can_be_deactivated_with_a_receipt(
    server: InProcessServer, tmp_path: Path
) -> None:
    admin = server.admin
    product, keys = new_product(admin)
    issued = admin.issue_license(product)
    client = LicenseClient(product=product, public_keys=keys, server_url=server.url,
                           store_path=tmp_path / "m", timeout=5, transport=server.transport())
    lic = client.activate(issued["license_key"])
    assert in_use(admin, issued["id"]) == 1
    freed = send_receipt(server, client.deactivate_offline())
    assert freed["activation_id"] == lic.activation_id
    assert in_use(admin, issued["id"]) == 0
    client.close()


# --------------------------------------------------------------------------- refusals


def test_a_response_for_another_machine_is_refused(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product, seats=2)
    other = machine(product, keys, "other", fingerprint=other_machine())
    response = respond(server, other.client.create_activation_request(issued["license_key"]))
    here = machine(product, keys, "here")
    here.client.create_activation_request(issued["license_key"])
    with pytest.raises(WrongMachine):
        here.client.activate_offline(response)
    with pytest.raises(NotActivated):
        here.client.check()
    assert other.client.activate_offline(response).license_id == issued["id"]


def test_a_response_for_another_product_is_refused(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product_a, keys_a = new_product(server.admin)
    product_b, keys_b = new_product(server.admin)
    issued_b = server.admin.issue_license(product_b)
    app_b = machine(product_b, keys_b, "b")
    response = respond(server, app_b.client.create_activation_request(issued_b["license_key"]))
    app_a = machine(product_a, keys_a + keys_b, "a")
    with pytest.raises(WrongProduct):
        app_a.client.activate_offline(response)
    # Even with the product field edited to match, the token's binding refuses it.
    doc = block_json(response)
    doc["product"] = product_a
    with pytest.raises(WrongProduct):
        app_a.client.activate_offline(rearmor(off.RESPONSE, doc))


def test_a_response_to_a_request_this_machine_never_made_is_refused(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    app.client.create_activation_request(issued["license_key"])  # a real pending request
    # Someone builds a request with this machine's fingerprint but their own nonce.
    forged = off.build_request(
        product=product, license_key=issued["license_key"],
        fingerprint=app.client._state.verifier.fingerprint().to_wire(),
        nonce=secrets.token_urlsafe(24),
        created_at=datetime.now(timezone.utc))
    with pytest.raises(InvalidToken, match="did not make"):
        app.client.activate_offline(respond(server, forged))
    # The same machine, another store (another copy of the app): not its request either.
    twin = machine(product, keys, "twin")
    response = respond(server, twin.client.create_activation_request(issued["license_key"]),
                       status=200)
    with pytest.raises(InvalidToken, match="did not make"):
        app.client.activate_offline(response)
    # A response is used once.
    twin.client.activate_offline(response)
    with pytest.raises(InvalidToken, match="already used"):
        twin.restart().activate_offline(response)


def test_a_stale_response_is_refused(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product, seats=3)
    app = machine(product, keys)
    response = respond(server, app.client.create_activation_request(issued["license_key"]))
    app.offset = off.REQUEST_LIFETIME + timedelta(hours=1)
    with pytest.raises(InvalidToken, match="too old"):
        app.client.activate_offline(response)
    # The server refuses to answer a request older than the window, too.
    old = machine(product, keys, "old", fingerprint=other_machine())
    old.offset = -(off.REQUEST_LIFETIME + timedelta(hours=1))
    assert refused(server, old.client.create_activation_request(
        issued["license_key"])) == (400, "request_expired")


def test_a_tampered_response_is_refused_and_the_request_stays_usable(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    response = respond(server, app.client.create_activation_request(issued["license_key"]))
    lines = response.splitlines()
    flipped = lines[3][:10] + ("A" if lines[3][10] != "A" else "B") + lines[3][11:]
    with pytest.raises(InvalidToken, match="damaged"):
        app.client.activate_offline("\n".join([*lines[:3], flipped, *lines[4:]]))
    with pytest.raises(InvalidToken, match="cut off"):
        app.client.activate_offline("\n".join(lines[:-2]))
    with pytest.raises(InvalidToken, match=r"is an activation request, not an activation response"):
        app.client.activate_offline(app.client.create_activation_request(issued["license_key"]))
    doc = block_json(response)
    # Features edited inside the signed token: the signature no longer verifies.
    head, payload, footer = doc["token"].rsplit(".", 2)
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    edited = raw[:-64].replace(b'"export"', b'"admin!"') + raw[-64:]
    assert edited != raw
    doc_forged = dict(doc, token=".".join(
        [head, base64.urlsafe_b64encode(edited).rstrip(b"=").decode(), footer]))
    with pytest.raises(InvalidToken):
        app.client.activate_offline(rearmor(off.RESPONSE, doc_forged))
    # Parts swapped: a response whose activation id is not its token's.
    with pytest.raises(InvalidToken):
        app.client.activate_offline(rearmor(off.RESPONSE, dict(doc, activation_id="act_x")))
    with pytest.raises(InvalidToken):
        app.client.activate_offline(rearmor(off.RESPONSE, dict(doc, extra=1)))
    with pytest.raises(NotActivated):
        app.client.check()
    # A clock behind the response's time is refused without using up the request...
    app.offset = -timedelta(hours=1)
    with pytest.raises(ClockTampered):
        app.client.activate_offline(response)
    # ...so the genuine response still works once the clock is right.
    app.offset = timedelta(0)
    assert app.client.activate_offline(response).license_id == issued["id"]


def test_pending_requests_are_bounded(
    server: InProcessServer, machine: Callable[..., AirGapped]
) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    app = machine(product, keys)
    requests_made = [app.client.create_activation_request(issued["license_key"])
                     for _ in range(off.MAX_PENDING_REQUESTS + 1)]
    stored = app.client._state.store.read() or {}
    assert len(stored["offline_requests"]) == off.MAX_PENDING_REQUESTS
    with pytest.raises(InvalidToken, match="did not make"):
        app.client.activate_offline(respond(server, requests_made[0]))
    assert app.client.activate_offline(respond(server, requests_made[-1], status=200))
