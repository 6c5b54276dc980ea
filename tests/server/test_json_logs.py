"""JSON logs (``SOFTWARE_DNA_LOG_FORMAT=json``): one object per line, no personal data.

Invariants:
- Every log line of the server is one JSON object with ``time`` (RFC 3339, UTC),
  ``level``, ``logger`` and ``message``; an access line also has ``method``,
  ``route`` (the template, never the path), ``status`` and ``duration_ms``.
- An activation that gives an e-mail address, its confirmation link and a
  license portal sign-in (by key and by a mailed link) leave no address, key,
  secret or link token in the log.
"""

from __future__ import annotations

import io
import json
import logging
import logging.config
import re
import secrets
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna.server.logconfig import JsonFormatter, log_config
from software_dna.server.testing import InProcessServer, LocalServer
from tests.portal.helpers import PASSWORD, PortalUser, portal_link, setup_license
from tests.server.helpers import Api
from tests.server.mailing import mail_env
from tests.smtp import Mailbox

_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "software_dna",
            "software_dna.server", "software_dna.server.worker", "software_dna.server.access")
_TOKEN = re.compile(r"/(?:link|email-confirmations)/([A-Za-z0-9_-]{16,})")


def _lines(text: str) -> list[dict[str, Any]]:
    """Every line as a JSON object (AssertionError naming a line that is not one)."""
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}")
        assert isinstance(entry, dict), line
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        assert datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).utcoffset() \
            is not None
        entries.append(entry)
    return entries


def _assert_clean(text: str, secrets_: list[str]) -> None:
    for secret in secrets_:
        assert secret not in text, f"{secret!r} is in the log"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The server's JSON logging configuration, writing to a buffer (restored after)."""
    saved = {name: (list(lg.handlers), lg.level, lg.propagate, lg.disabled)
             for name in _LOGGERS for lg in [logging.getLogger(name)]}
    buffer = io.StringIO()
    config = log_config("info", "json")
    for handler in config["handlers"].values():
        handler["stream"] = buffer
    logging.config.dictConfig(config)
    try:
        yield buffer
    finally:
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def test_formatter_keys_and_exceptions() -> None:
    record = logging.LogRecord("software_dna.server", logging.ERROR, __file__, 1,
                               "failed %s\nsecond line", ("x",), None)
    record.extra_field = "never copied"
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "software_dna.server"
    assert entry["message"] == "failed x\nsecond line"
    assert "RuntimeError: boom" in entry["exception"]
    assert "never copied" not in line
    assert entry["time"].endswith("Z")


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="SOFTWARE_DNA_LOG_FORMAT"):
        log_config("info", "xml")


def test_activation_with_email_and_portal_sign_ins_leave_no_personal_data(
        tmp_path: Path, captured: io.StringIO) -> None:
    with Mailbox() as box, InProcessServer(
            tmp_path, env={**mail_env(box), "SOFTWARE_DNA_LOG_FORMAT": "json",
                           "SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS": "1000"}) as srv:
        api = Api.for_server(srv)
        email = f"jane.{secrets.token_hex(3)}@example.org"
        held = setup_license(srv, api, box, email=email)  # activation + confirmation link
        activation = held.activations[0]
        assert api.validate(activation["activation_id"], activation["activation_secret"],
                            machine="machine-0").status_code == 200
        with PortalUser(srv, held.product_id) as user:
            assert user.sign_in(held.key, PASSWORD).status_code == 303
        with PortalUser(srv, held.product_id) as user:
            before = len(box.messages)
            assert user.sign_in_by_link(box, email).status_code == 303
            link = portal_link(box, before + 1)
        api.close()
    text = captured.getvalue()
    entries = _lines(text)
    access = [e for e in entries if e["logger"] == "software_dna.server.access"]
    assert access, "no access line"
    for entry in access:
        assert {"method", "route", "status", "duration_ms"} <= set(entry)
        assert "?" not in entry["route"]
    routes = {e["route"] for e in access}
    assert "/v1/activations" in routes
    assert "/v1/activations/{activation_id}/validate" in routes
    assert any("/link/" in route for route in routes)  # the portal link, as its template
    mailed = [m.get_body(("plain",)).get_content() for m in box.messages]  # type: ignore[union-attr]
    tokens = [t for body in mailed for t in _TOKEN.findall(body)]
    assert tokens and link.rsplit("/", 1)[1] in tokens
    _assert_clean(text, [email, email.partition("@")[0], held.key,
                         activation["activation_secret"], PASSWORD, *tokens])


def test_a_real_server_logs_json_lines(tmp_path: Path) -> None:
    env = {"SOFTWARE_DNA_LOG_FORMAT": "json"}
    with LocalServer(tmp_path, env=env) as srv:
        admin = srv.admin
        product = "p-" + secrets.token_hex(4)
        admin.setup_product(product, name="Logged")
        lic = admin.issue_license(product, password=PASSWORD)
        email = f"john.{secrets.token_hex(3)}@example.org"
        api = Api(srv.url)
        made = api.activate(product, lic["license_key"], machine="a", email=email,
                            consent=True, password=PASSWORD)
        assert made.status_code == 201, made.text
        sign_in = requests.post(f"{srv.url}/portal/{product}/sign-in",
                                data={"license_key": lic["license_key"], "password": PASSWORD},
                                allow_redirects=False, timeout=30)
        assert sign_in.status_code in (200, 303), sign_in.status_code
        token = secrets.token_urlsafe(24)
        requests.get(f"{srv.url}/portal/{product}/link/{token}", timeout=30)
        requests.get(f"{srv.url}/v1/admin/licenses?q={email}",
                     headers={"Authorization": f"Bearer {srv.admin_key}"}, timeout=30)
        api.close()
    text = srv.log_path.read_text(encoding="utf-8")
    # `server run` prints where the control panel is (not a log record): the rest is JSON.
    logged = "\n".join(line for line in text.splitlines()
                       if line.strip() and not line.startswith("Control panel:"))
    entries = _lines(logged)
    assert any(e["logger"] == "software_dna.server.access" and e["status"] == 201
               and e["route"] == "/v1/activations" for e in entries)
    assert any(e["logger"].startswith("uvicorn") for e in entries)
    _assert_clean(text, [email, lic["license_key"], made.json()["activation_secret"],
                         PASSWORD, token, srv.admin_key])
    # The one address with a port in the log is the server's own (no client's).
    assert set(re.findall(r"127\.0\.0\.1:(\d+)", logged)) <= {str(srv.port)}
