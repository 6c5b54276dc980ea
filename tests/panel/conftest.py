"""Fixtures of the panel tests: an in-process server with a product and staff of every role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from software_dna.server.domain.roles import Role
from software_dna.server.testing import InProcessServer
from tests.panel.helpers import PanelUser, add_staff


@pytest.fixture(scope="module")
def staff_emails(inprocess_server: InProcessServer) -> dict[Role, str]:
    """One staff member per role on the module's server."""
    return {role: add_staff(inprocess_server, role) for role in Role}


@pytest.fixture
def owner(inprocess_server: InProcessServer,
          staff_emails: dict[Role, str]) -> Iterator[PanelUser]:
    """A signed-in owner."""
    with PanelUser(inprocess_server, staff_emails[Role.OWNER]) as user:
        assert user.sign_in().status_code == 303
        yield user


@pytest.fixture(scope="module")
def users(inprocess_server: InProcessServer,
          staff_emails: dict[Role, str]) -> Iterator[dict[Role, PanelUser]]:
    """One signed-in staff member per role (signed in once: sign-ins are rate limited)."""
    signed = {role: PanelUser(inprocess_server, email) for role, email in staff_emails.items()}
    for user in signed.values():
        assert user.sign_in().status_code == 303
    yield signed
    for user in signed.values():
        user.close()
