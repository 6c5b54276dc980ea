"""The vendor's commands of the ``software-dna`` CLI.

``products``, ``keys``, ``licenses``, ``activations``, ``end-users`` and
``audit``: the same operations as the admin API (docs/protocol.md), run
either directly against the server's database (the default; the data folder
comes from ``--data-dir`` / ``SOFTWARE_DNA_SERVER_HOME`` and the database
from ``DATABASE_URL``, as for ``software-dna server run``) or through a
running server's admin API (``--server-url URL --admin-key KEY``, or the
environment variables ``SOFTWARE_DNA_SERVER_URL`` and
``SOFTWARE_DNA_ADMIN_KEY``).

Both backends answer with the admin API's JSON shapes, so ``--json`` prints
the same document whichever backend ran the command.  Human-readable output
is the default.

Errors (a refusal by the service or the server, a server that cannot be
reached, a bad setting) are one line on stderr and exit code 1; usage
errors exit with 2.  Secrets are never printed, except the license key when
it is issued (shown once: the server keeps only a keyed hash of it).

:func:`add_vendor_commands` adds the command groups to the ``software-dna``
parser; every leaf command sets ``func`` (``(argparse.Namespace) -> int``).
:func:`main` runs the vendor commands alone (``python -m
software_dna.server.cli_vendor``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from software_dna.server.config import Settings
    from software_dna.server.service import Context

__all__ = [
    "ENV_ADMIN_KEY",
    "ENV_DEBUG",
    "ENV_SERVER_URL",
    "PROTECTIONS",
    "Backend",
    "CliError",
    "DirectBackend",
    "RemoteBackend",
    "add_vendor_commands",
    "main",
    "open_backend",
]

#: Environment variable naming the server of the remote backend.
ENV_SERVER_URL = "SOFTWARE_DNA_SERVER_URL"
#: Environment variable holding the admin API key of the remote backend.
ENV_ADMIN_KEY = "SOFTWARE_DNA_ADMIN_KEY"
#: Set to show the traceback of an unexpected error.
ENV_DEBUG = "SOFTWARE_DNA_DEBUG"
#: The protection levels (the service's ``PROTECTIONS``; the service validates).
PROTECTIONS = ("offline", "opportunistic", "mandatory")

PROG = "software-dna"

JSONDict = dict[str, Any]


class CliError(Exception):
    """A failure reported as one line on stderr with exit ``code`` (1, or 2 for usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RemoteError(CliError):
    """An error answer of the admin API (``{"error": {"code", "message"}}``)."""

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code


# =========================================================================== backends


class Backend(Protocol):
    """The vendor operations, answered with the admin API's JSON shapes."""

    def create_product(self, fields: JSONDict) -> JSONDict:
        """Create a product (``ProductIn`` fields); returns the product."""
        ...

    def list_products(self) -> list[JSONDict]:
        """Every product."""
        ...

    def get_product(self, product_id: str) -> JSONDict:
        """One product."""
        ...

    def update_product(self, product_id: str, fields: JSONDict) -> JSONDict:
        """Change a product (``ProductPatch`` fields); returns it."""
        ...

    def generate_key(self, product_id: str) -> JSONDict:
        """Generate a signing key; returns it (public half only)."""
        ...

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """The product's signing keys."""
        ...

    def rotate_key(self, product_id: str, kid: str | None) -> JSONDict:
        """Make a new (or the trusted ``kid``) key active; returns the new active key."""
        ...

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """Stop trusting a key; returns it."""
        ...

    def public_keys(self, product_id: str) -> list[str]:
        """The ``k4.public`` strings to trust in the app, active first."""
        ...

    def issue_license(self, fields: JSONDict) -> JSONDict:
        """Issue a license (``LicenseIn`` fields); the answer holds ``license_key``."""
        ...

    def list_licenses(self, product_id: str | None, limit: int) -> list[JSONDict]:
        """Licenses, newest first."""
        ...

    def get_license(self, license_id: str) -> JSONDict:
        """One license (key hint only)."""
        ...

    def set_license_status(self, license_id: str, action: str) -> JSONDict:
        """``suspend`` / ``resume`` / ``revoke``; returns the license."""
        ...

    def update_license(self, license_id: str, fields: JSONDict) -> JSONDict:
        """Set ``seats`` / ``expires_at`` (None: perpetual) / ``features``; returns it."""
        ...

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """Set (or with None remove) the activation password; returns the license."""
        ...

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """The license's activations, removed ones included."""
        ...

    def remove_activation(self, activation_id: str) -> JSONDict:
        """Remove an activation (its seat is freed); returns it."""
        ...

    def find_end_users(self, email: str) -> list[JSONDict]:
        """End users with this email (ids and dates only)."""
        ...

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """Everything held about one end user."""
        ...

    def erase_end_user(self, end_user_id: str) -> None:
        """Erase one end user's personal data."""
        ...

    def audit(self, limit: int, product_id: str | None, license_id: str | None) -> list[JSONDict]:
        """Audit entries, newest first."""
        ...


class DirectBackend:
    """The vendor operations run on the database through the service layer.

    One session per command; the master key is loaded only by the operations
    that need it (keys, licenses, end users).
    """

    def __init__(self, settings: Settings) -> None:
        from software_dna.server.db import (
            SchemaError,
            check_schema,
            make_engine,
            make_session_factory,
        )

        self.settings = settings
        _check_database_exists(settings)
        self._engine = make_engine(settings, pooled=False)
        try:
            check_schema(self._engine, settings)
        except SchemaError as exc:
            self._engine.dispose()
            raise CliError(str(exc)) from None
        except Exception:
            self._engine.dispose()
            raise
        self._session: Session = make_session_factory(self._engine)()
        self._ctx: Context | None = None

    @property
    def ctx(self) -> Context:
        """The service context (loads the master key on first use)."""
        if self._ctx is None:
            from software_dna.server.service import Context

            self._ctx = Context.from_settings(self.settings)
        return self._ctx

    @property
    def session(self) -> Session:
        """The command's database session (for command groups in other modules)."""
        return self._session

    def close(self) -> None:
        """Close the session and the engine."""
        try:
            self._session.close()
        finally:
            self._engine.dispose()

    def rollback(self) -> None:
        """Roll back after a refusal."""
        self._session.rollback()

    # ------------------------------------------------------------------ helpers

    def _product(self, row: Any) -> JSONDict:
        from software_dna.server.schemas import ProductOut

        return ProductOut.of(row).model_dump(mode="json")

    def _key(self, row: Any) -> JSONDict:
        from software_dna.server.schemas import KeyOut

        return KeyOut.of(row).model_dump(mode="json")

    def _license(self, row: Any) -> JSONDict:
        from software_dna.server import service
        from software_dna.server.schemas import LicenseOut

        used = service.seats_in_use(self._session, row.id)
        return LicenseOut.of(row, used).model_dump(mode="json")

    # ------------------------------------------------------------------ products

    def create_product(self, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        args = dict(fields)
        product_id = args.pop("id")
        return self._product(service.create_product(self._session, product_id=product_id,
                                                    actor="cli", **args))

    def list_products(self) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service

        return [self._product(p) for p in service.list_products(self._session)]

    def get_product(self, product_id: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        return self._product(service.get_product(self._session, product_id))

    def update_product(self, product_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        return self._product(service.update_product(self._session, product_id, actor="cli",
                                                    **fields))

    # ------------------------------------------------------------------ keys

    def generate_key(self, product_id: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        service.get_product(self._session, product_id)  # 404 before loading the master key
        return self._key(service.generate_key(self._session, self.ctx, product_id, actor="cli"))

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service

        return [self._key(k) for k in service.list_keys(self._session, product_id)]

    def rotate_key(self, product_id: str, kid: str | None) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        service.get_product(self._session, product_id)
        return self._key(service.rotate_key(self._session, self.ctx, product_id, kid=kid,
                                            actor="cli"))

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        service.get_product(self._session, product_id)
        return self._key(service.retire_key(self._session, self.ctx, product_id, kid,
                                            actor="cli"))

    def public_keys(self, product_id: str) -> list[str]:
        """See :class:`Backend`."""
        from software_dna.server import service

        return service.public_keys(self._session, product_id)

    # ------------------------------------------------------------------ licenses

    def issue_license(self, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.license import parse_rfc3339
        from software_dna.server import service

        args = dict(fields)
        product_id = args.pop("product")
        expires = args.pop("expires_at", None)
        if "expires_after_days" in args:  # the API's name of the service's duration_days
            args["duration_days"] = args.pop("expires_after_days")
        service.get_product(self._session, product_id)
        lic, key = service.issue_license(
            self._session, self.ctx, product_id=product_id,
            expires_at=parse_rfc3339(expires) if expires is not None else None,
            actor="cli", **args,
        )
        answer = self._license(lic)
        answer["license_key"] = key
        return answer

    def list_licenses(self, product_id: str | None, limit: int) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service

        if product_id is not None:
            service.get_product(self._session, product_id)
        return [self._license(lic) for lic in
                service.list_licenses(self._session, product_id=product_id, limit=limit)]

    def get_license(self, license_id: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        return self._license(service.get_license(self._session, license_id))

    def set_license_status(self, license_id: str, action: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        change = {
            "suspend": service.suspend_license,
            "resume": service.resume_license,
            "revoke": service.revoke_license,
        }[action]
        return self._license(change(self._session, license_id, actor="cli"))

    def update_license(self, license_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.license import parse_rfc3339
        from software_dna.server import service

        args = dict(fields)
        if "expires_at" in args:
            raw = args["expires_at"]
            args["expires_at"] = parse_rfc3339(raw) if raw is not None else None
        return self._license(service.update_license(self._session, license_id, actor="cli",
                                                    **args))

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service

        return self._license(service.set_license_password(self._session, license_id, password,
                                                          actor="cli"))

    # ------------------------------------------------------------------ activations

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service
        from software_dna.server.schemas import ActivationOut

        return [ActivationOut.of(a).model_dump(mode="json")
                for a in service.list_activations(self._session, license_id)]

    def remove_activation(self, activation_id: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service
        from software_dna.server.schemas import ActivationOut

        activation = service.remove_activation(self._session, activation_id, actor="cli")
        return ActivationOut.of(activation).model_dump(mode="json")

    # ------------------------------------------------------------------ end users

    def find_end_users(self, email: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service
        from software_dna.server.schemas import EndUserSummary

        return [
            EndUserSummary(id=u.id, created_at=u.created_at, consent_at=u.consent_at,
                           erased_at=u.erased_at).model_dump(mode="json")
            for u in service.find_end_users(self._session, self.ctx, email)
        ]

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """See :class:`Backend`."""
        from software_dna.server import service
        from software_dna.server.schemas import EndUserExport

        service.get_end_user(self._session, end_user_id)
        data = service.export_end_user(self._session, self.ctx, end_user_id)
        return EndUserExport.model_validate(data).model_dump(mode="json")

    def erase_end_user(self, end_user_id: str) -> None:
        """See :class:`Backend`."""
        from software_dna.server import service

        service.get_end_user(self._session, end_user_id)
        service.erase_end_user(self._session, self.ctx, end_user_id, actor="cli")

    # ------------------------------------------------------------------ audit

    def audit(self, limit: int, product_id: str | None, license_id: str | None) -> list[JSONDict]:
        """See :class:`Backend`."""
        from software_dna.server import service
        from software_dna.server.schemas import AuditOut

        return [AuditOut.of(e).model_dump(mode="json")
                for e in service.list_audit(self._session, limit=limit, product_id=product_id,
                                            license_id=license_id)]


def _check_database_exists(settings: Settings) -> None:
    """SQLite: refuse (rather than create) a database file that is not there."""
    from pathlib import Path

    from sqlalchemy import make_url

    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return
    path = Path(url.database).expanduser()
    if not path.exists():
        raise CliError(f"No server database at {path}: run `{PROG} server init` first, or "
                       "point to it with --data-dir, DATABASE_URL or --server-url.")


def _seg(value: str) -> str:
    """One URL path segment, every reserved character escaped."""
    return quote(value, safe="")


class RemoteBackend:
    """The vendor operations through a running server's admin API (``/v1/admin``).

    A thin layer over :class:`software_dna.server.local.AdminClient` (the one
    HTTP client of the admin API): path segments are escaped, an error answer
    (``{"error": {"code", "message"}}``) becomes a :class:`RemoteError` with
    the server's message, and a server that cannot be reached a
    :class:`CliError`.
    """

    #: Seconds to wait for an answer (an erasure compacts the SQLite file).
    TIMEOUT = 120.0

    def __init__(self, server_url: str, admin_key: str) -> None:
        from software_dna.server.local import AdminClient

        if not re.match(r"^https?://[^\s/]+", server_url):
            raise CliError(f"--server-url must be an http:// or https:// URL, got {server_url!r}.",
                           code=2)
        self.base = server_url.rstrip("/")
        self._client = AdminClient(self.base, admin_key, timeout=self.TIMEOUT)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def rollback(self) -> None:
        """Nothing to roll back: the server did it."""

    def request(self, method: str, path: str, *, body: JSONDict | None = None,
                params: Mapping[str, str | int] | None = None) -> Any:
        """Call ``/v1/admin<path>``; returns the decoded JSON answer (None when empty)."""
        import requests

        from software_dna.server.local import AdminError

        try:
            return self._client.request(method, path, json=body, params=params)
        except AdminError as exc:
            raise RemoteError(exc.status, exc.code, exc.message) from None
        except requests.RequestException as exc:
            raise CliError(f"Cannot reach the server at {self.base}: "
                           f"{type(exc).__name__}.") from None

    def _obj(self, method: str, path: str, *, body: JSONDict | None = None,
             params: Mapping[str, str | int] | None = None) -> JSONDict:
        data = self.request(method, path, body=body, params=params)
        if not isinstance(data, dict):
            raise CliError("The server's answer is not a JSON object.")
        return data

    def _list(self, path: str, field: str,
              params: Mapping[str, str | int] | None = None) -> list[Any]:
        items = self._obj("GET", path, params=params).get(field)
        if not isinstance(items, list):
            raise CliError(f"The server's answer has no {field!r} list.")
        return items

    # ------------------------------------------------------------------ products

    def create_product(self, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", "/products", body=fields)

    def list_products(self) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list("/products", "products")

    def get_product(self, product_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("GET", f"/products/{_seg(product_id)}")

    def update_product(self, product_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PATCH", f"/products/{_seg(product_id)}", body=fields)

    # ------------------------------------------------------------------ keys

    def generate_key(self, product_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", f"/products/{_seg(product_id)}/keys", body={})

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list(f"/products/{_seg(product_id)}/keys", "keys")

    def rotate_key(self, product_id: str, kid: str | None) -> JSONDict:
        """See :class:`Backend`."""
        body: JSONDict = {} if kid is None else {"kid": kid}
        return self._obj("POST", f"/products/{_seg(product_id)}/keys/rotate", body=body)

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", f"/products/{_seg(product_id)}/keys/{_seg(kid)}/retire",
                         body={})

    def public_keys(self, product_id: str) -> list[str]:
        """See :class:`Backend`."""
        keys = self._list(f"/products/{_seg(product_id)}/public-keys", "public_keys")
        return [str(k) for k in keys]

    # ------------------------------------------------------------------ licenses

    def issue_license(self, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", "/licenses", body=fields)

    def list_licenses(self, product_id: str | None, limit: int) -> list[JSONDict]:
        """See :class:`Backend`."""
        params: dict[str, str | int] = {"limit": limit}
        if product_id is not None:
            self.get_product(product_id)  # a clear "no such product"
            params["product"] = product_id
        return self._list("/licenses", "licenses", params=params)

    def get_license(self, license_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("GET", f"/licenses/{_seg(license_id)}")

    def set_license_status(self, license_id: str, action: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", f"/licenses/{_seg(license_id)}/{action}", body={})

    def update_license(self, license_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PATCH", f"/licenses/{_seg(license_id)}", body=fields)

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PUT", f"/licenses/{_seg(license_id)}/password",
                         body={"password": password})

    # ------------------------------------------------------------------ activations

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list(f"/licenses/{_seg(license_id)}/activations", "activations")

    def remove_activation(self, activation_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("DELETE", f"/activations/{_seg(activation_id)}")

    # ------------------------------------------------------------------ end users

    def find_end_users(self, email: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list("/end-users", "end_users", params={"email": email})

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("GET", f"/end-users/{_seg(end_user_id)}")

    def erase_end_user(self, end_user_id: str) -> None:
        """See :class:`Backend`."""
        self.request("POST", f"/end-users/{_seg(end_user_id)}/erase", body={})

    # ------------------------------------------------------------------ audit

    def audit(self, limit: int, product_id: str | None, license_id: str | None) -> list[JSONDict]:
        """See :class:`Backend`."""
        params: dict[str, str | int] = {"limit": limit}
        if product_id is not None:
            params["product"] = product_id
        if license_id is not None:
            params["license_id"] = license_id
        return self._list("/audit", "entries", params=params)


class _Closable(Backend, Protocol):
    def close(self) -> None: ...

    def rollback(self) -> None: ...


def _settings(data_dir: str | None, database_url: str | None) -> Settings:
    from software_dna.server.config import ConfigError, Settings

    env = dict(os.environ)
    if data_dir is not None:
        env["SOFTWARE_DNA_SERVER_HOME"] = data_dir
    if database_url is not None:
        env["DATABASE_URL"] = database_url
    try:
        return Settings.from_env(env)
    except ConfigError as exc:
        raise CliError(str(exc)) from None


@contextmanager
def open_backend(args: argparse.Namespace) -> Iterator[Backend]:
    """The backend chosen by the connection options of ``args`` (and the environment).

    ``--server-url`` (or ``SOFTWARE_DNA_SERVER_URL`` when neither
    ``--data-dir`` nor ``--database-url`` is given) selects the admin API;
    otherwise the database is used directly.
    """
    data_dir: str | None = getattr(args, "data_dir", None)
    database_url: str | None = getattr(args, "database_url", None)
    server_url: str | None = getattr(args, "server_url", None)
    admin_key: str | None = getattr(args, "admin_key", None)
    direct = bool(data_dir or database_url)
    if server_url and direct:
        raise CliError("Give either --server-url or --data-dir / --database-url, not both.",
                       code=2)
    if not server_url and not direct:
        server_url = os.environ.get(ENV_SERVER_URL) or None
    backend: _Closable
    if server_url:
        admin_key = admin_key or os.environ.get(ENV_ADMIN_KEY) or None
        if not admin_key:
            raise CliError(f"The admin API needs a key: --admin-key KEY or {ENV_ADMIN_KEY}.",
                           code=2)
        backend = RemoteBackend(server_url, admin_key)
    else:
        backend = DirectBackend(_settings(data_dir, database_url))
    try:
        yield backend
    except BaseException:
        backend.rollback()
        raise
    finally:
        backend.close()


# =========================================================================== input parsing


_DURATION_RE = re.compile(r"^\s*(\d{1,10})\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(text: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``24h``, ``7d`` or ``2w`` (argparse type)."""
    found = _DURATION_RE.match(text)
    if found is None:
        raise argparse.ArgumentTypeError(
            f"not a duration: {text!r} (seconds, or a number with s, m, h, d or w)")
    return int(found[1]) * _UNITS[found[2]]


def feature_list(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``; an empty string is the empty list (argparse type)."""
    return [part.strip() for part in text.split(",") if part.strip()]


def rfc3339(text: str) -> str:
    """An RFC 3339 time with an offset, normalised to ``...Z`` (argparse type)."""
    from software_dna.license import format_rfc3339, parse_rfc3339

    try:
        return format_rfc3339(parse_rfc3339(text))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an RFC 3339 time with an offset: {text!r} (e.g. 2027-01-31T23:59:59Z)"
        ) from None


def expiry(text: str) -> str | None:
    """Like :func:`rfc3339`, or ``never`` (None: perpetual) (argparse type)."""
    if text.strip().lower() in ("never", "none"):
        return None
    return rfc3339(text)


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _read_secret(stream: TextIO, what: str) -> str:
    """The first line of ``stream`` without its line ending; refuses an empty one."""
    line = stream.readline()
    value = line.rstrip("\r\n")
    if not value:
        raise CliError(f"No {what} on standard input.", code=2)
    return value


# =========================================================================== output


def _out(text: str = "") -> None:
    print(text, file=sys.stdout)


def _json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def _dur(seconds: Any) -> str:
    """``604800`` -> ``604800 s (7d)``."""
    if not isinstance(seconds, int):
        return str(seconds)
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds} s ({seconds // size}{unit})"
    return f"{seconds} s"


def _csv(items: Any) -> str:
    if not items:
        return "-"
    return ",".join(str(i) for i in items)


def _val(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return _csv(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "-"
    return str(value)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[_val(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [list(headers), *cells]
    for row in lines:
        _out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _fields(pairs: Sequence[tuple[str, Any]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        _out(f"{key + ':':<{width + 1}} {value if isinstance(value, str) else _val(value)}")


def _seat_lines(name: str, obj: JSONDict) -> list[tuple[str, Any]]:
    """Seat lines of ``products show`` / ``licenses show`` (cli_seats.py)."""
    from software_dna.server import cli_seats

    lines: list[tuple[str, Any]] = getattr(cli_seats, name)(obj)
    return lines


def _show_product(p: JSONDict) -> None:
    _fields([
        ("id", p.get("id")),
        ("name", p.get("name")),
        ("protection", p.get("protection")),
        ("refresh interval", _dur(p.get("refresh_interval"))),
        ("offline grace period", _dur(p.get("offline_grace_period"))),
        ("token lifetime", _dur(p.get("token_lifetime"))),
        ("fingerprint tolerance", p.get("fingerprint_tolerance")),
        ("features", p.get("features")),
        ("limited features", p.get("limited_features")),
        ("password required", p.get("password_required")),
        ("trial", f"{p['trial_days']} days" if p.get("trial_days") else "none"),
        ("test code limit", p.get("test_code_limit")),
        *_seat_lines("product_seat_lines", p),
        ("created", p.get("created_at")),
        ("updated", p.get("updated_at")),
    ])


def _seats(lic: JSONDict) -> str:
    return f"{lic.get('seats_in_use', '?')}/{lic.get('seats', '?')}"


def _show_license(lic: JSONDict) -> None:
    guard = "set" if lic.get("password_set") else "none"
    if lic.get("password_reset_required"):
        guard = "reset required (set one with `licenses password`)"
    _fields([
        ("id", lic.get("id")),
        ("product", lic.get("product")),
        ("key", lic.get("key_hint")),
        ("status", lic.get("status")),
        ("seats in use", _seats(lic)),
        ("kind", str(lic.get("kind", "full"))
         + (", subscription" if lic.get("subscription") else "")
         + (f" (cancelled {lic.get('cancelled_at')})" if lic.get("cancelled_at") else "")),
        ("expires", lic.get("expires_at") or (
            f"{lic['expires_after_days']} days after the first activation"
            if lic.get("expires_after_days") else "never")),
        ("features", lic.get("features")),
        *_seat_lines("license_seat_lines", lic),
        ("password", guard),
        ("erased", lic.get("erased")),
        ("created", lic.get("created_at")),
        ("updated", lic.get("updated_at")),
    ])


def _activation_state(a: JSONDict) -> str:
    if a.get("deactivated_at") is None:
        return "active (air-gapped)" if a.get("offline") else "active"
    by = a.get("deactivated_by")
    return "removed" if by == "vendor" else "deactivated"


# =========================================================================== commands

Handler = Callable[[Backend, argparse.Namespace], int]


def _run(handler: Handler) -> Callable[[argparse.Namespace], int]:
    """Wrap ``handler``: open the backend, turn every refusal into one line + exit code."""

    def run(args: argparse.Namespace) -> int:
        return execute(handler, args)

    run.__doc__ = handler.__doc__
    return run


#: "No such <what>." -> the argument that named it.
_NOT_FOUND_ARGS = {
    "product": "product",
    "license": "license",
    "activation": "activation",
    "end user": "end_user",
    "signing key": "kid",
}


def _refusal(message: str, code: str, args: argparse.Namespace) -> str:
    """The one-line message of a refusal; a ``not_found`` names what was not found."""
    found = re.fullmatch(r"No such ([a-z ]+)\.", message)
    if code == "not_found" and found is not None:
        what = found[1]
        attr = _NOT_FOUND_ARGS.get(what)
        value = getattr(args, attr, None) if attr else None
        if isinstance(value, str):
            return f"No such {what}: {value!r}."
    return f"{message} ({code})" if code else message


def _error(message: str) -> None:
    print(f"{PROG}: error: {message}", file=sys.stderr)


def _loaded(module: str, name: str) -> type[BaseException] | None:
    """The exception class ``module.name`` if that module was imported, else None.

    An exception of a module that was never imported cannot have been raised,
    so the remote backend never pays for importing SQLAlchemy or the service.
    """
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) and issubclass(found, BaseException) else None


def _describe(exc: BaseException, args: argparse.Namespace) -> str:
    """The one-line message for an exception raised while running a command."""
    service_error = _loaded("software_dna.server.service._common", "ServiceError")
    if service_error is not None and isinstance(exc, service_error):
        return _refusal(str(getattr(exc, "message", exc)), str(getattr(exc, "code", "")), args)
    sqlalchemy_error = _loaded("sqlalchemy.exc", "SQLAlchemyError")
    if sqlalchemy_error is not None and isinstance(exc, sqlalchemy_error):
        first = (str(exc).splitlines() or [""])[0]
        return f"database error: {type(exc).__name__}: {first}"
    config_error = _loaded("software_dna.server.config", "ConfigError")
    if (config_error is not None and isinstance(exc, config_error)) or isinstance(
            exc, ValueError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc}"
    return f"unexpected {type(exc).__name__}: {exc} (set {ENV_DEBUG}=1 for the traceback)"


def execute(handler: Handler, args: argparse.Namespace) -> int:
    """Run ``handler`` with a backend; returns the exit code.

    Every failure becomes one line on stderr (no traceback, unless the
    environment variable ``SOFTWARE_DNA_DEBUG`` is set): exit 1, or 2 for a
    usage error found after parsing.
    """
    try:
        with open_backend(args) as backend:
            return handler(backend, args)
    except RemoteError as exc:
        _error(_refusal(exc.message, exc.error_code, args))
        return 1
    except CliError as exc:
        _error(exc.message)
        return exc.code
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except Exception as exc:
        if os.environ.get(ENV_DEBUG):
            raise
        _error(_describe(exc, args))
        return 1


# ----------------------------------------------------------------------- products


def _product_fields(args: argparse.Namespace) -> JSONDict:
    fields: JSONDict = {}
    for name in ("name", "protection", "refresh_interval", "offline_grace_period",
                 "fingerprint_tolerance", "features", "limited_features", "password_required",
                 "trial_days", "test_code_limit"):
        value = getattr(args, name, None)
        if value is not None:
            fields[name] = value
    from software_dna.server.cli_seats import seat_policy_fields

    fields.update(seat_policy_fields(args))  # lease time, lock-out limits
    return fields


def cmd_products_create(backend: Backend, args: argparse.Namespace) -> int:
    """``products create``."""
    product = backend.create_product({"id": args.product, **_product_fields(args)})
    if args.json:
        _json(product)
    else:
        _out(f"Created product {product.get('id')}.")
        _show_product(product)
        _out(f"Next: `{PROG} keys generate {product.get('id')}`.")
    return 0


def cmd_products_list(backend: Backend, args: argparse.Namespace) -> int:
    """``products list``."""
    products = backend.list_products()
    if args.json:
        _json({"products": products})
    elif not products:
        _out(f"No products yet: `{PROG} products create ID --name NAME`.")
    else:
        _table(
            ["ID", "NAME", "PROTECTION", "REFRESH", "GRACE", "TOLERANCE", "FEATURES", "PASSWORD"],
            [[p.get("id"), p.get("name"), p.get("protection"), p.get("refresh_interval"),
              p.get("offline_grace_period"), p.get("fingerprint_tolerance"), p.get("features"),
              "required" if p.get("password_required") else "optional"] for p in products],
        )
    return 0


def cmd_products_show(backend: Backend, args: argparse.Namespace) -> int:
    """``products show``."""
    product = backend.get_product(args.product)
    if args.json:
        _json(product)
    else:
        _show_product(product)
    return 0


def cmd_products_configure(backend: Backend, args: argparse.Namespace) -> int:
    """``products configure``."""
    fields = _product_fields(args)
    if not fields:
        raise CliError("Nothing to change: give at least one option (see --help).", code=2)
    product = backend.update_product(args.product, fields)
    if args.json:
        _json(product)
    else:
        _out(f"Updated product {product.get('id')} ({', '.join(sorted(fields))}); "
             "tokens issued from now on use the new settings.")
        _show_product(product)
    return 0


# ----------------------------------------------------------------------- keys


def cmd_keys_generate(backend: Backend, args: argparse.Namespace) -> int:
    """``keys generate``."""
    key = backend.generate_key(args.product)
    if args.json:
        _json(key)
        return 0
    _out(f"Generated signing key {key.get('kid')} ({key.get('status')}) "
         f"for {args.product}.")
    if key.get("status") == "active":
        _out(f"It signs every token. Paste the output of `{PROG} keys export {args.product}` "
             "into the app.")
    else:
        _out(f"It is trusted but does not sign yet: ship it in the app "
             f"(`{PROG} keys export {args.product}`), then "
             f"`{PROG} keys rotate {args.product} --kid {key.get('kid')}`.")
    return 0


def cmd_keys_list(backend: Backend, args: argparse.Namespace) -> int:
    """``keys list``."""
    keys = backend.list_keys(args.product)
    if args.json:
        _json({"keys": keys})
    elif not keys:
        _out(f"No signing keys for {args.product}: `{PROG} keys generate {args.product}`.")
    else:
        _table(["KID", "STATUS", "CREATED", "RETIRED"],
               [[k.get("kid"), k.get("status"), k.get("created_at"), k.get("retired_at")]
                for k in keys])
    return 0


def cmd_keys_rotate(backend: Backend, args: argparse.Namespace) -> int:
    """``keys rotate``."""
    key = backend.rotate_key(args.product, args.kid)
    if args.json:
        _json(key)
        return 0
    _out(f"Key {key.get('kid')} now signs for {args.product}; the previous active key stays "
         "trusted until you retire it.")
    _out(f"Ship the new key set in the app (`{PROG} keys export {args.product}`) before "
         "retiring the old key.")
    return 0


def cmd_keys_retire(backend: Backend, args: argparse.Namespace) -> int:
    """``keys retire``."""
    key = backend.retire_key(args.product, args.kid)
    if args.json:
        _json(key)
    else:
        _out(f"Retired key {key.get('kid', args.kid)}: it is no longer exported, and tokens it "
             "signed stop verifying in app builds without it.")
    return 0


def cmd_keys_export(backend: Backend, args: argparse.Namespace) -> int:
    """``keys export``."""
    keys = backend.public_keys(args.product)
    if args.json:
        _json({"product": args.product, "public_keys": keys})
    elif not keys:
        raise CliError(f"{args.product} has no signing key yet: "
                       f"`{PROG} keys generate {args.product}`.")
    else:
        for key in keys:
            _out(key)
    return 0


# ----------------------------------------------------------------------- licenses


def _password_arg(args: argparse.Namespace, *, flag: str, stdin_flag: str) -> str | None:
    password: str | None = getattr(args, flag, None)
    if getattr(args, stdin_flag, False):
        password = _read_secret(sys.stdin, "password")
    return password


def cmd_licenses_issue(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses issue``."""
    fields: JSONDict = {"product": args.product, "seats": args.seats}
    if args.expires is not None:
        fields["expires_at"] = args.expires
    if args.features is not None:
        fields["features"] = args.features
    password = _password_arg(args, flag="password", stdin_flag="password_stdin")
    if password is not None:
        fields["password"] = password
    if args.prefix is not None:
        fields["key_prefix"] = args.prefix
    if args.kind != "full":
        fields["kind"] = args.kind
    if args.expires_after_days is not None:
        fields["expires_after_days"] = args.expires_after_days
    if args.subscription:
        fields["subscription"] = True
    from software_dna.server.cli_seats import seat_license_fields

    fields.update(seat_license_fields(args))  # --seat-mode, --rollover
    issued = backend.issue_license(fields)
    if args.json:
        _json(issued)
        return 0
    _out(f"Issued license {issued.get('id')} for {issued.get('product')}: "
         f"{issued.get('seats')} seat(s), expires {issued.get('expires_at') or 'never'}, "
         f"features {_csv(issued.get('features'))}, "
         f"password {'set' if issued.get('password_set') else 'none'}.")
    _out("License key (shown only now, the server cannot show it again):")
    _out(f"  {issued.get('license_key')}")
    return 0


def cmd_licenses_list(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses list``."""
    licenses = backend.list_licenses(args.product, args.limit)
    if args.json:
        _json({"licenses": licenses})
    elif not licenses:
        _out("No licenses.")
    else:
        _table(["ID", "PRODUCT", "KEY", "STATUS", "SEATS", "EXPIRES", "FEATURES"],
               [[lic.get("id"), lic.get("product"), lic.get("key_hint"),
                 str(lic.get("status")) + (" (erased)" if lic.get("erased") else ""),
                 _seats(lic), lic.get("expires_at") or "never", lic.get("features")]
                for lic in licenses])
    return 0


def cmd_licenses_show(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses show``."""
    lic = backend.get_license(args.license)
    if args.json:
        _json(lic)
    else:
        _show_license(lic)
    return 0


def cmd_licenses_status(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses suspend|resume|revoke``."""
    lic = backend.set_license_status(args.license, args.action)
    if args.json:
        _json(lic)
    else:
        _out(f"License {lic.get('id')} is now {lic.get('status')}.")
    return 0


def cmd_licenses_set(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses set``."""
    fields: JSONDict = {}
    if args.seats is not None:
        fields["seats"] = args.seats
    if args.expires is not _NOT_GIVEN:
        fields["expires_at"] = args.expires
    if args.features is not None:
        fields["features"] = args.features
    from software_dna.server.cli_seats import seat_license_fields

    fields.update(seat_license_fields(args))  # --seat-mode, --rollover / --no-rollover
    if not fields:
        raise CliError("Nothing to change: give --seats, --expires, --features, --seat-mode "
                       "or --rollover.", code=2)
    lic = backend.update_license(args.license, fields)
    if args.json:
        _json(lic)
    else:
        _out(f"Updated license {lic.get('id')} ({', '.join(sorted(fields))}).")
        _show_license(lic)
    return 0


def cmd_licenses_password(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses password``."""
    password: str | None
    if args.clear:
        password = None
    elif args.stdin:
        password = _read_secret(sys.stdin, "password")
    else:
        password = args.set
    lic = backend.set_password(args.license, password)
    if args.json:
        _json(lic)
    elif password is None:
        _out(f"Removed the activation password of license {lic.get('id', args.license)}.")
    else:
        _out(f"Set a new activation password for license {lic.get('id', args.license)}.")
    return 0


# ----------------------------------------------------------------------- activations


def cmd_activations_list(backend: Backend, args: argparse.Namespace) -> int:
    """``activations list``."""
    activations = backend.list_activations(args.license)
    if args.json:
        _json({"activations": activations})
    elif not activations:
        _out(f"License {args.license} has no activations.")
    else:
        _table(["ID", "STATE", "FINGERPRINT", "CREATED", "LAST SEEN", "END USER", "MODE"],
               [[a.get("id"), _activation_state(a), a.get("fingerprint_id"),
                 a.get("created_at"), a.get("last_seen_at"), a.get("end_user_id"),
                 "limited" if a.get("erased") else "full"] for a in activations])
    return 0


def cmd_activations_remove(backend: Backend, args: argparse.Namespace) -> int:
    """``activations remove``."""
    activation = backend.remove_activation(args.activation)
    if args.json:
        _json(activation)
    else:
        _out(f"Removed activation {args.activation}: its seat is free, and the machine is "
             "told at its next validation.")
    return 0


# ----------------------------------------------------------------------- end users


def cmd_end_users_find(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users find``."""
    users = backend.find_end_users(args.email)
    if args.json:
        _json({"end_users": users})
    elif not users:
        _out("No end user with that email address.")
    else:
        _table(["ID", "CREATED", "CONSENT", "ERASED"],
               [[u.get("id"), u.get("created_at"), u.get("consent_at"), u.get("erased_at")]
                for u in users])
    return 0


def cmd_end_users_export(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users export``."""
    data = backend.export_end_user(args.end_user)
    if args.json:
        _json(data)
        return 0
    _fields([
        ("id", data.get("id")),
        ("email", data.get("email")),
        ("consent given", data.get("consent_at")),
        ("created", data.get("created_at")),
        ("erased", data.get("erased_at")),
    ])
    registration = data.get("registration") or {}
    _out("registration:" + ("" if registration else " -"))
    for key, value in sorted(registration.items()):
        _out(f"  {key}: {value}")
    activations = data.get("activations") or []
    _out("activations:" + ("" if activations else " -"))
    for a in activations:
        client = a.get("client") or {}
        _out(f"  {a.get('id')}  license {a.get('license_id')} ({a.get('product')})  "
             f"created {a.get('created_at')}  last seen {a.get('last_seen_at')}  "
             f"{'active' if a.get('deactivated_at') is None else 'deactivated'}  "
             f"sdk {_val(client.get('sdk_version'))} / {_val(client.get('os'))} / "
             f"python {_val(client.get('python'))}")
    settings = data.get("settings") or {}
    _out("settings:" + ("" if settings else " -"))
    for license_id, document in sorted(settings.items()):
        _out(f"  {license_id}: {json.dumps(document, sort_keys=True, ensure_ascii=False)}")
    return 0


def _confirm(prompt: str) -> bool:
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")


def cmd_end_users_erase(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users erase``."""
    if not args.yes and not _confirm(
        f"Erase every piece of personal data of end user {args.end_user}? "
        "This cannot be undone. [y/N] "
    ):
        raise CliError("Not erased: confirm with --yes.", code=1)
    backend.erase_end_user(args.end_user)
    if args.json:
        _json({"ok": True, "end_user_id": args.end_user})
    else:
        _out(f"Erased the personal data of end user {args.end_user}. Their licenses keep "
             "working in limited mode; a license that had an activation password needs a new "
             f"one (`{PROG} licenses password`).")
    return 0


# ----------------------------------------------------------------------- audit


def cmd_audit(backend: Backend, args: argparse.Namespace) -> int:
    """``audit``."""
    entries = backend.audit(args.limit, args.product, args.license)
    if args.json:
        _json({"entries": entries})
    elif not entries:
        _out("The audit log is empty.")
    else:
        _table(["ID", "AT", "ACTOR", "ACTION", "PRODUCT", "LICENSE", "ACTIVATION", "END USER",
                "KID", "DETAIL"],
               [[e.get("id"), e.get("at"), e.get("actor"), e.get("action"), e.get("product_id"),
                 e.get("license_id"), e.get("activation_id"), e.get("end_user_id"), e.get("kid"),
                 e.get("detail")] for e in entries])
    return 0


# =========================================================================== the parser


class _NotGiven:
    """Marker: an option that was not given (where None is a value)."""

    def __repr__(self) -> str:
        return "<not given>"


_NOT_GIVEN: Any = _NotGiven()

class Formatter(argparse.HelpFormatter):
    """The default help layout, with descriptions wrapped paragraph by paragraph."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n\n".join(
            textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                          subsequent_indent=indent)
            for paragraph in text.split("\n\n")
        )


def _common_parent() -> argparse.ArgumentParser:
    """Connection options and ``--json``, shared by every vendor command.

    Defaults are ``SUPPRESS`` so that the same options given before the
    command (if the top-level parser has them) are not overwritten.
    """
    parent = argparse.ArgumentParser(add_help=False)
    conn = parent.add_argument_group(
        "where to work",
        "Default: the local server's database (SOFTWARE_DNA_SERVER_HOME, DATABASE_URL). "
        f"With --server-url (or {ENV_SERVER_URL}) the command goes through that server's "
        "admin API.",
    )
    conn.add_argument("--data-dir", "--home", metavar="DIR", dest="data_dir",
                      default=argparse.SUPPRESS,
                      help="the server's data folder (master key; SQLite database unless "
                           "DATABASE_URL is set) (env SOFTWARE_DNA_SERVER_HOME)")
    conn.add_argument("--database-url", metavar="URL", default=argparse.SUPPRESS,
                      help="the server's database (env DATABASE_URL)")
    conn.add_argument("--server-url", metavar="URL", default=argparse.SUPPRESS,
                      help=f"use this server's admin API (env {ENV_SERVER_URL})")
    conn.add_argument("--admin-key", metavar="KEY", default=argparse.SUPPRESS,
                      help=f"the admin API key for --server-url (env {ENV_ADMIN_KEY}; "
                           "prefer the variable: arguments are visible to other users)")
    parent.add_argument("--json", action="store_true", default=False,
                        help="print machine-readable JSON (the admin API's shapes)")
    return parent


def _group(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
           help_text: str, description: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    parser = subparsers.add_parser(name, help=help_text, description=description,
                                   formatter_class=Formatter)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def _leaf(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler,
          help_text: str, description: str, *,
          parent: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text, description=description,
                              parents=[parent], formatter_class=Formatter)
    parser.set_defaults(func=_run(handler))
    return parser


def _policy_options(parser: argparse.ArgumentParser, *, creating: bool) -> None:
    policy = parser.add_argument_group("licensing policy")
    if creating:
        policy.add_argument("--name", metavar="N", help="display name (default: the id)")
    else:
        policy.add_argument("--name", metavar="N", help="new display name")
    policy.add_argument("--protection", choices=PROTECTIONS,
                        help="offline: never needs the server; opportunistic: refreshes when it "
                             "can (default); mandatory: must refresh within the grace period")
    policy.add_argument("--refresh-interval", type=duration, metavar="SECONDS",
                        help="how often the app refreshes online (seconds, or 12h, 1d, ...; "
                             "default 1d)")
    policy.add_argument("--offline-grace-period", "--offline-grace", type=duration,
                        dest="offline_grace_period", metavar="SECONDS",
                        help="how long a token stays valid after its refresh time when the "
                             "server cannot be reached (default 7d)")
    policy.add_argument("--fingerprint-tolerance", "--tolerance", type=non_negative_int,
                        dest="fingerprint_tolerance", metavar="N",
                        help="how many fingerprint components may change (0-16; default 1)")
    policy.add_argument("--features", type=feature_list, metavar="A,B",
                        help="features of a license issued without its own list "
                             "(comma-separated; '' for none)")
    policy.add_argument("--limited-features", type=feature_list, metavar="A,B",
                        help="features left in limited mode, after an end user's data was "
                             "erased ('' for none)")
    policy.add_argument("--password-required", action=argparse.BooleanOptionalAction,
                        default=None,
                        help="every license needs an activation password")
    policy.add_argument("--trial-days", type=non_negative_int, metavar="N",
                        help="the app may start a trial of N days once per machine "
                             "(0: no trial)")
    policy.add_argument("--test-code-limit", type=non_negative_int, metavar="N",
                        help="test codes live at once (default 5)")
    from software_dna.server.cli_seats import add_seat_policy_options

    add_seat_policy_options(parser)  # lease time, re-activation lock-out


def add_vendor_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``products``, ``keys``, ``licenses``, ``activations``, ``end-users`` and ``audit``.

    Every leaf command sets ``func`` to a callable ``(args) -> exit code``.
    """
    common = _common_parent()

    # ------------------------------------------------------------------ products
    products = _group(subparsers, "products", "create, list, show and configure products",
                      "Products and their licensing policy (refresh interval, offline grace "
                      "period, fingerprint tolerance, features, limited-mode features, "
                      "activation password).")
    p = _leaf(products, "create", cmd_products_create, "create a product",
              "Create a product. ID is what the app is built with "
              "(LicenseClient(product=ID)): 1-64 characters a-z 0-9 . _ -", parent=common)
    p.add_argument("product", metavar="ID", help="the product id")
    _policy_options(p, creating=True)
    _leaf(products, "list", cmd_products_list, "list the products", "List every product.",
          parent=common)
    p = _leaf(products, "show", cmd_products_show, "show one product",
              "Show a product and its policy.", parent=common)
    p.add_argument("product", metavar="ID", help="the product id")
    p = _leaf(products, "configure", cmd_products_configure, "change a product's policy",
              "Change a product's settings; options not given stay as they are. Tokens issued "
              "from now on use the new settings.", parent=common)
    p.add_argument("product", metavar="ID", help="the product id")
    _policy_options(p, creating=False)

    # ------------------------------------------------------------------ keys
    keys = _group(subparsers, "keys", "generate, list, rotate, retire and export signing keys",
                  "Ed25519 signing keys of a product. The active key signs tokens; trusted "
                  "keys are still exported so that tokens they signed keep verifying; retired "
                  "keys are dropped. Private keys stay encrypted on the server.\n\n"
                  "Rotation: `keys generate` (a trusted key), ship `keys export` in the app, "
                  "`keys rotate --kid`, later `keys retire` the old one. `keys rotate` "
                  "without --kid makes a fresh key active at once.")
    p = _leaf(keys, "generate", cmd_keys_generate, "generate a signing key",
              "Generate a signing key. The product's first key becomes active; later ones "
              "are trusted until you rotate to them.", parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")
    p = _leaf(keys, "list", cmd_keys_list, "list a product's keys",
              "List a product's signing keys (kid, status, dates).", parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")
    p = _leaf(keys, "rotate", cmd_keys_rotate, "make a new key sign",
              "Make a new key (or, with --kid, a trusted key) active. The previous active key "
              "stays trusted until retired.", parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")
    p.add_argument("--kid", metavar="KID", default=None,
                   help="rotate to this trusted key (k4.pid.…) instead of a new one")
    p = _leaf(keys, "retire", cmd_keys_retire, "stop trusting a key",
              "Retire a key: it is no longer exported. The active key cannot be retired.",
              parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")
    p.add_argument("kid", metavar="KID", help="the key id (k4.pid.…)")
    p = _leaf(keys, "export", cmd_keys_export, "print the public keys for the app",
              "Print the k4.public keys the app must trust, one per line (active first). "
              "Paste them into LicenseClient(public_keys=[...]).", parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")

    # ------------------------------------------------------------------ licenses
    licenses = _group(subparsers, "licenses",
                      "issue, list, show and change licenses",
                      "Licenses: issue (the key is shown once), list, show, suspend, resume, "
                      "revoke, set seats / expiry / features, set or clear the activation "
                      "password.")
    p = _leaf(licenses, "issue", cmd_licenses_issue, "issue a license (prints the key once)",
              "Issue a license and print its key. The server keeps only a keyed hash: the key "
              "cannot be shown again.", parent=common)
    p.add_argument("product", metavar="PRODUCT", help="the product id")
    p.add_argument("--seats", type=positive_int, default=1, metavar="N",
                   help="machines active at once (default 1)")
    p.add_argument("--expires", type=rfc3339, default=None, metavar="RFC3339",
                   help="end of the license, e.g. 2027-01-31T23:59:59Z (default: never)")
    p.add_argument("--features", type=feature_list, default=None, metavar="A,B",
                   help="entitlements (default: the product's features)")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--password", metavar="P", default=None,
                        help="activation password (visible to other users: prefer "
                             "--password-stdin)")
    secret.add_argument("--password-stdin", action="store_true",
                        help="read the activation password from the first line of stdin")
    p.add_argument("--prefix", metavar="ACME", default=None,
                   help="1-12 characters A-Z 0-9 in front of the key")
    from software_dna.server.cli_terms import add_issue_options, add_terms_commands

    add_issue_options(p)
    from software_dna.server.cli_seats import add_seat_issue_options

    add_seat_issue_options(p, creating=True)  # --seat-mode, --rollover
    p = _leaf(licenses, "list", cmd_licenses_list, "list licenses",
              "List licenses, newest first (the key shows as its last four characters).",
              parent=common)
    p.add_argument("--product", metavar="P", default=None, help="only this product's")
    p.add_argument("--limit", type=positive_int, default=100, metavar="N",
                   help="at most N licenses (default 100)")
    p = _leaf(licenses, "show", cmd_licenses_show, "show one license",
              "Show a license: status, seats in use, expiry, features, password.", parent=common)
    p.add_argument("license", metavar="ID", help="the license id (lic_…)")
    for action, help_text, description in (
        ("suspend", "suspend a license",
         "Suspend a license: validations are refused until it is resumed."),
        ("resume", "resume a suspended license", "Resume a suspended license."),
        ("revoke", "revoke a license for good",
         "Revoke a license: validations are refused for good. It cannot be resumed."),
    ):
        p = _leaf(licenses, action, cmd_licenses_status, help_text, description, parent=common)
        p.add_argument("license", metavar="ID", help="the license id (lic_…)")
        p.set_defaults(action=action)
    p = _leaf(licenses, "set", cmd_licenses_set, "set seats, expiry or features",
              "Change a license's seats, expiry or features; options not given stay as they "
              "are. Lowering seats keeps existing activations working.", parent=common)
    p.add_argument("license", metavar="ID", help="the license id (lic_…)")
    p.add_argument("--seats", type=positive_int, default=None, metavar="N",
                   help="machines active at once")
    p.add_argument("--expires", type=expiry, default=_NOT_GIVEN, metavar="RFC3339|never",
                   help="new end of the license, or 'never'")
    p.add_argument("--features", type=feature_list, default=None, metavar="A,B",
                   help="new entitlements ('' for none)")
    add_seat_issue_options(p, creating=False)  # --seat-mode, --rollover / --no-rollover
    p = _leaf(licenses, "password", cmd_licenses_password, "set or clear the activation password",
              "Set or clear a license's activation password (also lifts 'password reset "
              "required' after an erasure).", parent=common)
    p.add_argument("license", metavar="ID", help="the license id (lic_…)")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--set", metavar="P", default=None,
                     help="the new password (visible to other users: prefer --stdin)")
    how.add_argument("--stdin", action="store_true",
                     help="read the new password from the first line of stdin")
    how.add_argument("--clear", action="store_true", help="remove the password")
    add_terms_commands(subparsers, licenses, common)  # extend, perpetual, cancel, codes, trials
    from software_dna.server.cli_seats import add_seat_commands

    add_seat_commands(subparsers, licenses, common)  # licenses leases, lockouts show|reset

    # ------------------------------------------------------------------ activations
    activations = _group(subparsers, "activations", "list and remove activations",
                         "Activations: the machines using a license's seats.")
    p = _leaf(activations, "list", cmd_activations_list, "list a license's activations",
              "List a license's activations, removed and deactivated ones included.", parent=common)
    p.add_argument("license", metavar="LICENSE_ID", help="the license id (lic_…)")
    p = _leaf(activations, "remove", cmd_activations_remove, "remove an activation",
              "Remove an activation: its seat is free and the machine is refused at its next "
              "validation.", parent=common)
    p.add_argument("activation", metavar="ACTIVATION_ID", help="the activation id")

    # ------------------------------------------------------------------ end users
    end_users = _group(subparsers, "end-users", "find, export and erase end users' data",
                       "End users' personal data (email, registration details, settings), "
                       "given only with consent: find by email, export everything held (GDPR "
                       "access), erase (their licenses keep working in limited mode).")
    p = _leaf(end_users, "find", cmd_end_users_find, "find end users by email",
              "Find end users by email address (trimmed, case-insensitive). Prints ids only.",
              parent=common)
    p.add_argument("--email", metavar="E", required=True, help="the email address")
    p = _leaf(end_users, "export", cmd_end_users_export, "print everything held about one",
              "Print everything held about an end user (GDPR access). Use --json for a "
              "file to hand over.", parent=common)
    p.add_argument("end_user", metavar="ID", help="the end user id (eu_…)")
    p = _leaf(end_users, "erase", cmd_end_users_erase, "erase one end user's personal data",
              "Erase an end user's email, registration details, settings and activation "
              "password hashes. Their licenses keep working in limited mode. Asks for "
              "confirmation unless --yes is given.", parent=common)
    p.add_argument("end_user", metavar="ID", help="the end user id (eu_…)")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    # ------------------------------------------------------------------ audit
    audit = subparsers.add_parser(
        "audit", help="show the audit log", parents=[common], formatter_class=Formatter,
        description="Show the audit log of vendor actions and activations, newest first. It "
                    "holds ids only, never personal data.")
    audit.add_argument("--limit", type=positive_int, default=50, metavar="N",
                       help="at most N entries (default 50, at most 1000)")
    audit.add_argument("--product", metavar="P", default=None, help="only this product's")
    audit.add_argument("--license", metavar="ID", default=None, help="only this license's")
    audit.set_defaults(func=_run(cmd_audit))

    # ------------------------------------------------------------------ air-gapped
    from software_dna.server.cli_offline import add_offline_commands

    add_offline_commands(subparsers, common)


def build_parser() -> argparse.ArgumentParser:
    """A parser with the vendor commands only (the ``software-dna`` parser adds ``server``)."""
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=Formatter,
        description="software_dna vendor tools: products, signing keys, licenses, "
                    "activations, end users, audit log.")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    add_vendor_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one vendor command; returns its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return 2
    return func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
