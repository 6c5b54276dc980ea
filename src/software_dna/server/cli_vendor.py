"""The vendor's commands of the ``software-dna`` CLI: command handlers and parser wiring.

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

The CLI is split in modules:

* :mod:`software_dna.server.cli_backends`: the backends (database or admin
  API) and :func:`open_backend`;
* :mod:`software_dna.server.cli_output`: argument types, terminal input and
  the human / JSON output;
* this module: running a command (:func:`execute`: one line per error), the
  handlers of the groups above, and the parser (:func:`add_vendor_commands`,
  with :func:`group` and :func:`leaf` for the groups of other modules);
* :mod:`software_dna.server.cli_terms`, :mod:`software_dna.server.cli_seats`
  and :mod:`software_dna.server.cli_offline`: the commands of trials and
  terms, seats, and air-gapped activation, hooked in by
  :func:`add_vendor_commands`.

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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from software_dna.server.cli_backends import (
    ENV_ADMIN_KEY,
    ENV_SERVER_URL,
    PROG,
    Backend,
    CliError,
    DirectBackend,
    JSONDict,
    RemoteBackend,
    RemoteError,
    open_backend,
)
from software_dna.server.cli_output import (
    activation_state,
    confirm,
    duration,
    expiry,
    feature_list,
    format_list,
    format_seats,
    format_value,
    non_negative_int,
    options_given,
    positive_int,
    print_fields,
    print_json,
    print_line,
    print_listing,
    print_result,
    read_secret,
    rfc3339,
    show_license,
    show_product,
)

if TYPE_CHECKING:
    from typing import TypeAlias

    SubParsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]

__all__ = [
    "ENV_ADMIN_KEY",
    "ENV_DEBUG",
    "ENV_SERVER_URL",
    "PROTECTIONS",
    "Backend",
    "CliError",
    "DirectBackend",
    "RemoteBackend",
    "add_license_id",
    "add_product_id",
    "add_vendor_commands",
    "group",
    "leaf",
    "main",
    "open_backend",
]

#: Set to show the traceback of an unexpected error.
ENV_DEBUG = "SOFTWARE_DNA_DEBUG"
#: The protection levels (the service's ``PROTECTIONS``; the service validates).
PROTECTIONS = ("offline", "opportunistic", "mandatory")


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
    "trial": "trial",
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
    service_error = _loaded("software_dna.server.services.errors", "ServiceError")
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
    fields = options_given(args, "name", "protection", "refresh_interval", "offline_grace_period",
                           "fingerprint_tolerance", "features", "limited_features",
                           "password_required", "trial_days", "test_code_limit")
    from software_dna.server.cli_seats import seat_policy_fields

    fields.update(seat_policy_fields(args))  # lease time, lock-out limits
    return fields


def cmd_products_create(backend: Backend, args: argparse.Namespace) -> int:
    """``products create``."""
    product = backend.create_product({"id": args.product, **_product_fields(args)})
    print_result(product, as_json=args.json, headline=f"Created product {product.get('id')}.",
                 show=show_product)
    if not args.json:
        print_line(f"Next: `{PROG} keys generate {product.get('id')}`.")
    return 0


def cmd_products_list(backend: Backend, args: argparse.Namespace) -> int:
    """``products list``."""
    print_listing(
        {"products": backend.list_products()}, "products", as_json=args.json,
        empty=f"No products yet: `{PROG} products create ID --name NAME`.",
        headers=["ID", "NAME", "PROTECTION", "REFRESH", "GRACE", "TOLERANCE", "FEATURES",
                 "PASSWORD"],
        row=lambda p: [p.get("id"), p.get("name"), p.get("protection"),
                       p.get("refresh_interval"), p.get("offline_grace_period"),
                       p.get("fingerprint_tolerance"), p.get("features"),
                       "required" if p.get("password_required") else "optional"],
    )
    return 0


def cmd_products_show(backend: Backend, args: argparse.Namespace) -> int:
    """``products show``."""
    print_result(backend.get_product(args.product), as_json=args.json, show=show_product)
    return 0


def cmd_products_configure(backend: Backend, args: argparse.Namespace) -> int:
    """``products configure``."""
    fields = _product_fields(args)
    if not fields:
        raise CliError("Nothing to change: give at least one option (see --help).", code=2)
    product = backend.update_product(args.product, fields)
    print_result(product, as_json=args.json, show=show_product,
                 headline=f"Updated product {product.get('id')} ({', '.join(sorted(fields))}); "
                          "tokens issued from now on use the new settings.")
    return 0


# ----------------------------------------------------------------------- keys


def cmd_keys_generate(backend: Backend, args: argparse.Namespace) -> int:
    """``keys generate``."""
    key = backend.generate_key(args.product)
    if args.json:
        print_json(key)
        return 0
    print_line(f"Generated signing key {key.get('kid')} ({key.get('status')}) "
               f"for {args.product}.")
    if key.get("status") == "active":
        print_line(f"It signs every token. Paste the output of "
                   f"`{PROG} keys export {args.product}` into the app.")
    else:
        print_line(f"It is trusted but does not sign yet: ship it in the app "
                   f"(`{PROG} keys export {args.product}`), then "
                   f"`{PROG} keys rotate {args.product} --kid {key.get('kid')}`.")
    return 0


def cmd_keys_list(backend: Backend, args: argparse.Namespace) -> int:
    """``keys list``."""
    print_listing(
        {"keys": backend.list_keys(args.product)}, "keys", as_json=args.json,
        empty=f"No signing keys for {args.product}: `{PROG} keys generate {args.product}`.",
        headers=["KID", "STATUS", "CREATED", "RETIRED"],
        row=lambda k: [k.get("kid"), k.get("status"), k.get("created_at"), k.get("retired_at")],
    )
    return 0


def cmd_keys_rotate(backend: Backend, args: argparse.Namespace) -> int:
    """``keys rotate``."""
    key = backend.rotate_key(args.product, args.kid)
    if args.json:
        print_json(key)
        return 0
    print_line(f"Key {key.get('kid')} now signs for {args.product}; the previous active key "
               "stays trusted until you retire it.")
    print_line(f"Ship the new key set in the app (`{PROG} keys export {args.product}`) before "
               "retiring the old key.")
    return 0


def cmd_keys_retire(backend: Backend, args: argparse.Namespace) -> int:
    """``keys retire``."""
    key = backend.retire_key(args.product, args.kid)
    print_result(key, as_json=args.json,
                 headline=f"Retired key {key.get('kid', args.kid)}: it is no longer exported, "
                          "and tokens it signed stop verifying in app builds without it.")
    return 0


def cmd_keys_export(backend: Backend, args: argparse.Namespace) -> int:
    """``keys export``."""
    keys = backend.public_keys(args.product)
    if args.json:
        print_json({"product": args.product, "public_keys": keys})
    elif not keys:
        raise CliError(f"{args.product} has no signing key yet: "
                       f"`{PROG} keys generate {args.product}`.")
    else:
        for key in keys:
            print_line(key)
    return 0


# ----------------------------------------------------------------------- licenses


def cmd_licenses_issue(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses issue``."""
    fields: JSONDict = {"product": args.product, "seats": args.seats,
                        **options_given(args, "features", "expires_after_days",
                                        expires="expires_at", prefix="key_prefix")}
    password = read_secret(sys.stdin, "password") if args.password_stdin else args.password
    if password is not None:
        fields["password"] = password
    if args.kind != "full":
        fields["kind"] = args.kind
    if args.subscription:
        fields["subscription"] = True
    from software_dna.server.cli_seats import seat_license_fields

    fields.update(seat_license_fields(args))  # --seat-mode, --rollover
    issued = backend.issue_license(fields)
    if args.json:
        print_json(issued)
        return 0
    print_line(f"Issued license {issued.get('id')} for {issued.get('product')}: "
               f"{issued.get('seats')} seat(s), expires {issued.get('expires_at') or 'never'}, "
               f"features {format_list(issued.get('features'))}, "
               f"password {'set' if issued.get('password_set') else 'none'}.")
    print_line("License key (shown only now, the server cannot show it again):")
    print_line(f"  {issued.get('license_key')}")
    return 0


def cmd_licenses_list(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses list``."""
    print_listing(
        {"licenses": backend.list_licenses(args.product, args.limit)}, "licenses",
        as_json=args.json, empty="No licenses.",
        headers=["ID", "PRODUCT", "KEY", "STATUS", "SEATS", "EXPIRES", "FEATURES"],
        row=lambda lic: [lic.get("id"), lic.get("product"), lic.get("key_hint"),
                         str(lic.get("status")) + (" (erased)" if lic.get("erased") else ""),
                         format_seats(lic), lic.get("expires_at") or "never",
                         lic.get("features")],
    )
    return 0


def cmd_licenses_show(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses show``."""
    print_result(backend.get_license(args.license), as_json=args.json, show=show_license)
    return 0


def cmd_licenses_status(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses suspend|resume|revoke``."""
    lic = backend.set_license_status(args.license, args.action)
    print_result(lic, as_json=args.json,
                 headline=f"License {lic.get('id')} is now {lic.get('status')}.")
    return 0


def cmd_licenses_set(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses set``."""
    fields = options_given(args, "seats")
    if args.expires is not _NOT_GIVEN:
        fields["expires_at"] = args.expires
    fields.update(options_given(args, "features"))
    from software_dna.server.cli_seats import seat_license_fields

    fields.update(seat_license_fields(args))  # --seat-mode, --rollover / --no-rollover
    if not fields:
        raise CliError("Nothing to change: give --seats, --expires, --features, --seat-mode "
                       "or --rollover.", code=2)
    lic = backend.update_license(args.license, fields)
    print_result(lic, as_json=args.json, show=show_license,
                 headline=f"Updated license {lic.get('id')} ({', '.join(sorted(fields))}).")
    return 0


def cmd_licenses_password(backend: Backend, args: argparse.Namespace) -> int:
    """``licenses password``."""
    password: str | None
    if args.clear:
        password = None
    elif args.stdin:
        password = read_secret(sys.stdin, "password")
    else:
        password = args.set
    lic = backend.set_password(args.license, password)
    license_id = lic.get("id", args.license)
    print_result(lic, as_json=args.json,
                 headline=f"Removed the activation password of license {license_id}."
                 if password is None else
                 f"Set a new activation password for license {license_id}.")
    return 0


# ----------------------------------------------------------------------- activations


def cmd_activations_list(backend: Backend, args: argparse.Namespace) -> int:
    """``activations list``."""
    print_listing(
        {"activations": backend.list_activations(args.license)}, "activations",
        as_json=args.json, empty=f"License {args.license} has no activations.",
        headers=["ID", "STATE", "FINGERPRINT", "CREATED", "LAST SEEN", "END USER", "MODE"],
        row=lambda a: [a.get("id"), activation_state(a), a.get("fingerprint_id"),
                       a.get("created_at"), a.get("last_seen_at"), a.get("end_user_id"),
                       "limited" if a.get("erased") else "full"],
    )
    return 0


def cmd_activations_remove(backend: Backend, args: argparse.Namespace) -> int:
    """``activations remove``."""
    activation = backend.remove_activation(args.activation)
    print_result(activation, as_json=args.json,
                 headline=f"Removed activation {args.activation}: its seat is free, and the "
                          "machine is told at its next validation.")
    return 0


# ----------------------------------------------------------------------- end users


def cmd_end_users_find(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users find``."""
    print_listing(
        {"end_users": backend.find_end_users(args.email)}, "end_users", as_json=args.json,
        empty="No end user with that email address.",
        headers=["ID", "CREATED", "CONSENT", "ERASED"],
        row=lambda u: [u.get("id"), u.get("created_at"), u.get("consent_at"),
                       u.get("erased_at")],
    )
    return 0


def cmd_end_users_export(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users export``."""
    data = backend.export_end_user(args.end_user)
    if args.json:
        print_json(data)
        return 0
    print_fields([
        ("id", data.get("id")),
        ("email", data.get("email")),
        ("consent given", data.get("consent_at")),
        ("created", data.get("created_at")),
        ("erased", data.get("erased_at")),
    ])
    registration = data.get("registration") or {}
    print_line("registration:" + ("" if registration else " -"))
    for key, value in sorted(registration.items()):
        print_line(f"  {key}: {value}")
    activations = data.get("activations") or []
    print_line("activations:" + ("" if activations else " -"))
    for a in activations:
        client = a.get("client") or {}
        print_line(f"  {a.get('id')}  license {a.get('license_id')} ({a.get('product')})  "
                   f"created {a.get('created_at')}  last seen {a.get('last_seen_at')}  "
                   f"{'active' if a.get('deactivated_at') is None else 'deactivated'}  "
                   f"sdk {format_value(client.get('sdk_version'))} / "
                   f"{format_value(client.get('os'))} / "
                   f"python {format_value(client.get('python'))}")
    settings = data.get("settings") or {}
    print_line("settings:" + ("" if settings else " -"))
    for license_id, document in sorted(settings.items()):
        print_line(f"  {license_id}: {json.dumps(document, sort_keys=True, ensure_ascii=False)}")
    return 0


def cmd_end_users_erase(backend: Backend, args: argparse.Namespace) -> int:
    """``end-users erase``."""
    if not args.yes and not confirm(
        f"Erase every piece of personal data of end user {args.end_user}? "
        "This cannot be undone. [y/N] "
    ):
        raise CliError("Not erased: confirm with --yes.", code=1)
    backend.erase_end_user(args.end_user)
    print_result({"ok": True, "end_user_id": args.end_user}, as_json=args.json,
                 headline=f"Erased the personal data of end user {args.end_user}. Their "
                          "licenses keep working in limited mode; a license that had an "
                          "activation password needs a new one "
                          f"(`{PROG} licenses password`).")
    return 0


# ----------------------------------------------------------------------- audit


def cmd_audit(backend: Backend, args: argparse.Namespace) -> int:
    """``audit``."""
    print_listing(
        {"entries": backend.audit(args.limit, args.product, args.license)}, "entries",
        as_json=args.json, empty="The audit log is empty.",
        headers=["ID", "AT", "ACTOR", "ACTION", "PRODUCT", "LICENSE", "ACTIVATION", "END USER",
                 "KID", "DETAIL"],
        row=lambda e: [e.get("id"), e.get("at"), e.get("actor"), e.get("action"),
                       e.get("product_id"), e.get("license_id"), e.get("activation_id"),
                       e.get("end_user_id"), e.get("kid"), e.get("detail")],
    )
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


def group(subparsers: SubParsers, name: str, help_text: str, description: str) -> SubParsers:
    """Add the command group ``name``; returns its sub-parsers (for :func:`leaf`).

    The group alone prints its help on stderr and exits with 2.
    """
    parser = subparsers.add_parser(name, help=help_text, description=description,
                                   formatter_class=Formatter)

    def usage(_args: argparse.Namespace) -> int:
        parser.print_help(sys.stderr)
        return 2

    parser.set_defaults(func=usage)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def leaf(commands: SubParsers, name: str, handler: Handler, help_text: str, description: str, *,
         parent: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the command ``name`` to a group; it runs ``handler`` through :func:`execute`.

    ``parent`` is the parser of the shared options (connection, ``--json``).
    """
    parser = commands.add_parser(name, help=help_text, description=description,
                                 parents=[parent], formatter_class=Formatter)
    parser.set_defaults(func=_run(handler))
    return parser


def add_product_id(parser: argparse.ArgumentParser, metavar: str = "PRODUCT") -> None:
    """The positional product id (``args.product``)."""
    parser.add_argument("product", metavar=metavar, help="the product id")


def add_license_id(parser: argparse.ArgumentParser, metavar: str = "ID",
                   help_text: str = "the license id (lic_…)") -> None:
    """The positional license id (``args.license``)."""
    parser.add_argument("license", metavar=metavar, help=help_text)


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


def add_vendor_commands(subparsers: SubParsers) -> None:
    """Add ``products``, ``keys``, ``licenses``, ``activations``, ``end-users`` and ``audit``.

    Every leaf command sets ``func`` to a callable ``(args) -> exit code``.
    """
    common = _common_parent()

    # ------------------------------------------------------------------ products
    products = group(subparsers, "products", "create, list, show and configure products",
                     "Products and their licensing policy (refresh interval, offline grace "
                     "period, fingerprint tolerance, features, limited-mode features, "
                     "activation password).")
    p = leaf(products, "create", cmd_products_create, "create a product",
             "Create a product. ID is what the app is built with "
             "(LicenseClient(product=ID)): 1-64 characters a-z 0-9 . _ -", parent=common)
    add_product_id(p, "ID")
    _policy_options(p, creating=True)
    leaf(products, "list", cmd_products_list, "list the products", "List every product.",
         parent=common)
    p = leaf(products, "show", cmd_products_show, "show one product",
             "Show a product and its policy.", parent=common)
    add_product_id(p, "ID")
    p = leaf(products, "configure", cmd_products_configure, "change a product's policy",
             "Change a product's settings; options not given stay as they are. Tokens issued "
             "from now on use the new settings.", parent=common)
    add_product_id(p, "ID")
    _policy_options(p, creating=False)

    # ------------------------------------------------------------------ keys
    keys = group(subparsers, "keys", "generate, list, rotate, retire and export signing keys",
                 "Ed25519 signing keys of a product. The active key signs tokens; trusted "
                 "keys are still exported so that tokens they signed keep verifying; retired "
                 "keys are dropped. Private keys stay encrypted on the server.\n\n"
                 "Rotation: `keys generate` (a trusted key), ship `keys export` in the app, "
                 "`keys rotate --kid`, later `keys retire` the old one. `keys rotate` "
                 "without --kid makes a fresh key active at once.")
    p = leaf(keys, "generate", cmd_keys_generate, "generate a signing key",
             "Generate a signing key. The product's first key becomes active; later ones "
             "are trusted until you rotate to them.", parent=common)
    add_product_id(p)
    p = leaf(keys, "list", cmd_keys_list, "list a product's keys",
             "List a product's signing keys (kid, status, dates).", parent=common)
    add_product_id(p)
    p = leaf(keys, "rotate", cmd_keys_rotate, "make a new key sign",
             "Make a new key (or, with --kid, a trusted key) active. The previous active key "
             "stays trusted until retired.", parent=common)
    add_product_id(p)
    p.add_argument("--kid", metavar="KID", default=None,
                   help="rotate to this trusted key (k4.pid.…) instead of a new one")
    p = leaf(keys, "retire", cmd_keys_retire, "stop trusting a key",
             "Retire a key: it is no longer exported. The active key cannot be retired.",
             parent=common)
    add_product_id(p)
    p.add_argument("kid", metavar="KID", help="the key id (k4.pid.…)")
    p = leaf(keys, "export", cmd_keys_export, "print the public keys for the app",
             "Print the k4.public keys the app must trust, one per line (active first). "
             "Paste them into LicenseClient(public_keys=[...]).", parent=common)
    add_product_id(p)

    # ------------------------------------------------------------------ licenses
    licenses = group(subparsers, "licenses",
                     "issue, list, show and change licenses",
                     "Licenses: issue (the key is shown once), list, show, suspend, resume, "
                     "revoke, set seats / expiry / features, set or clear the activation "
                     "password.")
    p = leaf(licenses, "issue", cmd_licenses_issue, "issue a license (prints the key once)",
             "Issue a license and print its key. The server keeps only a keyed hash: the key "
             "cannot be shown again.", parent=common)
    add_product_id(p)
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
    p = leaf(licenses, "list", cmd_licenses_list, "list licenses",
             "List licenses, newest first (the key shows as its last four characters).",
             parent=common)
    p.add_argument("--product", metavar="P", default=None, help="only this product's")
    p.add_argument("--limit", type=positive_int, default=100, metavar="N",
                   help="at most N licenses (default 100)")
    p = leaf(licenses, "show", cmd_licenses_show, "show one license",
             "Show a license: status, seats in use, expiry, features, password.", parent=common)
    add_license_id(p)
    for action, help_text, description in (
        ("suspend", "suspend a license",
         "Suspend a license: validations are refused until it is resumed."),
        ("resume", "resume a suspended license", "Resume a suspended license."),
        ("revoke", "revoke a license for good",
         "Revoke a license: validations are refused for good. It cannot be resumed."),
    ):
        p = leaf(licenses, action, cmd_licenses_status, help_text, description, parent=common)
        add_license_id(p)
        p.set_defaults(action=action)
    p = leaf(licenses, "set", cmd_licenses_set, "set seats, expiry or features",
             "Change a license's seats, expiry or features; options not given stay as they "
             "are. Lowering seats keeps existing activations working.", parent=common)
    add_license_id(p)
    p.add_argument("--seats", type=positive_int, default=None, metavar="N",
                   help="machines active at once")
    p.add_argument("--expires", type=expiry, default=_NOT_GIVEN, metavar="RFC3339|never",
                   help="new end of the license, or 'never'")
    p.add_argument("--features", type=feature_list, default=None, metavar="A,B",
                   help="new entitlements ('' for none)")
    add_seat_issue_options(p, creating=False)  # --seat-mode, --rollover / --no-rollover
    p = leaf(licenses, "password", cmd_licenses_password, "set or clear the activation password",
             "Set or clear a license's activation password (also lifts 'password reset "
             "required' after an erasure).", parent=common)
    add_license_id(p)
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
    activations = group(subparsers, "activations", "list and remove activations",
                        "Activations: the machines using a license's seats.")
    p = leaf(activations, "list", cmd_activations_list, "list a license's activations",
             "List a license's activations, removed and deactivated ones included.", parent=common)
    add_license_id(p, "LICENSE_ID")
    p = leaf(activations, "remove", cmd_activations_remove, "remove an activation",
             "Remove an activation: its seat is free and the machine is refused at its next "
             "validation.", parent=common)
    p.add_argument("activation", metavar="ACTIVATION_ID", help="the activation id")

    # ------------------------------------------------------------------ end users
    end_users = group(subparsers, "end-users", "find, export and erase end users' data",
                      "End users' personal data (email, registration details, settings), "
                      "given only with consent: find by email, export everything held (GDPR "
                      "access), erase (their licenses keep working in limited mode).")
    p = leaf(end_users, "find", cmd_end_users_find, "find end users by email",
             "Find end users by email address (trimmed, case-insensitive). Prints ids only.",
             parent=common)
    p.add_argument("--email", metavar="E", required=True, help="the email address")
    p = leaf(end_users, "export", cmd_end_users_export, "print everything held about one",
             "Print everything held about an end user (GDPR access). Use --json for a "
             "file to hand over.", parent=common)
    p.add_argument("end_user", metavar="ID", help="the end user id (eu_…)")
    p = leaf(end_users, "erase", cmd_end_users_erase, "erase one end user's personal data",
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
