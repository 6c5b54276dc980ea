"""The backends of the vendor CLI: where a ``software-dna`` vendor command runs.

:class:`DirectBackend` runs the vendor operations on the server's database
through the service layer (one session per command); :class:`RemoteBackend`
runs them through a running server's admin API (``/v1/admin``, by way of
:class:`software_dna.server.adminclient.AdminClient`).  Both follow the
:class:`Backend` protocol and answer with the admin API's JSON shapes.
:func:`open_backend` picks one from the connection options and the
environment (``SOFTWARE_DNA_SERVER_URL``, ``SOFTWARE_DNA_ADMIN_KEY``,
``SOFTWARE_DNA_SERVER_HOME``, ``DATABASE_URL``); :func:`call_backend` runs an
operation the protocol does not have on either backend.

A failure meant for the user is a :class:`CliError` (one line on stderr, exit
code 1, or 2 for usage); an error answer of the admin API is a
:class:`RemoteError`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from software_dna.server.config import Settings
    from software_dna.server.service import Context

__all__ = [
    "ENV_ADMIN_KEY",
    "ENV_SERVER_URL",
    "PROG",
    "Backend",
    "CliError",
    "Direct",
    "DirectBackend",
    "JSONDict",
    "RemoteBackend",
    "RemoteError",
    "call_backend",
    "open_backend",
    "path_segment",
]

#: Environment variable naming the server of the remote backend.
ENV_SERVER_URL = "SOFTWARE_DNA_SERVER_URL"
#: Environment variable holding the admin API key of the remote backend.
ENV_ADMIN_KEY = "SOFTWARE_DNA_ADMIN_KEY"

#: The command's name in messages.
PROG = "software-dna"

#: A JSON object of the admin API.
JSONDict = dict[str, Any]

#: An operation run on the database: ``(session, ctx) -> answer`` (see :func:`call_backend`).
Direct = Callable[["Session", "Context"], Any]


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


def path_segment(value: str) -> str:
    """One URL path segment, every reserved character escaped."""
    return quote(value, safe="")


class RemoteBackend:
    """The vendor operations through a running server's admin API (``/v1/admin``).

    A thin layer over :class:`software_dna.server.adminclient.AdminClient` (the one
    HTTP client of the admin API): path segments are escaped, an error answer
    (``{"error": {"code", "message"}}``) becomes a :class:`RemoteError` with
    the server's message, and a server that cannot be reached a
    :class:`CliError`.
    """

    #: Seconds to wait for an answer (an erasure compacts the SQLite file).
    TIMEOUT = 120.0

    def __init__(self, server_url: str, admin_key: str) -> None:
        from software_dna.server.adminclient import AdminClient

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

        from software_dna.server.adminclient import AdminError

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
        return self._obj("GET", f"/products/{path_segment(product_id)}")

    def update_product(self, product_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PATCH", f"/products/{path_segment(product_id)}", body=fields)

    # ------------------------------------------------------------------ keys

    def generate_key(self, product_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", f"/products/{path_segment(product_id)}/keys", body={})

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list(f"/products/{path_segment(product_id)}/keys", "keys")

    def rotate_key(self, product_id: str, kid: str | None) -> JSONDict:
        """See :class:`Backend`."""
        body: JSONDict = {} if kid is None else {"kid": kid}
        return self._obj("POST", f"/products/{path_segment(product_id)}/keys/rotate", body=body)

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj(
            "POST", f"/products/{path_segment(product_id)}/keys/{path_segment(kid)}/retire",
            body={})

    def public_keys(self, product_id: str) -> list[str]:
        """See :class:`Backend`."""
        keys = self._list(f"/products/{path_segment(product_id)}/public-keys", "public_keys")
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
        return self._obj("GET", f"/licenses/{path_segment(license_id)}")

    def set_license_status(self, license_id: str, action: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("POST", f"/licenses/{path_segment(license_id)}/{action}", body={})

    def update_license(self, license_id: str, fields: JSONDict) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PATCH", f"/licenses/{path_segment(license_id)}", body=fields)

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("PUT", f"/licenses/{path_segment(license_id)}/password",
                         body={"password": password})

    # ------------------------------------------------------------------ activations

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list(f"/licenses/{path_segment(license_id)}/activations", "activations")

    def remove_activation(self, activation_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("DELETE", f"/activations/{path_segment(activation_id)}")

    # ------------------------------------------------------------------ end users

    def find_end_users(self, email: str) -> list[JSONDict]:
        """See :class:`Backend`."""
        return self._list("/end-users", "end_users", params={"email": email})

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """See :class:`Backend`."""
        return self._obj("GET", f"/end-users/{path_segment(end_user_id)}")

    def erase_end_user(self, end_user_id: str) -> None:
        """See :class:`Backend`."""
        self.request("POST", f"/end-users/{path_segment(end_user_id)}/erase", body={})

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

    try:
        return Settings.load(home=data_dir, database_url=database_url)
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


def call_backend(backend: Backend, direct: Direct, method: str, path: str, *,
                 body: JSONDict | None = None,
                 params: Mapping[str, str | int] | None = None) -> Any:
    """Run ``direct(session, ctx)`` on the database, or ``method path`` on the admin API.

    For the operations that :class:`Backend` does not have (the command groups
    of other modules): ``path`` is below ``/v1/admin``, its segments escaped
    with :func:`path_segment`.
    """
    if isinstance(backend, RemoteBackend):
        return backend.request(method, path, body=body, params=params)
    if isinstance(backend, DirectBackend):
        return direct(backend.session, backend.ctx)
    raise CliError("This command needs the database or a server's admin API.")  # pragma: no cover
