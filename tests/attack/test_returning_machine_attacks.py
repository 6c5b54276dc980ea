"""Attack review (second pass): the "returning machine" rule of the re-activation lock-out.

The app runs in this process on SQLite and PostgreSQL; requests are built by hand as the
SDK sends them.  Each test asserts the promise; a failing one is a finding.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from tests.inprocess import InProcessServer
from tests.server.helpers import Api, error_code, fingerprint


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, database_url: str
        ) -> Iterator[InProcessServer]:
    with InProcessServer(tmp_path_factory.mktemp("attack2-returns"),
                         database_url=database_url) as server:
        yield server


@pytest.fixture(scope="module")
def api(srv: InProcessServer) -> Iterator[Api]:
    made = Api.for_server(srv)
    yield made
    made.close()


def _license(srv: InProcessServer, **policy: Any) -> tuple[str, dict[str, Any]]:
    product = "a2r-" + secrets.token_hex(4)
    srv.admin.setup_product(product, reactivation_period=86400, **policy)
    lic: dict[str, Any] = srv.admin.request("POST", "/licenses",
                                            json={"product": product, "seats": 1})
    return product, lic


def test_two_clones_sharing_a_machine_id_with_their_own_macs_rotate_one_seat_for_ever(
        srv: InProcessServer, api: Api) -> None:
    """Two VMs cloned from one image keep the image's machine id (hypervisors give each
    clone its own MAC address, not a new /etc/machine-id). Each differs from the other in
    the MAC alone, within the default tolerance and anchored on the (shared) machine id, so
    each hand-over is a free "return": the seat rotates between two computers without end.
    The machine-id-only bound (20 x rebind_limit x seats per period) is not applied to
    this kind of return, and a MAC change at validation would be a counted re-bind."""
    product, lic = _license(srv, reactivation_limit=0, rebind_limit=1, rebind_period=86400)
    key = lic["license_key"]
    clone_a = fingerprint("cloned-image")
    clone_b = fingerprint("cloned-image", changed=["mac"])
    statuses = []
    for turn in range(2 * 20 + 4):  # twice the machine-id-only bound, and a few more
        made = api.activate(product, key, fp=clone_a if turn % 2 == 0 else clone_b)
        statuses.append(made.status_code)
        if made.status_code != 201:
            assert made.status_code == 429 and error_code(made) == "activation_locked"
            break
        body = made.json()
        assert api.deactivate(body["activation_id"], body["activation_secret"]).status_code == 200
    assert 429 in statuses, (
        f"{len(statuses)} hand-overs between two computers, none counted")
