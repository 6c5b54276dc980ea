"""The server's settings (pydantic-settings): names, defaults, secrets, overrides."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from software_dna.server.config import ConfigError, Settings, environ_without_settings


def test_from_env_reads_only_the_mapping(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://elsewhere/db")
    settings = Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": str(tmp_path)})
    assert settings.database_url == f"sqlite:///{tmp_path / 'server.db'}"
    assert (settings.rate_limit_attempts, settings.rate_limit_window) == (10, 300)
    assert (settings.smtp_tls, settings.smtp_port, settings.password_reset_ttl) == (
        "starttls", None, 900)


def test_overrides_are_init_arguments_not_environment(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/licenses")
    monkeypatch.delenv("SOFTWARE_DNA_SERVER_HOME", raising=False)
    before = dict(os.environ)
    settings = Settings.load(home=tmp_path, database_url=None)
    assert settings.home == tmp_path
    assert settings.database_url == "postgresql+psycopg://db.example/licenses"
    assert Settings.load(database_url="sqlite:///x.db").database_url == "sqlite:///x.db"
    assert dict(os.environ) == before


def test_secrets_are_hidden_and_round_trip(tmp_path: Path) -> None:
    settings = Settings.from_env({
        "SOFTWARE_DNA_SERVER_HOME": str(tmp_path), "SOFTWARE_DNA_MASTER_KEY": "m-secret",
        "SOFTWARE_DNA_SMTP_HOST": " mail.example ", "SOFTWARE_DNA_SMTP_SENDER": "a@b.c",
        "SOFTWARE_DNA_SMTP_PASSWORD": "p-secret", "SOFTWARE_DNA_SMTP_TLS": "TLS",
    })
    assert "m-secret" not in repr(settings) and "p-secret" not in repr(settings)
    assert settings.master_key is not None
    assert settings.master_key.get_secret_value() == "m-secret"
    assert (settings.smtp_host, settings.smtp_tls) == ("mail.example", "tls")
    assert Settings.from_env(settings.to_env()) == settings
    outer = {"PATH": "/bin", "DATABASE_URL": "x", "SOFTWARE_DNA_MASTER_KEY": "y"}
    assert environ_without_settings(outer) == {"PATH": "/bin"}


@pytest.mark.parametrize(("env", "names"), [
    ({"SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": "many"}, "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS"),
    ({"SOFTWARE_DNA_RATE_LIMIT_WINDOW": "0"}, "SOFTWARE_DNA_RATE_LIMIT_WINDOW"),
    ({"SOFTWARE_DNA_SMTP_TLS": "ssl"}, "SOFTWARE_DNA_SMTP_TLS"),
    ({"SOFTWARE_DNA_SMTP_PORT": "70000"}, "SOFTWARE_DNA_SMTP_PORT"),
    ({"SOFTWARE_DNA_SMTP_HOST": "mail.example"}, "SOFTWARE_DNA_SMTP_SENDER"),
])
def test_a_malformed_variable_is_named(env: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        Settings.from_env({"SOFTWARE_DNA_SERVER_HOME": "/tmp/unused", **env})
