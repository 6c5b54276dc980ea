"""Secret rotation and sharing detection on the server: what a client holding (or
forging) a secret can make the server do.

The HTTP API on SQLite and PostgreSQL (``any_server``: the app in-process, the
real database; on PostgreSQL the validation's inline hot path runs too). Each
test holds the invariant against what a client controls: which secret it
presents, how often, after which answers it threw away. The server's clock is
moved with ``clock_override``; nothing sleeps.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import secrets
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from software_dna.server import cli
from software_dna.server.adminclient import AdminError
from software_dna.server.crypto import load_master_key
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.models import Activation
from software_dna.server.services import sharing
from software_dna.server.services.common import clock_override
from software_dna.wire.claims import secret_digest
from software_dna.wire.times import parse_rfc3339
from tests.identity_cases import drift, machine
from tests.server.helpers import Api, check_receipt, check_token, error_code, fingerprint

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def any_server(inprocess_any_server: InProcessServer) -> InProcessServer:
    """The HTTP API only: the app in-process on ``database_url`` (SQLite, PostgreSQL)."""
    return inprocess_any_server


@pytest.fixture
def api(any_server: InProcessServer) -> Iterator[Api]:
    client = Api.for_server(any_server)
    yield client
    client.close()


class Seat:
    """A product, a license and one activation of it on machine ``m1``."""

    def __init__(self, server: InProcessServer, api: Api, **policy: Any) -> None:
        self.server, self.api = server, api
        self.product = "sh-" + secrets.token_hex(4)
        self.keys = server.admin.setup_product(self.product, **policy)
        lic = server.admin.request("POST", "/licenses",
                                   json={"product": self.product, "seats": 2})
        self.license_id: str = lic["id"]
        self.license_key: str = lic["license_key"]
        answer = api.activate(self.product, self.license_key)
        assert answer.status_code == 201, answer.text
        self.activation_id: str = answer.json()["activation_id"]
        self.first_secret: str = answer.json()["activation_secret"]

    def validate(self, secret: str) -> requests.Response:
        return self.api.validate(self.activation_id, secret)

    def rotate(self, secret: str) -> str:
        """Validate with ``secret`` (which must be accepted); the answer's new secret."""
        answer = self.validate(secret)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        new: str = body["activation_secret"]
        lic = check_token(body["token"], self.keys, self.product)
        assert lic.secret_digest == secret_digest(new)  # the token vouches for it
        return new

    def shown(self) -> dict[str, Any]:
        (row,) = [a for a in self.server.admin.list_activations(self.license_id)
                  if a["id"] == self.activation_id]
        return row

    def shared_audit(self) -> list[dict[str, Any]]:
        return [e for e in self.server.admin.audit(license_id=self.license_id)
                if e["action"] == "activation.shared"]


@pytest.fixture
def seat(any_server: InProcessServer, api: Api) -> Seat:
    return Seat(any_server, api)


def _legacy_secret(server: InProcessServer, activation_id: str) -> str:
    """The secret format of deployed SDKs, computed here from the master key alone."""
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
               info=b"software_dna/server/v1/activation-secrets").derive(
                   load_master_key(server.settings))
    mac = hmac.new(key, activation_id.encode(), hashlib.sha256).digest()
    return "sas_" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


# --------------------------------------------------------------------------- rotation


def test_a_deployed_generation_0_secret_is_accepted_and_rotated(seat: Seat) -> None:
    # A new activation still hands out the secret format deployed SDKs hold.
    assert seat.first_secret == _legacy_secret(seat.server, seat.activation_id)
    second = seat.rotate(seat.first_secret)
    assert second.startswith("sas_1.") and second != seat.first_secret
    third = seat.rotate(second)
    assert third.startswith("sas_2.")
    assert seat.shown()["shared_at"] is None


def test_lost_answers_keep_the_grace_secret_working(seat: Seat) -> None:
    """A client whose answers never arrive keeps presenting its secret: never flagged."""
    held = seat.rotate(seat.first_secret)  # the client holds generation 1
    for _ in range(4):  # every answer lost: the server rotated each time
        seat.rotate(held)
    newest = seat.rotate(held)  # this answer arrives
    assert seat.validate(newest).status_code == 200
    assert seat.shown()["shared_at"] is None and seat.shared_audit() == []


def test_a_secret_older_than_the_grace_one_flags_and_answers_410(seat: Seat) -> None:
    copy = seat.first_secret  # a copy of the installation, before it validated
    at = datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    with clock_override(lambda: at):
        held = seat.rotate(copy)  # the original validates: grace = copy's generation
        held = seat.rotate(held)  # and again: the copy's secret is now outdated
        refused = seat.validate(copy)
    assert refused.status_code == 410 and error_code(refused) == "activation_moved"
    message = refused.json()["error"]["message"]
    assert "another computer" in message and "Activate again" in message
    receipt = check_receipt(refused.json()["error"]["receipt"], seat.keys, seat.product)
    assert receipt["result"] == "activation_moved"
    assert receipt["activation_id"] == seat.activation_id
    shown = seat.shown()
    assert shown["shared_reason"] == "copied_secret"
    assert parse_rfc3339(shown["shared_at"]) == at
    assert shown["deactivated_at"] is None  # policy "flag": only marked
    (entry,) = seat.shared_audit()
    assert entry["detail"] == {"reason": "copied_secret", "policy": "flag",
                               "deactivated": False}
    # The holder of the current secret goes on; the copy stays refused.
    assert seat.validate(held).status_code == 200
    assert error_code(seat.validate(copy)) == "activation_moved"


def test_the_other_routes_refuse_an_outdated_secret_and_change_nothing(seat: Seat) -> None:
    copy = seat.first_secret
    held = seat.rotate(seat.rotate(copy))
    for answer in (seat.api.deactivate(seat.activation_id, copy),
                   seat.api.get_settings(seat.activation_id, copy),
                   seat.api.erasure(seat.activation_id, copy)):
        assert answer.status_code == 410 and error_code(answer) == "activation_moved"
    assert seat.shown()["deactivated_at"] is None
    assert seat.shown()["shared_at"] is None  # only a validation flags
    assert seat.validate(held).status_code == 200


def test_the_grace_secret_still_deactivates(seat: Seat) -> None:
    """The answer carrying the current secret was lost: the machine can still leave."""
    seat.rotate(seat.first_secret)  # answer lost: the client holds the first secret
    assert seat.api.deactivate(seat.activation_id, seat.first_secret).status_code == 200


def test_a_wrong_secret_is_401_whatever_generation_it_claims(
    seat: Seat, any_server: InProcessServer, api: Api
) -> None:
    held = seat.rotate(seat.first_secret)
    other = Seat(any_server, api)
    other_held = other.rotate(other.first_secret)
    forged = [
        "sas_" + secrets.token_urlsafe(32),  # generation 0, random
        "sas_1." + secrets.token_urlsafe(32),  # the current generation, random
        "sas_7." + secrets.token_urlsafe(32),  # a future generation, random
        "sas_0." + held.split(".", 1)[1],  # a generation spelled another way
        "sas_01." + held.split(".", 1)[1],
        held.replace("sas_1.", "sas_2."),  # a real MAC under another generation
        other.first_secret, other_held,  # another activation's real secrets
        "sas_" + "9" * 12 + "." + secrets.token_urlsafe(32),  # an absurd generation
        "", "sas_", "sas_.", held + "x",
    ]
    for secret in forged:
        answer = seat.validate(secret)
        assert answer.status_code == 401 and error_code(answer) == "unauthorized", secret
    assert seat.shown()["shared_at"] is None and seat.validate(held).status_code == 200


def test_a_generation_above_the_stored_one_is_accepted(seat: Seat) -> None:
    """The database restored from an older backup: the clients' secrets are newer."""
    held = seat.rotate(seat.rotate(seat.rotate(seat.first_secret)))  # generation 3
    engine = sa.create_engine(seat.server.database_url)
    with engine.begin() as conn:  # the backup, taken at generation 1
        conn.execute(sa.text("UPDATE activations SET secret_generation = 1, secret_grace = 0 "
                             "WHERE id = :id"), {"id": seat.activation_id})
    engine.dispose()
    after = seat.rotate(held)
    assert after.startswith("sas_4.")
    assert seat.rotate(after).startswith("sas_5.")
    assert seat.shown()["shared_at"] is None


def test_reuse_on_the_same_machine_makes_every_earlier_secret_outdated(seat: Seat) -> None:
    """An honest reinstall (the same machine activates again); then the old copy shows up."""
    grace = seat.rotate(seat.first_secret)  # never stored: the reinstall came first
    again = seat.api.activate(seat.product, seat.license_key)
    assert again.status_code == 200  # the same machine: its activation, no second seat
    body = again.json()
    assert body["activation_id"] == seat.activation_id
    reissued = body["activation_secret"]
    assert check_token(body["token"], seat.keys, seat.product).secret_digest == \
        secret_digest(reissued)
    assert seat.validate(reissued).status_code == 200
    for old in (seat.first_secret, grace):
        assert error_code(seat.validate(old)) == "activation_moved"
    assert seat.shown()["shared_reason"] == "copied_secret"


def test_an_idempotent_replay_hands_out_a_new_generation(seat: Seat) -> None:
    """A copy replaying the captured activation request must not fetch the current
    secret and take turns with it: a replay hands out a new generation, so the
    installation holding the earlier one presents an outdated secret next."""
    key = secrets.token_urlsafe(18)
    first = seat.api.activate(seat.product, seat.license_key, machine="m2",
                              idempotency_key=key)
    assert first.status_code == 201
    activation_id, secret = first.json()["activation_id"], first.json()["activation_secret"]
    rotated = seat.api.validate(activation_id, secret, machine="m2").json()["activation_secret"]
    replay = seat.api.activate(seat.product, seat.license_key, machine="m2",
                               idempotency_key=key)
    assert replay.status_code == 200
    assert replay.json()["activation_secret"] not in (secret, rotated)
    assert error_code(seat.api.validate(activation_id, rotated, machine="m2")) == \
        "activation_moved"


# --------------------------------------------------------------------------- policy


def test_suspend_policy_deactivates_the_shared_activation(
    any_server: InProcessServer, api: Api
) -> None:
    seat = Seat(any_server, api)
    product = any_server.admin.update_product(seat.product, sharing_policy="suspend")
    assert product["sharing_policy"] == "suspend"
    copy = seat.first_secret
    held = seat.rotate(seat.rotate(copy))
    assert error_code(seat.validate(copy)) == "activation_moved"  # the detection itself
    shown = seat.shown()
    assert shown["deactivated_by"] == "sharing" and shown["deactivated_at"] is not None
    assert shown["shared_reason"] == "copied_secret"
    # Every installation, the one with the current secret too, is now refused.
    refused = seat.validate(held)
    assert refused.status_code == 410 and error_code(refused) == "activation_removed"
    assert "more than one computer" in refused.json()["error"]["message"]
    assert check_receipt(refused.json()["error"]["receipt"], seat.keys,
                         seat.product)["result"] == "activation_removed"
    (entry,) = seat.shared_audit()
    assert entry["detail"]["policy"] == "suspend" and entry["detail"]["deactivated"] is True


def test_sharing_policy_accepts_only_flag_or_suspend(seat: Seat) -> None:
    for wrong in ("block", "", "FLAG", 1, None):
        if wrong is None:
            continue  # null leaves it as it is
        with pytest.raises(AdminError) as refused:
            seat.server.admin.update_product(seat.product, sharing_policy=wrong)
        assert refused.value.status == 400
    assert seat.server.admin.get_product(seat.product)["sharing_policy"] == "flag"
    assert seat.server.admin.update_product(
        seat.product, sharing_policy=None)["sharing_policy"] == "flag"


def _cli(server: InProcessServer, *argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli.main([*argv, "--data-dir", str(server.data_dir),
                             "--database-url", server.database_url])
        except SystemExit as exc:  # a usage error click found
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def test_cli_sets_the_policy_and_lists_the_flag(seat: Seat) -> None:
    code, out = _cli(seat.server, "products", "configure", seat.product,
                     "--sharing-policy", "suspend")
    assert code == 0, out
    assert "sharing policy" in _cli(seat.server, "products", "show", seat.product)[1]
    assert seat.server.admin.get_product(seat.product)["sharing_policy"] == "suspend"
    code, out = _cli(seat.server, "products", "configure", seat.product,
                     "--sharing-policy", "block")
    assert code != 0 and ("invalid choice" in out or "flag, suspend" in out), out
    assert seat.server.admin.get_product(seat.product)["sharing_policy"] == "suspend"
    copy = seat.first_secret
    seat.rotate(seat.rotate(copy))
    seat.validate(copy)
    code, out = _cli(seat.server, "activations", "list", seat.license_id)
    assert code == 0, out
    line = next(x for x in out.splitlines() if x.startswith(seat.activation_id))
    assert "suspended (shared)" in line and "copied_secret" in line


# --------------------------------------------------------------------------- alternation


@pytest.fixture
def sessions(any_server: InProcessServer) -> Iterator[Callable[[], Any]]:
    engine = make_engine(any_server.settings)
    yield make_session_factory(engine)
    engine.dispose()


def test_alternating_between_two_conflicting_sets_flags(
    seat: Seat, sessions: Callable[[], Any]
) -> None:
    a = machine("desk")
    b = drift(a, cpu="cpu-of-another-box")  # within tolerance 1 of a, but conflicting
    c = drift(b, os_arch="windows/arm64")
    missing = drift(a, cpu=None)  # a read that failed: no conflict
    with sessions() as session:
        activation = session.get(Activation, seat.activation_id)
        assert not sharing.note_binding_change(session, activation, a, b, [])  # a first move
        assert not sharing.note_binding_change(session, activation, a, missing, [b])
        assert not sharing.note_binding_change(session, activation, b, c, [a])  # c is not a
        session.commit()
    assert seat.shown()["shared_at"] is None
    with sessions() as session:
        activation = session.get(Activation, seat.activation_id)
        assert sharing.note_binding_change(session, activation, b, a, [c, a])  # A -> B -> A
        session.commit()
    assert seat.shown()["shared_reason"] == "alternating_machines"
    (entry,) = seat.shared_audit()
    assert entry["detail"]["reason"] == "alternating_machines"
    # The first flag's reason stays; a later detection is audited again.
    copy = seat.first_secret
    seat.rotate(seat.rotate(copy))
    assert error_code(seat.validate(copy)) == "activation_moved"
    assert seat.shown()["shared_reason"] == "alternating_machines"
    assert len(seat.shared_audit()) == 2


def test_validations_going_a_b_a_between_conflicting_sets_flag(seat: Seat) -> None:
    """Two machines taking turns with one activation, each within the tolerance of the
    other (one component differs): every move is a re-bind, the return is flagged."""
    a, b = fingerprint("m1"), fingerprint("m1", changed=("cpu",))
    secret = seat.first_secret
    answer = seat.api.validate(seat.activation_id, secret, fp=b)  # A -> B: a first move
    assert answer.status_code == 200 and answer.json()["rebound"] is True
    secret = answer.json()["activation_secret"]
    assert seat.shown()["shared_at"] is None
    answer = seat.api.validate(seat.activation_id, secret, fp=a)  # B -> A: back again
    assert answer.status_code == 200, answer.text
    assert seat.shown()["shared_reason"] == "alternating_machines"
    (entry,) = seat.shared_audit()
    assert entry["detail"]["reason"] == "alternating_machines"


def test_cli_creates_a_product_with_its_identity_settings(seat: Seat) -> None:
    pid = "cli-" + secrets.token_hex(4)
    code, out = _cli(seat.server, "products", "create", pid, "--rebind-limit", "off",
                     "--rebind-period", "7d", "--sharing-policy", "suspend")
    assert code == 0, out
    shown = seat.server.admin.get_product(pid)
    assert (shown["rebind_limit"], shown["rebind_period"], shown["sharing_policy"]) == (
        None, 7 * 86400, "suspend")


def test_cli_restore_says_whether_there_was_anything_to_restore(seat: Seat) -> None:
    code, out = _cli(seat.server, "licenses", "restore", seat.license_id)
    assert code == 0 and "nothing to restore" in out, out
    erased = seat.api.erasure(seat.activation_id, seat.first_secret)
    assert erased.status_code == 200, erased.text
    assert seat.server.admin.get_license(seat.license_id)["erased"]
    code, out = _cli(seat.server, "licenses", "restore", seat.license_id)
    assert code == 0 and "is restored" in out, out
    assert not seat.server.admin.get_license(seat.license_id)["erased"]
