"""``software-dna mail`` and the mail options of ``products`` and ``licenses issue``, in process
(``cli.main``) on a fresh SQLite data folder (the direct backend), and the same commands
through the admin API of a server in this process behind a socket (tests/threaded.py)."""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from software_dna.server.cli import _common
from tests.cli_runner import ENV_CLEARED, cli_json, cli_ok, run_cli

from ..threaded import ThreadedServer

ok_json = cli_json


@pytest.fixture(params=["direct", "remote"])
def where(request: pytest.FixtureRequest, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run the commands on the database, or through a server's admin API."""
    for name in ENV_CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    if request.param == "direct":
        monkeypatch.setenv("SOFTWARE_DNA_SERVER_HOME", str(tmp_path))
        cli_ok("server", "init")
        yield "direct"
        return
    with ThreadedServer(tmp_path / "srv") as srv:
        monkeypatch.setenv(_common.ENV_SERVER_URL, srv.url)
        monkeypatch.setenv(_common.ENV_ADMIN_KEY, srv.admin_key)
        yield "remote"


def test_mail_commands(where: str, tmp_path: Path) -> None:
    made = cli_json("products", "create", "cli-mail", "--name", "Cli Mail",
                   "--vendor-name", "Acme Ltd", "--colour", "#112233",
                   "--reminder-days", "10,2", "--payment-grace-days", "5")
    assert made["branding"] == {"vendor_name": "Acme Ltd", "colour": "#112233"}
    assert made["reminder_days"] == [10, 2] and made["payment_grace_days"] == 5
    changed = cli_json("products", "configure", "cli-mail", "--support-email",
                      "help@acme.example", "--colour", "", "--reminder-days", "")
    assert changed["branding"] == {"vendor_name": "Acme Ltd",
                                   "support_email": "help@acme.example"}
    assert changed["reminder_days"] == []
    code, _, err = run_cli("products", "configure", "cli-mail", "--logo-url", "http://x.example/l")
    assert code == 1 and "https://" in err
    assert "reminder days" in cli_ok("products", "show", "cli-mail")
    cli_ok("keys", "generate", "cli-mail")

    issued = cli_json("licenses", "issue", "cli-mail", "--email", "ana@example.org")
    log = cli_json("mail", "log", "--license", issued["id"])
    assert [(m["template"], m["status"], m["to"]) for m in log["mails"]] == [
        ("license_key", "pending", "ana@example.org")]
    assert "ana@example.org" in cli_ok("mail", "log")

    listed = cli_json("mail", "templates", "list", "--product", "cli-mail")
    assert {t["name"]: t["source"] for t in listed["templates"]} == {
        "license_key": "builtin", "expiry_reminder": "builtin", "trial_ending": "builtin",
        "payment_failed": "builtin", "portal_link": "builtin"}
    text = tmp_path / "key.txt"
    text.write_text("Key: {{ license_key }} ({{ vendor_name }})\n", encoding="utf-8")
    cli_ok("mail", "templates", "set", "license_key", "--product", "cli-mail",
       "--subject", "Key for {{ product_name }}", "--text", str(text), "--no-html")
    shown = cli_json("mail", "templates", "show", "license_key", "--product", "cli-mail")
    assert shown["source"] == "product" and shown["html"] is None
    preview = cli_json("mail", "templates", "preview", "license_key", "--product", "cli-mail",
                      "--context", '{"license_key": "K-1"}')
    assert preview["subject"] == "Key for Cli Mail" and preview["text"] == "Key: K-1 (Acme Ltd)\n"
    assert "Subject: Key for Cli Mail" in cli_ok("mail", "templates", "preview", "license_key",
                                             "--product", "cli-mail")

    bad = tmp_path / "bad.txt"
    bad.write_text("{{ ''.__class__.__mro__ }}", encoding="utf-8")
    code, _, err = run_cli("mail", "templates", "set", "license_key", "--product", "cli-mail",
                        "--text", str(bad))
    assert code == 1 and re.search(r"does not render", err), err
    reset = cli_json("mail", "templates", "reset", "license_key", "--product", "cli-mail")
    assert reset["source"] == "builtin"
    code, _, err = run_cli("mail", "templates", "show", "nope")
    assert code == 1 and "mail template" in err, err
