"""Server settings (pydantic-settings), read from the environment.

Every setting has an environment variable (read by its exact, upper-case
name; an empty value counts as unset). ``Settings()`` reads ``os.environ``;
keyword arguments named like the attributes override it
(``Settings(home=..., database_url=...)``: what the CLI's ``--home`` and
``--database-url`` do, without writing to the environment);
:meth:`Settings.from_env` reads a given mapping instead. Secrets are
``SecretStr``. Nothing here touches the disk or the database.

=====================================  ============================================
variable                               meaning (default)
=====================================  ============================================
``SOFTWARE_DNA_SERVER_HOME``           data folder (platformdirs' user data dir
                                       ``software-dna-server``)
``DATABASE_URL``                       SQLAlchemy URL (``sqlite:///<home>/server.db``);
                                       PostgreSQL: ``postgresql+psycopg://...``
``SOFTWARE_DNA_MASTER_KEY``            the master key itself (base64url, 32 bytes)
``SOFTWARE_DNA_MASTER_KEY_FILE``       file holding it (``master.key`` in platformdirs'
                                       user config dir ``software-dna-keys``: outside
                                       the data folder; see :func:`default_key_file`)
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
``SOFTWARE_DNA_PUBLIC_URL``            the server's address as end users reach it
                                       (``https://licenses.example.com``), used in
                                       email confirmation links (none: no
                                       confirmation mail is sent)
``SOFTWARE_DNA_METRICS_TOKEN``         bearer token of the Prometheus metrics at
                                       ``/metrics`` (none: the path answers 404)
``SOFTWARE_DNA_LOG_FORMAT``            ``text`` (default) or ``json`` (one JSON object
                                       per line, access lines included)
=====================================  ============================================
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "ConfigError",
    "ascii_host",
    "Settings",
    "default_home",
    "default_key_file",
    "environ_without_settings",
    "normalize_database_url",
]

#: Body limit of the public (SDK) routes, in bytes.
PUBLIC_BODY_LIMIT = 64 * 1024
#: Body limit of the admin routes, in bytes.
ADMIN_BODY_LIMIT = 1024 * 1024


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def default_home() -> Path:
    """The default data folder: platformdirs' user data dir ``software-dna-server``."""
    import platformdirs  # noqa: PLC0415  # lazy: only when no data folder is configured

    return Path(platformdirs.user_data_dir("software-dna-server", appauthor=False))


def default_key_file() -> Path:
    """The default master key file: ``master.key`` in platformdirs' user config dir
    ``software-dna-keys``.

    Deliberately not under the data folder (nor under its platformdirs name,
    which is the same folder as the data dir on macOS and Windows), so that a
    copy of the data folder is not also a copy of the key that decrypts it.
    On Linux: ``$XDG_CONFIG_HOME/software-dna-keys/master.key``
    (``~/.config/...``).
    """
    import platformdirs  # noqa: PLC0415  # lazy: only when no key file is configured

    return Path(platformdirs.user_config_dir("software-dna-keys", appauthor=False)) / "master.key"


def ascii_host(host: str) -> str | None:
    """``host`` as it goes on the wire: an IP literal as is, a name in its IDNA (ASCII)
    form, lower-case; None when it is neither (percent-escapes, odd dots, bad labels)."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        name = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    labels = name.rstrip(".").split(".")
    if not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return None
    return name


_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def normalize_database_url(url: str) -> str:
    """Map ``postgres://`` / ``postgresql://`` to psycopg 3's dialect name."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


#: True while :meth:`Settings.from_env` builds settings from its mapping alone.
_GIVEN_ONLY: ContextVar[bool] = ContextVar("software_dna_settings_given_only", default=False)


def _env(name: str) -> Any:
    return Field(default=None, validation_alias=name)


class Settings(BaseSettings):
    """The server's configuration (immutable).

    Durations are in seconds.  ``database_url`` is a SQLAlchemy URL (default:
    SQLite ``server.db`` in ``home``); a ``postgresql://`` URL is rewritten to
    use psycopg 3 (``postgresql+psycopg://``).

    Raises:
        pydantic.ValidationError: from the constructor, for a malformed value
        (:meth:`from_env` and :meth:`load` raise :class:`ConfigError`).
    """

    model_config = SettingsConfigDict(
        frozen=True, populate_by_name=True, case_sensitive=True, env_ignore_empty=True,
        extra="ignore", hide_input_in_errors=True,
    )

    home: Path = Field(default_factory=default_home, validation_alias="SOFTWARE_DNA_SERVER_HOME")
    database_url: str = Field(
        default="", validate_default=True,
        validation_alias=AliasChoices("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL"))
    master_key: SecretStr | None = _env("SOFTWARE_DNA_MASTER_KEY")
    master_key_file: Path | None = _env("SOFTWARE_DNA_MASTER_KEY_FILE")
    issuer: str = Field(default="software-dna", validation_alias="SOFTWARE_DNA_ISSUER")
    rate_limit_attempts: int = Field(
        default=10, ge=1, validation_alias="SOFTWARE_DNA_RATE_LIMIT_ATTEMPTS")
    rate_limit_address_attempts: int = Field(
        default=30, ge=1, validation_alias="SOFTWARE_DNA_RATE_LIMIT_ADDRESS_ATTEMPTS")
    rate_limit_window: int = Field(
        default=300, ge=1, validation_alias="SOFTWARE_DNA_RATE_LIMIT_WINDOW")
    # The end user's erasure requests (each one writes and costs a WAL checkpoint).
    erasure_attempts: int = Field(
        default=3, ge=1, validation_alias="SOFTWARE_DNA_ERASURE_ATTEMPTS")
    erasure_address_attempts: int = Field(
        default=20, ge=1, validation_alias="SOFTWARE_DNA_ERASURE_ADDRESS_ATTEMPTS")
    erasure_window: int = Field(
        default=3600, ge=1, validation_alias="SOFTWARE_DNA_ERASURE_WINDOW")
    erasure_checkpoint_interval: float = Field(
        default=60.0, ge=0, validation_alias="SOFTWARE_DNA_ERASURE_CHECKPOINT_INTERVAL")
    rate_limit_ipv6_prefix: int = Field(  # an IPv6 client counts as its /N network
        default=64, ge=32, le=128, validation_alias="SOFTWARE_DNA_RATE_LIMIT_IPV6_PREFIX")
    db_pool_size: int = Field(default=5, ge=1, validation_alias="SOFTWARE_DNA_DB_POOL_SIZE")
    db_max_overflow: int = Field(default=10, ge=0, validation_alias="SOFTWARE_DNA_DB_MAX_OVERFLOW")
    db_busy_timeout: int = Field(default=30, ge=0, validation_alias="SOFTWARE_DNA_DB_BUSY_TIMEOUT")
    smtp_host: str | None = _env("SOFTWARE_DNA_SMTP_HOST")
    smtp_port: int | None = Field(default=None, ge=0, le=65535,
                                  validation_alias="SOFTWARE_DNA_SMTP_PORT")
    smtp_tls: Literal["starttls", "tls", "none"] = Field(
        default="starttls", validation_alias="SOFTWARE_DNA_SMTP_TLS")
    smtp_sender: str | None = _env("SOFTWARE_DNA_SMTP_SENDER")
    smtp_username: str | None = _env("SOFTWARE_DNA_SMTP_USERNAME")
    smtp_password: SecretStr | None = _env("SOFTWARE_DNA_SMTP_PASSWORD")
    smtp_ca_file: str | None = _env("SOFTWARE_DNA_SMTP_CA_FILE")
    smtp_timeout: int = Field(default=10, ge=1, validation_alias="SOFTWARE_DNA_SMTP_TIMEOUT")
    password_reset_ttl: int = Field(default=900, ge=60,
                                    validation_alias="SOFTWARE_DNA_PASSWORD_RESET_TTL")
    public_url: str | None = _env("SOFTWARE_DNA_PUBLIC_URL")
    #: Control panel sessions: signed out after this many seconds without a request,
    #: and after ``panel_session_max`` seconds whatever happens.
    panel_session_idle: int = Field(default=3600, ge=60,
                                    validation_alias="SOFTWARE_DNA_PANEL_SESSION_IDLE")
    panel_session_max: int = Field(default=12 * 3600, ge=300,
                                   validation_alias="SOFTWARE_DNA_PANEL_SESSION_MAX")
    #: Panel sign-in attempts per staff account and per client network per window.
    panel_sign_in_attempts: int = Field(default=10, ge=1,
                                        validation_alias="SOFTWARE_DNA_PANEL_SIGN_IN_ATTEMPTS")
    panel_sign_in_window: int = Field(default=900, ge=1,
                                      validation_alias="SOFTWARE_DNA_PANEL_SIGN_IN_WINDOW")
    #: End-user portal sessions: signed out after this many seconds without a
    #: request, and after ``portal_session_max`` seconds whatever happens.
    portal_session_idle: int = Field(default=1800, ge=60,
                                     validation_alias="SOFTWARE_DNA_PORTAL_SESSION_IDLE")
    portal_session_max: int = Field(default=4 * 3600, ge=300,
                                    validation_alias="SOFTWARE_DNA_PORTAL_SESSION_MAX")
    #: Seconds a mailed portal sign-in link works.
    portal_link_ttl: int = Field(default=900, ge=60,
                                 validation_alias="SOFTWARE_DNA_PORTAL_LINK_TTL")
    #: Failed portal sign-ins per license key and per client network per window
    #: (counters of their own: they never lock the app's activation).
    portal_sign_in_attempts: int = Field(default=10, ge=1,
                                         validation_alias="SOFTWARE_DNA_PORTAL_SIGN_IN_ATTEMPTS")
    portal_sign_in_window: int = Field(default=900, ge=1,
                                       validation_alias="SOFTWARE_DNA_PORTAL_SIGN_IN_WINDOW")

    #: The bearer token that reads the Prometheus metrics (``/metrics``); None: no
    #: metrics path at all.  Its own secret, never the admin API key.
    metrics_token: SecretStr | None = _env("SOFTWARE_DNA_METRICS_TOKEN")
    #: ``text`` or ``json`` (one JSON object per line: logconfig.JsonFormatter).
    log_format: Literal["text", "json"] = Field(default="text",
                                                validation_alias="SOFTWARE_DNA_LOG_FORMAT")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init arguments, then the environment (no dotenv or secrets directory)."""
        if _GIVEN_ONLY.get():
            return (init_settings,)
        return (init_settings, env_settings)

    @field_validator("home", "master_key_file", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            home = info.data.get("home")
            if home is None:  # home itself was malformed: its error is reported
                return value
            value = f"sqlite:///{home / 'server.db'}"
        return normalize_database_url(value)

    @field_validator("smtp_host", "smtp_sender", mode="after")
    @classmethod
    def _stripped(cls, value: str | None) -> str | None:
        return (value.strip() or None) if value is not None else None

    @field_validator("public_url", mode="after")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// address, e.g. "
                             "https://licenses.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must be a plain address, without ?query or #fragment")
        # An internationalised host in its ASCII form (IDNA): links in mails and
        # headers (List-Unsubscribe) must stay plain ASCII.
        host = ascii_host(parts.hostname)
        if host is None:
            raise ValueError("must name a valid host")
        netloc = f"[{host}]" if ":" in host else host
        if parts.port is not None:
            netloc = f"{netloc}:{parts.port}"
        return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))

    @field_validator("metrics_token", mode="after")
    @classmethod
    def _metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        token = value.get_secret_value().strip()
        if not token:
            return None
        if len(token) < 16 or not token.isascii() or not token.isprintable() or " " in token:
            raise ValueError("must be at least 16 printable ASCII characters without spaces "
                             "(e.g. the output of `openssl rand -hex 32`)")
        return SecretStr(token)

    @field_validator("smtp_tls", "log_format", mode="before")
    @classmethod
    def _tls(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("smtp_port", mode="after")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        return value or None  # 0: the default port of the TLS mode

    @model_validator(mode="after")
    def _sender_with_host(self) -> Settings:
        if self.smtp_host is not None and self.smtp_sender is None:
            raise ValueError("SOFTWARE_DNA_SMTP_SENDER (the From address) is required with "
                             "SOFTWARE_DNA_SMTP_HOST.")
        return self

    @classmethod
    def load(cls, **overrides: Any) -> Settings:
        """Settings from ``os.environ``, with ``overrides`` (attribute names; None: not given).

        Raises:
            ConfigError: a variable or override is malformed (the message names it).
        """
        given = {name: value for name, value in overrides.items() if value is not None}
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(_message(exc)) from None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Settings from the variables in ``env`` only (default: ``os.environ``).

        Raises:
            ConfigError: a variable is malformed (the message names it).
        """
        if env is None:
            return cls.load()
        names = _variables()
        given: dict[str, Any] = {name: value for name, value in env.items()
                                 if value != "" and name in names}
        token = _GIVEN_ONLY.set(True)
        try:
            return cls(**given)
        except ValidationError as exc:
            raise ConfigError(_message(exc)) from None
        finally:
            _GIVEN_ONLY.reset(token)

    @property
    def key_file(self) -> Path:
        """Where the master key file belongs (whether or not it exists): the configured
        ``master_key_file``, else :func:`default_key_file` (never inside ``home``).

        A key left at :attr:`legacy_key_file` by an older version is still used
        (:func:`software_dna.server.crypto.locate_master_key` decides).
        """
        return self.master_key_file or default_key_file()

    @property
    def legacy_key_file(self) -> Path:
        """Where older versions put the master key by default: ``<home>/master.key``."""
        return self.home / "master.key"

    @property
    def is_sqlite(self) -> bool:
        """True when the database is SQLite."""
        return self.database_url.startswith("sqlite")

    def with_changes(self, **changes: Any) -> Settings:
        """A copy with some attributes replaced (validated again, the environment unread)."""
        token = _GIVEN_ONLY.set(True)
        try:
            return type(self)(**{**dict(self), **changes})
        finally:
            _GIVEN_ONLY.reset(token)

    def to_env(self) -> dict[str, str]:
        """The environment variables that reproduce these settings (for a child process)."""
        env: dict[str, str] = {}
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            alias = field.validation_alias
            variable = alias.choices[0] if isinstance(alias, AliasChoices) else alias
            env[str(variable)] = str(value)
        return env


def _message(exc: ValidationError) -> str:
    """One sentence per malformed variable, naming it."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        text = str(error["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {text}" if where else text)
    return " ".join(parts) if parts else str(exc)


def _variables() -> set[str]:
    """The names of every environment variable :class:`Settings` reads."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        else:
            names.add(str(alias))
    return names


def environ_without_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default ``os.environ``) less every variable :class:`Settings` reads."""
    names = _variables()
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k not in names}
