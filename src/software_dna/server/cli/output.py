"""What ``software-dna`` prints: ``--json`` documents and the human-readable views.

``--json`` documents (:func:`print_json`) and the human-readable lines,
tables and ``key: value`` blocks (:func:`print_line`, :func:`print_table`,
:func:`print_fields`), the views of a product and a license
(:func:`show_product`, :func:`show_license`), and the ``--json`` or human
choice every command makes (:func:`print_result`, :func:`print_listing`).

Everything printed takes the admin API's JSON shapes, whichever backend
produced them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

from software_dna.server.cli._common import JSONDict

__all__ = [
    "activation_state",
    "format_duration",
    "format_expiry",
    "format_list",
    "format_seats",
    "format_value",
    "license_seat_lines",
    "print_fields",
    "print_json",
    "print_line",
    "print_listing",
    "print_result",
    "print_table",
    "product_seat_lines",
    "sharing_flag",
    "show_license",
    "show_product",
]


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


def _limit(value: Any) -> str:
    return "off" if value is None else str(value)


def product_seat_lines(p: JSONDict) -> list[tuple[str, Any]]:
    """The seat policy lines of ``products show``."""
    if "lease_duration" not in p:
        return []
    return [
        ("lease time", format_duration(p.get("lease_duration"))),
        ("re-activations", "no lock-out" if p.get("reactivation_limit") is None else
         f"{p.get('reactivation_limit')} per {format_duration(p.get('reactivation_period'))} "
         "on top of the seats"),
        ("per-address limit", _limit(p.get("address_activation_limit"))),  # keys <= 21 chars
        *([("re-binds", "unbounded" if p.get("rebind_limit") is None else
            f"{p.get('rebind_limit')} per {format_duration(p.get('rebind_period'))}"),
           ("sharing policy", p.get("sharing_policy"))] if "sharing_policy" in p else []),
    ]


def license_seat_lines(lic: JSONDict) -> list[tuple[str, Any]]:
    """The seat lines of ``licenses show``."""
    if "seat_mode" not in lic:
        return []
    return [("seat mode", str(lic.get("seat_mode"))
             + (", roll-over" if lic.get("rollover") else ""))]


def _air_gap_line(p: JSONDict) -> str:
    """``products show``: whether air-gapped activation is allowed, and its tokens' lifetime."""
    if not p.get("air_gapped"):
        return "off"
    if p.get("air_gapped_perpetual"):
        return "on (tokens never end)"
    return f"on (tokens last {p.get('air_gapped_token_days')} days)"


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
        ("air-gapped activation", _air_gap_line(p)),
        *product_seat_lines(p),
        ("payment grace", f"{p.get('payment_grace_days', 14)} days"),
        ("reminder days", p.get("reminder_days")),
        ("branding", ", ".join(f"{k}={v}" for k, v in sorted((p.get("branding") or {}).items()))
         or "none"),
        ("portal releases", _portal_release_line(p)),
        ("created", p.get("created_at")),
        ("updated", p.get("updated_at")),
    ])


def _portal_release_line(p: JSONDict) -> str:
    """How many computers a license holder may free in the license portal."""
    limit, days = p.get("portal_release_limit"), p.get("portal_release_days", 30)
    if limit is None:
        return "no limit"
    if limit == 0:
        return "none (only the vendor frees computers)"
    return f"{limit} per {days} days per license"


def format_seats(lic: JSONDict) -> str:
    """``seats in use/seats`` of a license."""
    return f"{lic.get('seats_in_use', '?')}/{lic.get('seats', '?')}"


def format_expiry(lic: JSONDict) -> str:
    """When a license ends: its time, ``N days after the first activation``, or ``never``."""
    if lic.get("expires_at"):
        return str(lic["expires_at"])
    if lic.get("expires_after_days"):
        return f"{lic['expires_after_days']} days after the first activation"
    return "never"


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
        ("expires", format_expiry(lic)),
        ("features", lic.get("features")),
        *license_seat_lines(lic),
        ("air-gapped", "on" if lic.get("air_gapped") is True
         else "off" if lic.get("air_gapped") is False else "the product's setting"),
        ("password", guard),
        ("buyer", lic.get("buyer_id") or "none"),
        *[(label, lic[name]) for label, name in (("customer", "customer_ref"),
                                                  ("order", "order_ref"), ("notes", "notes"))
          if lic.get(name)],
        *([("payment failed", f"{lic['payment_failed_at']} (grace period running)")]
          if lic.get("payment_failed_at") else []),
        ("erased", lic.get("erased")),
        ("created", lic.get("created_at")),
        ("updated", lic.get("updated_at")),
    ])


def activation_state(a: JSONDict) -> str:
    """``active``, ``active (air-gapped)``, ``removed`` (by the vendor) or ``deactivated``."""
    if a.get("deactivated_at") is None:
        return "active (air-gapped)" if a.get("offline") else "active"
    by = a.get("deactivated_by")
    if by == "sharing":
        return "suspended (shared)"
    return "removed" if by == "vendor" else "deactivated"


def sharing_flag(a: JSONDict) -> str:
    """``-``, or why and when the activation was flagged as used on two computers."""
    reason = a.get("shared_reason")
    return "-" if not reason else f"{reason} ({a.get('shared_at')})"
