"""Fixtures of the portal tests: an in-process server that mails to a local SMTP server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from software_dna.server.testing import InProcessServer
from tests.server.helpers import Api
from tests.server.mailing import mail_env
from tests.smtp import Mailbox


@pytest.fixture(scope="module")
def mailbox() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 keeping every mail."""
    with Mailbox() as box:
        yield box


@pytest.fixture(scope="module")
def portal_server(tmp_path_factory: pytest.TempPathFactory,
                  mailbox: Mailbox) -> Iterator[InProcessServer]:
    """The app in-process on SQLite, mailing to ``mailbox``, with a public URL (links).

    Every in-process request comes from one client address, so the per-network limits
    are lifted here; the tests of those limits start a server of their own.
    """
    env = dict(mail_env(mailbox), SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS="1000")
    with InProcessServer(tmp_path_factory.mktemp("portal"), env=env) as srv:
        yield srv


@pytest.fixture(scope="module")
def api(portal_server: InProcessServer) -> Iterator[Api]:
    """The public API of ``portal_server`` (the SDK's routes, driven as JSON)."""
    client = Api.for_server(portal_server)
    yield client
    client.close()
