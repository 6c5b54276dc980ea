"""Server settings, read from the environment.

Every setting has an environment variable; :meth:`Settings.from_env` reads
them all.  Nothing here touches the disk or the database.

=====================================  ============================================
variable                               meaning (default)
=====================================  ============================================
``SOFTWARE_DNA_SERVER_HOME``           data folder (platformdirs' user data dir
                                       ``software-dna-server``)
``DATABASE_URL``                       SQLAlchemy URL (``sqlite:///<home>/server.db``);
                                       PostgreSQL: ``postgresql+psycopg://...``
``SOFTWARE_DNA_MASTER_KEY``            the master key itself (base64url, 32 bytes)
``SOFTWARE_DNA_MASTER_KEY_FILE``       file holding it (``<home>/master.key``)
``SOFTWARE_DNA_ISSUER``                ``iss`` claim of tokens (``software-dna``)
``SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS``   activation attempts per license per window (10)
``SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS``
                                       activation attempts per client address per
                                       window (30)
``SOFTWARE_DNA_RATE_LIMIT_WINDOW``     window length in seconds (300)
``SOFTWARE_DNA_DB_POOL_SIZE``          connections kept per worker (5)
``SOFTWARE_DNA_DB_MAX_OVERFLOW``       extra connections per worker under load (10)
``SOFTWARE_DNA_DB_BUSY_TIMEOUT``       SQLite lock wait in seconds (30)
``SOFTWARE_DNA_SMTP_HOST``             mail server for password reset codes (none:
                                       no mail; the vendor resets passwords)
``SOFTWARE_DNA_SMTP_PORT``             its port (587 with ``starttls``, 465 with
                                       ``tls``, else 25)
``SOFTWARE_DNA_SMTP_TLS``              ``starttls`` (default), ``tls`` (implicit) or
                                       ``none``
``SOFTWARE_DNA_SMTP_SENDER``           the From address (required with a host)
``SOFTWARE_DNA_SMTP_USERNAME``         login, if the mail server wants one
``SOFTWARE_DNA_SMTP_PASSWORD``         its password
``SOFTWARE_DNA_SMTP_CA_FILE``          PEM CA bundle to verify the mail server with
``SOFTWARE_DNA_SMTP_TIMEOUT``          seconds to wait for the mail server (10)
``SOFTWARE_DNA_PASSWORD_RESET_TTL``    seconds a reset code is valid (900)
=====================================  ============================================
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TypedDict

__all__ = ["ConfigError", "Settings", "default_home"]

#: Body limit of the public (SDK) routes, in bytes.
PUBLIC_BODY_LIMIT = 64 * 1024
#: Body limit of the admin routes, in bytes.
ADMIN_BODY_LIMIT = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def default_home() -> Path:
    """The default data folder: platformdirs' user data dir ``software-dna-server``."""
    import platformdirs

    return Path(platformdirs.user_data_dir("software-dna-server", appauthor=False))


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}.")
    return value


@dataclass(frozen=True)
class Settings:
    """The server's configuration.

    Durations are in seconds.  ``database_url`` is a SQLAlchemy URL; a
    ``postgresql://`` URL is rewritten to use psycopg 3
    (``postgresql+psycopg://``).
    """

    home: Path
    database_url: str
    master_key: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    issuer: str = "software-dna"
    rate_limit_attempts: int = 10
    rate_limit_address_attempts: int = 30
    rate_limit_window: int = 300
    db_pool_size: int = 5
    db_max_overflow: int = 10
    db_busy_timeout: int = 30
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_tls: str = "starttls"
    smtp_sender: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_ca_file: str | None = None
    smtp_timeout: int = 10
    password_reset_ttl: int = 900

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default: ``os.environ``).

        Raises :class:`ConfigError` when a variable is malformed.
        """
        env = os.environ if env is None else env
        home_raw = env.get("SOFTWARE_DNA_SERVER_HOME")
        home = Path(home_raw).expanduser() if home_raw else default_home()
        url = env.get("DATABASE_URL") or env.get("SOFTWARE_DNA_DATABASE_URL") or ""
        if not url:
            url = f"sqlite:///{home / 'server.db'}"
        key_file_raw = env.get("SOFTWARE_DNA_MASTER_KEY_FILE")
        return cls(
            home=home,
            database_url=normalize_database_url(url),
            master_key=env.get("SOFTWARE_DNA_MASTER_KEY") or None,
            master_key_file=Path(key_file_raw).expanduser() if key_file_raw else None,
            issuer=env.get("SOFTWARE_DNA_ISSUER") or "software-dna",
            rate_limit_attempts=_int(env, "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS", 10, minimum=1),
            rate_limit_address_attempts=_int(
                env, "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS", 30, minimum=1
            ),
            rate_limit_window=_int(env, "SOFTWARE_DNA_RATE_LIMIT_WINDOW", 300, minimum=1),
            db_pool_size=_int(env, "SOFTWARE_DNA_DB_POOL_SIZE", 5, minimum=1),
            db_max_overflow=_int(env, "SOFTWARE_DNA_DB_MAX_OVERFLOW", 10),
            db_busy_timeout=_int(env, "SOFTWARE_DNA_DB_BUSY_TIMEOUT", 30),
            **_smtp(env),
        )

    @property
    def key_file(self) -> Path:
        """Where the master key file is (whether or not it exists)."""
        return self.master_key_file or self.home / "master.key"

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite."""
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for subprocesses)."""
        env = {
            "SOFTWARE_DNA_SERVER_HOME": str(self.home),
            "DATABASE_URL": self.database_url,
            "SOFTWARE_DNA_ISSUER": self.issuer,
            "SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS": str(self.rate_limit_attempts),
            "SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS": str(self.rate_limit_address_attempts),
            "SOFTWARE_DNA_RATE_LIMIT_WINDOW": str(self.rate_limit_window),
            "SOFTWARE_DNA_DB_POOL_SIZE": str(self.db_pool_size),
            "SOFTWARE_DNA_DB_MAX_OVERFLOW": str(self.db_max_overflow),
            "SOFTWARE_DNA_DB_BUSY_TIMEOUT": str(self.db_busy_timeout),
        }
        if self.master_key:
            env["SOFTWARE_DNA_MASTER_KEY"] = self.master_key
        if self.master_key_file:
            env["SOFTWARE_DNA_MASTER_KEY_FILE"] = str(self.master_key_file)
        env.update(_smtp_env(self))
        return env


def normalize_database_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to psycopg 3's dialect name."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


_SMTP_TLS = ("starttls", "tls", "none")


class _SmtpFields(TypedDict):
    smtp_host: str | None
    smtp_port: int | None
    smtp_tls: str
    smtp_sender: str | None
    smtp_username: str | None
    smtp_password: str | None
    smtp_ca_file: str | None
    smtp_timeout: int
    password_reset_ttl: int


def _smtp(env: Mapping[str, str]) -> _SmtpFields:
    """The mail settings (``SOFTWARE_DNA_SMTP_*``, password reset TTL) as Settings fields."""
    host = (env.get("SOFTWARE_DNA_SMTP_HOST") or "").strip() or None
    tls = (env.get("SOFTWARE_DNA_SMTP_TLS") or "starttls").strip().lower()
    if tls not in _SMTP_TLS:
        raise ConfigError(f"SOFTWARE_DNA_SMTP_TLS must be one of {', '.join(_SMTP_TLS)}, "
                          f"got {tls!r}.")
    sender = (env.get("SOFTWARE_DNA_SMTP_SENDER") or "").strip() or None
    if host is not None and sender is None:
        raise ConfigError("SOFTWARE_DNA_SMTP_SENDER (the From address) is required with "
                          "SOFTWARE_DNA_SMTP_HOST.")
    port = _int(env, "SOFTWARE_DNA_SMTP_PORT", 0, minimum=0) or None
    if port is not None and port > 65535:
        raise ConfigError(f"SOFTWARE_DNA_SMTP_PORT must be at most 65535, got {port}.")
    return {
        "smtp_host": host,
        "smtp_port": port,
        "smtp_tls": tls,
        "smtp_sender": sender,
        "smtp_username": env.get("SOFTWARE_DNA_SMTP_USERNAME") or None,
        "smtp_password": env.get("SOFTWARE_DNA_SMTP_PASSWORD") or None,
        "smtp_ca_file": env.get("SOFTWARE_DNA_SMTP_CA_FILE") or None,
        "smtp_timeout": _int(env, "SOFTWARE_DNA_SMTP_TIMEOUT", 10, minimum=1),
        "password_reset_ttl": _int(env, "SOFTWARE_DNA_PASSWORD_RESET_TTL", 900, minimum=60),
    }


def _smtp_env(settings: Settings) -> dict[str, str]:
    """The environment variables of the mail settings that are set."""
    env = {
        "SOFTWARE_DNA_SMTP_TLS": settings.smtp_tls,
        "SOFTWARE_DNA_SMTP_TIMEOUT": str(settings.smtp_timeout),
        "SOFTWARE_DNA_PASSWORD_RESET_TTL": str(settings.password_reset_ttl),
    }
    for name, value in (
        ("SOFTWARE_DNA_SMTP_HOST", settings.smtp_host),
        ("SOFTWARE_DNA_SMTP_PORT", str(settings.smtp_port) if settings.smtp_port else None),
        ("SOFTWARE_DNA_SMTP_SENDER", settings.smtp_sender),
        ("SOFTWARE_DNA_SMTP_USERNAME", settings.smtp_username),
        ("SOFTWARE_DNA_SMTP_PASSWORD", settings.smtp_password),
        ("SOFTWARE_DNA_SMTP_CA_FILE", settings.smtp_ca_file),
    ):
        if value:
            env[name] = value
    return env
