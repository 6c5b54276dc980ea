"""``software-dna offline``: the vendor's side of air-gapped activation (docs/offline.md).

    software-dna offline respond REQUEST_FILE [-o RESPONSE_FILE]
    software-dna offline deactivate RECEIPT_FILE

``respond`` turns an end user's activation request into an activation
response (the same checks as an online activation: password, consent,
seats, license status; the activation takes a seat); ``deactivate`` takes
a deactivation receipt and frees the seat.  ``-`` reads the file from
standard input.  Both work directly on the server's database (the default)
or through a running server (``--server-url``: the public routes
``/v1/offline/activations`` and ``/v1/offline/deactivations``, which count
against that server's per-address rate limit).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from software_dna.server.cli_backends import (
    Backend,
    CliError,
    DirectBackend,
    JSONDict,
    RemoteBackend,
    RemoteError,
)
from software_dna.server.cli_output import print_json, print_line
from software_dna.server.cli_vendor import group, leaf

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from software_dna.server.services import Context

__all__ = ["add_offline_commands", "cmd_offline_deactivate", "cmd_offline_respond"]

#: Largest request or receipt file read (bytes); the blocks themselves are far smaller.
MAX_FILE_BYTES = 256 * 1024


def _read_block(name: str, what: str) -> str:
    """The text of ``name`` (``-``: standard input), UTF-8, at most :data:`MAX_FILE_BYTES`."""
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        else:
            with open(name, "rb") as handle:
                raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise CliError(f"Cannot read {what} from {name!r}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_FILE_BYTES:
        raise CliError(f"The file {name!r} is too large to be {what}.")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CliError(f"The file {name!r} is not text (UTF-8): it cannot be {what}.") from None


def _write_private(path: str, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (it holds the activation secret)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise CliError(f"Cannot write {path!r}: {exc.strerror or exc}.") from None


def _post(backend: RemoteBackend, path: str, body: JSONDict) -> JSONDict:
    """POST to a public route of the remote server; errors become :class:`RemoteError`."""
    import requests

    try:
        answer = requests.post(f"{backend.base}{path}", json=body, timeout=backend.TIMEOUT)
    except requests.RequestException as exc:
        raise CliError(f"Cannot reach the server at {backend.base}: "
                       f"{type(exc).__name__}.") from None
    try:
        data: Any = answer.json()
    except ValueError:
        data = None
    if answer.status_code >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        error = error if isinstance(error, dict) else {}
        raise RemoteError(answer.status_code, str(error.get("code", "http_error")),
                          str(error.get("message", f"HTTP {answer.status_code}")))
    if not isinstance(data, dict):
        raise CliError("The server's answer is not a JSON object.")
    return data


def _offline_call(backend: Backend, path: str, body: JSONDict,
                  direct: Callable[[Session, Context], JSONDict]) -> JSONDict:
    """POST ``body`` to the public route ``path`` of the server, or run ``direct`` on the database.

    (Unlike :func:`~software_dna.server.cli_backends.call_backend`, the
    remote side is a public route, not the admin API.)
    """
    if isinstance(backend, RemoteBackend):
        return _post(backend, path, body)
    if not isinstance(backend, DirectBackend):  # pragma: no cover - two backends only
        raise CliError("unsupported backend")
    return direct(backend.session, backend.ctx)


def _respond(backend: Backend, text: str) -> JSONDict:
    def direct(session: Session, ctx: Context) -> JSONDict:
        from software_dna.server.schemas import OfflineActivateOut
        from software_dna.server.services.offline import respond

        result = respond(session, ctx, text)
        return OfflineActivateOut(
            response=result.response, activation_id=result.activation_id,
            license_id=result.license_id, product=result.product,
            fingerprint_id=result.fingerprint_id, server_time=result.server_time,
        ).model_dump(mode="json")

    return _offline_call(backend, "/v1/offline/activations", {"request": text}, direct)


def _deactivate(backend: Backend, text: str) -> JSONDict:
    def direct(session: Session, ctx: Context) -> JSONDict:
        from software_dna.server.schemas import OfflineDeactivateOut
        from software_dna.server.services.offline import deactivate_from_receipt

        result = deactivate_from_receipt(session, ctx, text)
        return OfflineDeactivateOut(
            activation_id=result.activation_id, license_id=result.license_id,
            product=result.product, deactivated_at=result.deactivated_at,
            already_deactivated=result.already_deactivated, receipt=result.receipt,
            nonce=result.nonce, server_time=result.server_time,
        ).model_dump(mode="json")

    return _offline_call(backend, "/v1/offline/deactivations", {"receipt": text}, direct)


def cmd_offline_respond(backend: Backend, args: argparse.Namespace) -> int:
    """``offline respond``: print or write the activation response; exit 0, or 1 if refused."""
    answer = _respond(backend, _read_block(args.request_file, "an activation request"))
    response = answer.get("response")
    if not isinstance(response, str):
        raise CliError("The server's answer holds no activation response.")
    if args.output:
        _write_private(args.output, response)
    summary = (f"Activated license {answer.get('license_id')} of {answer.get('product')} on "
               f"machine {answer.get('fingerprint_id')} (activation "
               f"{answer.get('activation_id')}).")
    if args.json:
        print_json(answer)
    elif args.output:
        print_line(summary)
        print_line(f"Response written to {Path(args.output)}: give it to the end user, who opens "
                   "it in the app. It holds the activation secret: send it only to them.")
    else:
        print(summary, file=sys.stderr)
        sys.stdout.write(response)
    return 0


def cmd_offline_deactivate(backend: Backend, args: argparse.Namespace) -> int:
    """``offline deactivate``: free the seat named by a receipt; exit 0, or 1 if refused."""
    answer = _deactivate(backend, _read_block(args.receipt_file, "a deactivation receipt"))
    if args.json:
        print_json(answer)
    elif answer.get("already_deactivated"):
        print_line(f"Activation {answer.get('activation_id')} of license "
                   f"{answer.get('license_id')} was already deactivated "
                   f"({answer.get('deactivated_at')}): its seat is free.")
    else:
        print_line(f"Deactivated activation {answer.get('activation_id')} of license "
                   f"{answer.get('license_id')}: its seat is free.")
    return 0


def add_offline_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
                         common: argparse.ArgumentParser) -> None:
    """Add the ``offline`` group (``respond``, ``deactivate``) to the ``software-dna`` parser.

    Args:
        subparsers: the top-level sub-parsers (as :func:`add_vendor_commands` gets them).
        common: the parent parser of the connection options and ``--json``.
    """
    offline = group(subparsers, "offline",
                    "air-gapped activation: answer requests, take receipts",
                    "Air-gapped activation (docs/offline.md). The end user's app makes an "
                    "activation request file; `offline respond` turns it into a response file "
                    "that the app verifies with no network. To free the seat, the app makes a "
                    "signed deactivation receipt; `offline deactivate` takes it.")
    p = leaf(offline, "respond", cmd_offline_respond, "answer an activation request",
             "Activate the license named in an activation request (password, consent, seats "
             "and license status are checked as for an online activation; the machine takes "
             "a seat) and print the activation response, or write it to RESPONSE_FILE "
             "(mode 0600: it holds the activation secret). Answering the same request again "
             "gives the same activation. Requests older than 30 days are refused.",
             parent=common)
    p.add_argument("request_file", metavar="REQUEST_FILE",
                   help="the activation request ('-': standard input)")
    p.add_argument("-o", "--output", metavar="RESPONSE_FILE", default=None,
                   help="write the response here (default: print it)")
    p = leaf(offline, "deactivate", cmd_offline_deactivate, "free a seat with a receipt",
             "Verify an end user's signed deactivation receipt and free the seat of that "
             "activation. Giving the same receipt again changes nothing.", parent=common)
    p.add_argument("receipt_file", metavar="RECEIPT_FILE",
                   help="the deactivation receipt ('-': standard input)")
