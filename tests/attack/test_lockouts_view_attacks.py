"""Attack review of issue 14: `lockouts show` / `reset` and what the app meets."""

from __future__ import annotations

import tempfile
from pathlib import Path

from software_dna.server.testing import InProcessServer
from tests.server.helpers import Api


def test_the_per_activation_erasure_limit_is_shown_and_reset_by_lockouts() -> None:
    """An end user's erasure requests are refused 429 (3 per activation per hour); the vendor's
    `lockouts show` says nothing is locked, and `lockouts reset --license` does not lift it."""
    with tempfile.TemporaryDirectory() as folder, InProcessServer(
            Path(folder), env={"SOFTWARE_DNA_ERASURE_ATTEMPTS": "3"}) as srv:
        srv.admin.setup_product("p1")
        lic = srv.admin.issue_license("p1", seats=1)
        api = Api.for_server(srv)
        made = api.activate("p1", lic["license_key"], machine="m1", email="a@example.com",
                            consent=True).json()
        answers = [api.erasure(made["activation_id"], made["activation_secret"]).status_code
                   for _ in range(4)]
        assert answers == [200, 200, 200, 429]
        shown = srv.admin.lockout(lic["id"])
        assert shown["locked_until"] is not None or any(
            row["locked_until"] for row in shown["limits"]), shown
        srv.admin.reset_lockout(license_id=lic["id"])
        again = api.erasure(made["activation_id"], made["activation_secret"])
        assert again.status_code == 200, again.text
        api.close()
