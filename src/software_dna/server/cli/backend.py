"""Where a ``software-dna`` command runs: the server's database, or a server's admin API.

:class:`Backend` is the one interface every command calls: the vendor
operations with the signatures and JSON answers of
:class:`~software_dna.server.adminclient.AdminClient`, which *is* the remote
backend; :class:`~software_dna.server.cli.direct.DirectBackend` runs the same
operations through the service layer on the database. :func:`open_backend`
picks one and turns every refusal into :class:`~._common.Refused`.

Choosing: ``--server-url`` selects the admin API and ``--data-dir`` /
``--database-url`` the database (giving both is a usage error). Without
those options the environment decides: ``SOFTWARE_DNA_SERVER_URL`` selects
the admin API, unless ``DATABASE_URL`` (or ``SOFTWARE_DNA_DATABASE_URL``) is
set too, which is refused rather than silently picking one. ``--admin-key``
without an admin API to use it on is refused too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import requests
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from software_dna.server.adminclient import AdminClient, AdminError
from software_dna.server.cli._common import (
    ENV_ADMIN_KEY,
    ENV_SERVER_URL,
    CliError,
    JSONDict,
    Refused,
)

__all__ = ["Backend", "Connection", "RemoteSettings", "open_backend"]

#: The variables naming the database, in the order config.Settings reads them.
_DATABASE_VARIABLES = ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL")

#: Seconds to wait for the admin API (an erasure compacts the SQLite file).
REMOTE_TIMEOUT = 120.0


class Backend(Protocol):
    """The vendor operations; every answer is the admin API's JSON shape."""

    def create_product(self, product_id: str, **fields: Any) -> JSONDict: ...
    def list_products(self) -> list[JSONDict]: ...
    def get_product(self, product_id: str) -> JSONDict: ...
    def update_product(self, product_id: str, **fields: Any) -> JSONDict: ...

    def generate_key(self, product_id: str) -> JSONDict: ...
    def list_keys(self, product_id: str) -> list[JSONDict]: ...
    def rotate_key(self, product_id: str, kid: str | None = None) -> JSONDict: ...
    def retire_key(self, product_id: str, kid: str) -> JSONDict: ...
    def public_keys(self, product_id: str) -> list[str]: ...

    def issue_license(self, product_id: str, *, seats: int = 1, **terms: Any) -> JSONDict: ...
    def list_licenses(self, product_id: str | None = None, **params: Any) -> list[JSONDict]: ...
    def get_license(self, license_id: str) -> JSONDict: ...
    def lookup_license(self, license_key: str) -> JSONDict: ...
    def search_licenses(self, q: str, **params: Any) -> list[JSONDict]: ...
    def update_license(self, license_id: str, **fields: Any) -> JSONDict: ...
    def suspend_license(self, license_id: str) -> JSONDict: ...
    def resume_license(self, license_id: str) -> JSONDict: ...
    def revoke_license(self, license_id: str) -> JSONDict: ...
    def set_password(self, license_id: str, password: str | None) -> JSONDict: ...
    def extend_license(self, license_id: str, *, days: int | None = None,
                       until: Any = None, allow_past: bool = False) -> JSONDict: ...
    def make_perpetual(self, license_id: str) -> JSONDict: ...
    def restore_license(self, license_id: str) -> JSONDict: ...
    def cancel_subscription(self, license_id: str) -> JSONDict: ...

    def make_renewal_codes(self, days: int, *, product_id: str | None = None,
                           license_id: str | None = None, count: int = 1) -> list[JSONDict]: ...
    def list_renewal_codes(self, **params: Any) -> list[JSONDict]: ...
    def issue_test_code(self, product_id: str, *, days: int = 1, **fields: Any) -> JSONDict: ...
    def list_test_codes(self, product_id: str) -> list[JSONDict]: ...
    def reset_test_code(self, license_id: str) -> JSONDict: ...
    def list_trials(self, product_id: str) -> list[JSONDict]: ...
    def remove_trial(self, trial_id: str) -> JSONDict: ...

    def list_activations(self, license_id: str) -> list[JSONDict]: ...
    def remove_activation(self, activation_id: str) -> JSONDict: ...
    def leases(self, license_id: str) -> JSONDict: ...
    def lockout(self, license_id: str, *, address: str | None = None) -> JSONDict: ...
    def reset_lockout(self, *, license_id: str | None = None,
                      address: str | None = None) -> JSONDict: ...
    def offline_respond(self, request_text: str) -> JSONDict: ...
    def offline_deactivate(self, receipt_text: str) -> JSONDict: ...

    def find_end_users(self, email: str) -> list[JSONDict]: ...
    def export_end_user(self, end_user_id: str) -> JSONDict: ...
    def erase_end_user(self, end_user_id: str) -> JSONDict: ...
    def audit(self, **params: Any) -> list[JSONDict]: ...
    def webhook_create(self, url: str, events: list[str], **fields: Any) -> JSONDict: ...
    def webhook_list(self, *, product: str | None = None) -> list[JSONDict]: ...
    def webhook_update(self, endpoint_id: str, **changes: Any) -> JSONDict: ...
    def webhook_rotate_secret(self, endpoint_id: str) -> JSONDict: ...
    def webhook_remove(self, endpoint_id: str) -> JSONDict: ...
    def webhook_test(self, endpoint_id: str) -> JSONDict: ...
    def webhook_deliveries(self, **params: Any) -> list[JSONDict]: ...
    def webhook_resend(self, item_id: str) -> JSONDict: ...

    def list_mail_templates(self, product_id: str | None = None) -> JSONDict: ...
    def get_mail_template(self, name: str, product_id: str | None = None) -> JSONDict: ...
    def set_mail_template(self, name: str, *, product_id: str | None = None, subject: str,
                          text: str, html: str | None = None) -> JSONDict: ...
    def reset_mail_template(self, name: str, product_id: str | None = None) -> JSONDict: ...
    def preview_mail_template(self, name: str, product_id: str | None = None,
                              context: JSONDict | None = None) -> JSONDict: ...
    def mail_log(self, *, license_id: str | None = None, limit: int = 100) -> list[JSONDict]: ...

    def connect_store(self, provider: str, secret: str, *, mode: str = "live",
                      refund_action: str = "revoke") -> JSONDict: ...
    def list_stores(self) -> list[JSONDict]: ...
    def disconnect_store(self, connector_id: str) -> JSONDict: ...
    def map_price(self, connector_id: str, price_ref: str, product_id: str,
                  **terms: Any) -> JSONDict: ...
    def list_mappings(self, connector_id: str | None = None) -> list[JSONDict]: ...
    def unmap_price(self, mapping_id: int) -> JSONDict: ...
    def rekey_license(self, license_id: str, *, email: str | None = None) -> JSONDict: ...


class RemoteSettings(BaseSettings):
    """The variables that choose where a command runs (read from the environment)."""

    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True,
                                      extra="ignore")

    server_url: str | None = Field(default=None, validation_alias=ENV_SERVER_URL)
    admin_key: SecretStr | None = Field(default=None, validation_alias=ENV_ADMIN_KEY)
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices(*_DATABASE_VARIABLES))


@dataclass(frozen=True)
class Connection:
    """The connection options given on the command line (None: not given)."""

    data_dir: str | None = None
    database_url: str | None = None
    server_url: str | None = None
    admin_key: SecretStr | None = None


def _remote_url(conn: Connection, env: RemoteSettings) -> str | None:
    """The admin API to use, or None for the database (the rule in the module's doc)."""
    direct = bool(conn.data_dir or conn.database_url)
    if conn.server_url and direct:
        raise CliError("Give either --server-url or --data-dir / --database-url, not both.",
                       code=2)
    if conn.server_url or direct:
        url = conn.server_url
    elif env.server_url and env.database_url:
        variable = next(name for name in _DATABASE_VARIABLES if os.environ.get(name))
        raise CliError(f"Both {ENV_SERVER_URL} and {variable} are set: unset one of them "
                       "(or choose with --server-url or --database-url).", code=2)
    else:
        url = env.server_url
    if not url and conn.admin_key is not None:
        raise CliError("--admin-key is for a server's admin API: give --server-url URL (or "
                       f"{ENV_SERVER_URL}) with it, or leave it out to work on the "
                       "database.", code=2)
    return url


@contextmanager
def open_backend(conn: Connection) -> Iterator[Backend]:
    """The backend ``conn`` and the environment choose, open for one command.

    Raises:
        CliError: a usage error (exit 2) or a backend that cannot be opened.
        Refused: the service or the server refused an operation.
    """
    env = RemoteSettings()
    url = _remote_url(conn, env)
    if url:
        with _remote(url, conn.admin_key or env.admin_key) as remote:
            yield remote
    else:
        # Lazy: the service layer and SQLAlchemy only when the database is used.
        from software_dna.server.cli.direct import direct_backend

        with direct_backend(conn.data_dir, conn.database_url) as direct:
            yield direct


@contextmanager
def _remote(url: str, admin_key: SecretStr | None) -> Iterator[Backend]:
    if not re.match(r"^https?://[^\s/]+", url):
        raise CliError(f"--server-url must be an http:// or https:// URL, got {url!r}.", code=2)
    if admin_key is None:
        raise CliError(f"The admin API needs a key: --admin-key KEY or {ENV_ADMIN_KEY}.", code=2)
    base = url.rstrip("/")
    try:
        with AdminClient(base, admin_key.get_secret_value(), timeout=REMOTE_TIMEOUT) as client:
            yield client
    except AdminError as exc:
        raise Refused(exc.code, exc.message, exc.details) from None
    except requests.RequestException as exc:
        raise CliError(f"Cannot reach the server at {base}: {type(exc).__name__}.") from None

