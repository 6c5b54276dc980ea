"""Attack review: `lockouts show` / `reset` and what the app meets."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from software_dna.server.testing import InProcessServer
from tests.server.helpers import Api


def _erasure_locked(api: Api, made: dict[str, Any]) -> None:
    answers = [api.erasure(made["activation_id"], made["activation_secret"]).status_code
               for _ in range(4)]
    assert answers == [200, 200, 200, 429]


def test_the_per_activation_erasure_limit_is_shown_and_reset_by_lockouts(
        fresh_database_url: str) -> None:
    """An end user's erasure requests are refused 429 (3 per activation per hour); the vendor's
    `lockouts show` must say so, and `lockouts reset --license` must lift it."""
    with tempfile.TemporaryDirectory() as folder, InProcessServer(
            Path(folder), database_url=fresh_database_url,
            env={"SOFTWARE_DNA_ERASURE_ATTEMPTS": "3"}) as srv:
        srv.admin.setup_product("p1")
        lic = srv.admin.issue_license("p1", seats=1)
        api = Api.for_server(srv)
        made = api.activate("p1", lic["license_key"], machine="m1", email="a@example.com",
                            consent=True).json()
        _erasure_locked(api, made)
        shown = srv.admin.lockout(lic["id"])
        assert shown["locked_until"] is not None or any(
            row["locked_until"] for row in shown["limits"]), shown
        rows = [row for row in shown["limits"] if row["kind"] == "activation_erasures"]
        assert [(row["count"], row["limit"]) for row in rows] == [(3, 3)], shown
        assert made["activation_id"] in rows[0]["description"]
        srv.admin.reset_lockout(license_id=lic["id"])
        assert not any(row["locked_until"] for row in srv.admin.lockout(lic["id"])["limits"])
        again = api.erasure(made["activation_id"], made["activation_secret"])
        assert again.status_code == 200, again.text
        api.close()


def test_a_reset_of_one_license_leaves_another_licenses_erasure_limit(
        fresh_database_url: str) -> None:
    """The per-activation counters a report shows and a reset forgets are those of the
    license's own activations (server rows), never another license's."""
    with tempfile.TemporaryDirectory() as folder, InProcessServer(
            Path(folder), database_url=fresh_database_url,
            env={"SOFTWARE_DNA_ERASURE_ATTEMPTS": "3"}) as srv:
        srv.admin.setup_product("p1")
        mine, theirs = (srv.admin.issue_license("p1", seats=1) for _ in range(2))
        api = Api.for_server(srv)
        made = {lic["id"]: api.activate("p1", lic["license_key"], machine="m-" + lic["id"][-6:],
                                        email="a@example.com", consent=True).json()
                for lic in (mine, theirs)}
        _erasure_locked(api, made[theirs["id"]])
        assert not any(row["kind"] == "activation_erasures"
                       for row in srv.admin.lockout(mine["id"])["limits"])
        srv.admin.reset_lockout(license_id=mine["id"])
        still = api.erasure(made[theirs["id"]]["activation_id"],
                            made[theirs["id"]]["activation_secret"])
        assert still.status_code == 429, still.text
        api.close()
