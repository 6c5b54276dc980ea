"""What every ``software-dna`` command shares: names, errors and the options' value types."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from typing import Annotated, Any, TextIO

import typer

from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = [
    "ENV_ADMIN_KEY",
    "ENV_CA_FILE",
    "ENV_DEBUG",
    "ENV_SERVER_URL",
    "PROG",
    "CliError",
    "JSONDict",
    "Json",
    "LicenseId",
    "ProductId",
    "Refused",
    "choice",
    "confirm",
    "duration",
    "expiry",
    "feature_list",
    "given",
    "in_range",
    "limit_or_off",
    "non_negative_int",
    "positive_int",
    "read_secret",
    "rfc3339",
]

#: The command's name in messages.
PROG = "software-dna"
#: Environment variable naming the server of the remote mode.
ENV_SERVER_URL = "SOFTWARE_DNA_SERVER_URL"
#: Environment variable holding the admin API key of the remote mode.
ENV_ADMIN_KEY = "SOFTWARE_DNA_ADMIN_KEY"
#: A CA bundle (PEM) the CLI trusts for an https:// admin API (a private CA).
ENV_CA_FILE = "SOFTWARE_DNA_CA_FILE"
#: Set to show the traceback of an unexpected error.
ENV_DEBUG = "SOFTWARE_DNA_DEBUG"

#: A JSON object of the admin API.
JSONDict = dict[str, Any]


class CliError(Exception):
    """A failure reported as one line on stderr with exit ``code`` (1, or 2 for usage)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Refused(Exception):
    """The service or the server refused the operation.

    Attributes:
        code: the protocol error code (a :class:`~software_dna.wire.codes.Code`
            value, as a string).
        message: the service's sentence.
        details: structured facts (``{"kind": "product"}`` with ``not_found``), or None.
    """

    def __init__(self, code: str, message: str, details: Mapping[str, Any] | None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details) if details else {}


# --------------------------------------------------------------------------- shared options

#: ``--json``: the admin API's JSON instead of the human-readable lines.
Json = Annotated[bool, typer.Option(
    "--json", help="print machine-readable JSON (the admin API's shapes)")]
#: The positional product id.
ProductId = Annotated[str, typer.Argument(metavar="PRODUCT", help="the product id",
                                          show_default=False)]
#: The positional license id.
LicenseId = Annotated[str, typer.Argument(metavar="ID", help="the license id (lic_…)",
                                          show_default=False)]


# --------------------------------------------------------------------------- value types
# Each raises typer.BadParameter with the sentence click shows after "Invalid value for ..."
# (a ValueError would show as "Value error, ...").

_DURATION_RE = re.compile(r"^\s*(\d{1,10})\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
#: The value of an ``N|off`` limit that switches it off.
OFF = "off"


def duration(text: str) -> int:
    """Seconds from ``3600``, ``90s``, ``15m``, ``24h``, ``7d`` or ``2w``."""
    found = _DURATION_RE.match(text)
    if found is None:
        raise typer.BadParameter(f"not a duration: {text!r} (seconds, or a number with s, m, h, d "
                         "or w)")
    return int(found[1]) * _UNITS[found[2]]


def feature_list(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``; an empty string is the empty list."""
    return [part.strip() for part in text.split(",") if part.strip()]


def rfc3339(text: str) -> str:
    """An RFC 3339 time with an offset, normalised to ``...Z``."""
    try:
        return format_rfc3339(parse_rfc3339(text))
    except ValueError:
        raise typer.BadParameter(f"not an RFC 3339 time with an offset: {text!r} "
                         "(e.g. 2027-01-31T23:59:59Z)") from None


def expiry(text: str) -> str:
    """Like :func:`rfc3339`, or ``never`` (a perpetual license)."""
    if text.strip().lower() in ("never", "none"):
        return "never"
    return rfc3339(text)


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1."""
    value = _integer(text)
    if value < 1:
        raise typer.BadParameter(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0."""
    value = _integer(text)
    if value < 0:
        raise typer.BadParameter(f"must be 0 or more, got {value}")
    return value


def in_range(low: int, high: int) -> Callable[[str], int]:
    """A parser of integers from ``low`` to ``high``."""
    def parse(text: str) -> int:
        value = positive_int(text)
        if not low <= value <= high:
            raise typer.BadParameter(f"must be {low} to {high}")
        return value
    return parse


def limit_or_off(text: str) -> int | str:
    """``off`` / ``none`` (:data:`OFF`), or an integer 0-100000."""
    if text.strip().lower() in ("off", "none"):
        return OFF
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"not a number or 'off': {text!r}") from None
    if not 0 <= value <= 100_000:
        raise typer.BadParameter(f"must be 0 to 100000, got {value}")
    return value


def choice(*values: str) -> Callable[[str], str]:
    """A parser accepting one of ``values``."""
    def parse(text: str) -> str:
        if text not in values:
            raise typer.BadParameter(f"invalid choice: {text!r} (choose from {', '.join(values)})")
        return text
    return parse


def given(**fields: Any) -> JSONDict:
    """The fields whose value is not None (the options given on the command line)."""
    return {name: value for name, value in fields.items() if value is not None}


# --------------------------------------------------------------------------- terminal input


def read_secret(stream: TextIO, what: str) -> str:
    """The first line of ``stream`` without its line ending; refuses an empty one."""
    value = stream.readline().rstrip("\r\n")
    if not value:
        raise CliError(f"No {what} on standard input.", code=2)
    return value


def confirm(prompt: str) -> bool:
    """Ask ``prompt`` on the terminal; True for ``y`` / ``yes`` (False without a terminal)."""
    if not sys.stdin.isatty():
        return False
    try:
        answer = input(prompt)
    except EOFError:
        return False
    return answer.strip().lower() in ("y", "yes")
