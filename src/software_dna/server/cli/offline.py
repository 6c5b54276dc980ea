"""``software-dna offline``: the vendor's side of air-gapped activation (docs/offline.md).

    software-dna offline respond REQUEST_FILE [-o RESPONSE_FILE]
    software-dna offline deactivate RECEIPT_FILE

``respond`` turns an end user's activation request into an activation
response (the checks of an online activation: the product or license must
allow air-gapped activation, consent, seats, license status, lock-out; no
activation password: the vendor's staff are authorised without it; the
activation takes a seat); ``deactivate`` takes a deactivation receipt and
frees the seat.  ``-`` reads the file from standard input.  Both work
directly on the server's database (the default) or through a running
server (``--server-url``: the admin route ``/v1/admin/offline/activations``
and the public ``/v1/offline/deactivations``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from software_dna.server.cli._common import CliError, Json
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_json, print_line

__all__ = ["app"]

app = typer.Typer(
    name="offline", no_args_is_help=True, rich_markup_mode=None,
    short_help="air-gapped activation: answer requests, take receipts",
    help="Air-gapped activation (docs/offline.md). The end user's app makes an activation "
         "request file; `offline respond` turns it into a response file that the app verifies "
         "with no network. To free the seat, the app makes a signed deactivation receipt; "
         "`offline deactivate` takes it.")

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


@app.command("respond", short_help="answer an activation request")
@vendor_command
def respond(
    backend: Backend, *,
    request_file: Annotated[str, typer.Argument(
        metavar="REQUEST_FILE", show_default=False,
        help="the activation request ('-': standard input)")],
    output: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="RESPONSE_FILE", show_default=False,
        help="write the response here (default: print it)")] = None,
    as_json: Json = False,
) -> int:
    """Activate the license named in an activation request (no activation password is asked:
    you are the vendor; air-gapped activation allowed, consent, seats, license status and
    lock-out are checked as for an online activation; the machine takes a seat) and
    print the activation response, or write it to RESPONSE_FILE (mode 0600: it holds the
    activation secret). Answering the same request again gives the same activation. Requests
    older than 30 days are refused."""
    answer = backend.offline_respond(_read_block(request_file, "an activation request"))
    response = answer.get("response")
    if not isinstance(response, str):
        raise CliError("The server's answer holds no activation response.")
    if output:
        _write_private(output, response)
    summary = (f"Activated license {answer.get('license_id')} of {answer.get('product')} on "
               f"machine {answer.get('fingerprint_id')} (activation "
               f"{answer.get('activation_id')}).")
    if as_json:
        print_json(answer)
    elif output:
        print_line(summary)
        print_line(f"Response written to {Path(output)}: give it to the end user, who opens "
                   "it in the app. It holds the activation secret: send it only to them.")
    else:
        print(summary, file=sys.stderr)
        sys.stdout.write(response)
    return 0


@app.command("deactivate", short_help="free a seat with a receipt")
@vendor_command
def deactivate(
    backend: Backend, *,
    receipt_file: Annotated[str, typer.Argument(
        metavar="RECEIPT_FILE", show_default=False,
        help="the deactivation receipt ('-': standard input)")],
    as_json: Json = False,
) -> int:
    """Verify an end user's signed deactivation receipt and free the seat of that activation.
    Giving the same receipt again changes nothing."""
    answer = backend.offline_deactivate(_read_block(receipt_file, "a deactivation receipt"))
    if as_json:
        print_json(answer)
    elif answer.get("already_deactivated"):
        print_line(f"Activation {answer.get('activation_id')} of license "
                   f"{answer.get('license_id')} was already deactivated "
                   f"({answer.get('deactivated_at')}): its seat is free.")
    else:
        print_line(f"Deactivated activation {answer.get('activation_id')} of license "
                   f"{answer.get('license_id')}: its seat is free.")
    return 0
