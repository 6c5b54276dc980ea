"""What the vendor CLI reads and prints: argument types, terminal input, output.

* argparse types of the vendor commands' options (:func:`duration`,
  :func:`feature_list`, :func:`rfc3339`, :func:`expiry`, :func:`positive_int`,
  :func:`non_negative_int`) and :func:`options_given`, the options given on
  the command line as the admin API's fields;
* terminal input: :func:`read_secret` (a password on stdin),
  :func:`confirm` (a yes/no question);
* output: ``--json`` documents (:func:`print_json`) and the human-readable
  lines, tables and ``key: value`` blocks (:func:`print_line`,
  :func:`print_table`, :func:`print_fields`), the views of a product and a
  license (:func:`show_product`, :func:`show_license`), and the ``--json``
  or human choice every command makes (:func:`print_result`,
  :func:`print_listing`).

Everything printed takes the admin API's JSON shapes, whichever backend
(:mod:`software_dna.server.cli_backends`) produced them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from software_dna.server.cli_backends import CliError, JSONDict

__all__ = [
    "activation_state",
    "confirm",
    "duration",
    "expiry",
    "feature_list",
    "format_duration",
    "format_list",
    "format_seats",
    "format_value",
    "non_negative_int",
    "options_given",
    "positive_int",
    "print_fields",
    "print_json",
    "print_line",
    "print_listing",
    "print_result",
    "print_table",
    "read_secret",
    "rfc3339",
    "show_license",
    "show_product",
]


# =========================================================================== argument types


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
    from software_dna.wire.times import format_rfc3339, parse_rfc3339

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


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """An integer >= 0 (argparse type)."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def options_given(args: argparse.Namespace, *names: str, **renamed: str) -> JSONDict:
    """The options of ``args`` that were given (not None), keyed by the API's field names.

    ``names`` are fields named like their option; ``renamed`` maps an option
    to the field it fills (``options_given(args, "seats", prefix="key_prefix")``).
    """
    fields: JSONDict = {}
    for attr, field in [*((name, name) for name in names), *renamed.items()]:
        value = getattr(args, attr, None)
        if value is not None:
            fields[field] = value
    return fields


# =========================================================================== terminal input


def read_secret(stream: TextIO, what: str) -> str:
    """The first line of ``stream`` without its line ending; refuses an empty one."""
    line = stream.readline()
    value = line.rstrip("\r\n")
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


# =========================================================================== output


def print_line(text: str = "") -> None:
    """One line of human-readable output on stdout."""
    print(text, file=sys.stdout)


def print_json(data: Any) -> None:
    """A ``--json`` document on stdout."""
    print(json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False))


def format_duration(seconds: Any) -> str:
    """``604800`` -> ``604800 s (7d)``."""
    if not isinstance(seconds, int):
        return str(seconds)
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds} s ({seconds // size}{unit})"
    return f"{seconds} s"


def format_list(items: Any) -> str:
    """``["a", "b"]`` -> ``a,b``; nothing -> ``-``."""
    if not items:
        return "-"
    return ",".join(str(i) for i in items)


def format_value(value: Any) -> str:
    """A JSON value as a table cell: ``-`` for nothing, ``yes`` / ``no``, lists comma-separated."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return format_list(value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, ensure_ascii=False) if value else "-"
    return str(value)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Columns padded to their widest cell (cells as :func:`format_value` shows them)."""
    cells = [[format_value(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = [list(headers), *cells]
    for row in lines:
        print_line("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def print_fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """``key: value`` lines, the values aligned (strings as they are, others as cells)."""
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print_line(f"{key + ':':<{width + 1}} "
                   f"{value if isinstance(value, str) else format_value(value)}")


def print_result(data: Any, *, as_json: bool, headline: str | None = None,
                 show: Callable[[Any], None] | None = None) -> None:
    """``data`` as JSON (``--json``); else ``headline``, then ``show(data)``."""
    if as_json:
        print_json(data)
        return
    if headline is not None:
        print_line(headline)
    if show is not None:
        show(data)


def print_listing(document: JSONDict, key: str, *, as_json: bool, empty: str,
                  headers: Sequence[str], row: Callable[[JSONDict], Sequence[Any]]) -> None:
    """A list answer: ``document`` as JSON (``--json``), else a table of ``document[key]``.

    ``row`` makes the table row of one item; with no items the line ``empty``
    is printed instead.
    """
    items = document.get(key) or []
    if as_json:
        print_json(document)
    elif not items:
        print_line(empty)
    else:
        print_table(headers, [row(item) for item in items])


def _seat_lines(name: str, obj: JSONDict) -> list[tuple[str, Any]]:
    """Seat lines of ``products show`` / ``licenses show`` (cli_seats.py)."""
    from software_dna.server import cli_seats

    lines: list[tuple[str, Any]] = getattr(cli_seats, name)(obj)
    return lines


def show_product(p: JSONDict) -> None:
    """A product and its policy (``products show``)."""
    print_fields([
        ("id", p.get("id")),
        ("name", p.get("name")),
        ("protection", p.get("protection")),
        ("refresh interval", format_duration(p.get("refresh_interval"))),
        ("offline grace period", format_duration(p.get("offline_grace_period"))),
        ("token lifetime", format_duration(p.get("token_lifetime"))),
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


def format_seats(lic: JSONDict) -> str:
    """``seats in use/seats`` of a license."""
    return f"{lic.get('seats_in_use', '?')}/{lic.get('seats', '?')}"


def show_license(lic: JSONDict) -> None:
    """A license (``licenses show``): status, seats, kind, expiry, features, password."""
    guard = "set" if lic.get("password_set") else "none"
    if lic.get("password_reset_required"):
        guard = "reset required (set one with `licenses password`)"
    print_fields([
        ("id", lic.get("id")),
        ("product", lic.get("product")),
        ("key", lic.get("key_hint")),
        ("status", lic.get("status")),
        ("seats in use", format_seats(lic)),
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


def activation_state(a: JSONDict) -> str:
    """``active``, ``active (air-gapped)``, ``removed`` (by the vendor) or ``deactivated``."""
    if a.get("deactivated_at") is None:
        return "active (air-gapped)" if a.get("offline") else "active"
    by = a.get("deactivated_by")
    return "removed" if by == "vendor" else "deactivated"
