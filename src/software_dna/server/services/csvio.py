"""CSV export of licenses and activations, CSV import of licenses (all rows or none).

Exports (:func:`export_licenses`, :func:`export_activations`) yield CSV text
in chunks, reading the rows in batches in a session of their own, so a large
table streams without being held in memory.  They carry no personal data (no
e-mail address, no registration detail; a license key only as its last four
characters).  A cell that a spreadsheet would run as a formula (starting with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is prefixed with
``'`` (:func:`safe_cell`).

:func:`import_licenses` reads a CSV with a header row (columns
:data:`IMPORT_COLUMNS`; ``product`` is required), checks every row -- with
the same rules as :func:`~.licenses.issue_license`, which issues each row --
and reports every refused row with its row number (the header is row 1) and
field.  The whole import is one database transaction: each row is issued in a
savepoint, and the transaction commits only when every row was accepted, so
nothing is half-imported.  The new keys are returned once, as the service
never shows a key again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from software_dna.server.models import Activation, License
from software_dna.server.schemas.licenses import expiry_from_text
from software_dna.server.services.common import Context, utcnow
from software_dna.server.services.errors import ServiceError, invalid
from software_dna.server.services.licenses import issue_license
from software_dna.wire.times import format_rfc3339

__all__ = [
    "ACTIVATION_COLUMNS",
    "IMPORT_COLUMNS",
    "LICENSE_COLUMNS",
    "MAX_IMPORT_ROWS",
    "ActivationFilter",
    "ImportResult",
    "ImportedLicense",
    "LicenseFilter",
    "RowError",
    "export_activations",
    "export_licenses",
    "import_licenses",
    "keys_csv",
    "parse_expiry",
    "safe_cell",
]

#: The columns of the licenses export, in order.
LICENSE_COLUMNS = ("id", "product", "key_hint", "kind", "status", "seats", "expires_at",
                   "features", "customer_ref", "order_ref", "created_at")
#: The columns of the activations export, in order.
ACTIVATION_COLUMNS = ("id", "license", "product", "mode", "created_at", "last_seen_at", "os",
                      "sdk_version", "app_version", "removed_at")
#: The columns an import may have (any order, ``product`` required).
IMPORT_COLUMNS = ("product", "kind", "seats", "expires", "expires_after_days", "features",
                  "customer_ref", "order_ref", "notes", "password")
#: The most data rows one import takes.
MAX_IMPORT_ROWS = 10_000
#: The kinds an import issues (a test code has its own tool: ``test-codes``).
IMPORT_KINDS = ("full", "evaluation")
#: Bounds of the license's reference fields (the columns' sizes).
MAX_REF, MAX_NOTES = 100, 2000

_BATCH = 500
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    """``value`` as a CSV cell a spreadsheet will not run as a formula.

    None becomes ``""``; a text starting with ``=``, ``+``, ``-``, ``@``,
    a tab or a carriage return gets a leading ``'``.
    """
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _time(value: datetime | None) -> str:
    return format_rfc3339(value) if value is not None else ""


def _line(cells: Sequence[object]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow([safe_cell(c) for c in cells])
    return out.getvalue()


@dataclass(frozen=True)
class LicenseFilter:
    """Which licenses an export holds (the panel list's filters); None: any."""

    product_id: str | None = None
    status: str | None = None
    kind: str | None = None
    customer_ref: str | None = None
    order_ref: str | None = None

    def apply(self, query: Select[License]) -> Select[License]:
        """``query`` narrowed to these filters."""
        for column, value in ((License.product_id, self.product_id),
                              (License.status, self.status), (License.kind, self.kind),
                              (License.customer_ref, self.customer_ref),
                              (License.order_ref, self.order_ref)):
            if value:
                query = query.where(column == value)
        return query


@dataclass(frozen=True)
class ActivationFilter:
    """Which activations an export holds; ``state``: ``live``, ``removed`` or None (all)."""

    product_id: str | None = None
    license_id: str | None = None
    state: str | None = None

    def apply(self, query: Select[Activation]) -> Select[Activation]:
        """``query`` narrowed to these filters."""
        if self.product_id:
            query = query.where(License.product_id == self.product_id)
        if self.license_id:
            query = query.where(Activation.license_id == self.license_id)
        if self.state == "live":
            query = query.where(Activation.deactivated_at.is_(None))
        elif self.state == "removed":
            query = query.where(Activation.deactivated_at.is_not(None))
        return query


def _batches(sessions: Callable[[], Session], query: Select[Any],
             key: InstrumentedAttribute[str]) -> Iterator[list[Any]]:
    """The rows of ``query`` (ordered by ``key``, a unique column) in batches (keyset paging)."""
    last: str | None = None
    while True:
        session = sessions()
        try:
            page = query if last is None else query.where(key > last)
            rows: list[Any] = list(session.scalars(page.limit(_BATCH)))
            yield rows
        finally:
            session.close()
        if len(rows) < _BATCH:
            return
        last = rows[-1].id


def export_licenses(sessions: Callable[[], Session],
                    filters: LicenseFilter | None = None) -> Iterator[str]:
    """The licenses as CSV (header :data:`LICENSE_COLUMNS`), in chunks of text.

    Args:
        sessions: makes a session (one per batch, closed after it).
        filters: which licenses (default: all).

    Returns:
        An iterator of CSV text (CRLF line ends), the header first.
    """
    yield _line(LICENSE_COLUMNS)
    query = (filters or LicenseFilter()).apply(select(License).order_by(License.id))
    for rows in _batches(sessions, query, License.id):
        chunk = []
        for lic in rows:
            assert isinstance(lic, License)
            chunk.append(_line([
                lic.id, lic.product_id, "\u2026" + lic.key_last4, lic.kind, lic.status,
                lic.seats, _time(lic.expires_at), " ".join(lic.features), lic.customer_ref,
                lic.order_ref, _time(lic.created_at)]))
        if chunk:
            yield "".join(chunk)


def export_activations(sessions: Callable[[], Session],
                       filters: ActivationFilter | None = None) -> Iterator[str]:
    """The activations as CSV (header :data:`ACTIVATION_COLUMNS`), in chunks of text.

    ``mode`` is the mode the activation's token has: ``limited`` after an
    erasure (of the activation or the license), else ``full``.

    Args:
        sessions: makes a session (one per batch, closed after it).
        filters: which activations (default: all).

    Returns:
        An iterator of CSV text (CRLF line ends), the header first.
    """
    yield _line(ACTIVATION_COLUMNS)
    query = (filters or ActivationFilter()).apply(
        select(Activation).join(License, License.id == Activation.license_id)
        .order_by(Activation.id))
    for rows in _batches(sessions, query, Activation.id):
        chunk = []
        for act in rows:
            assert isinstance(act, Activation)
            lic = act.license
            chunk.append(_line([
                act.id, act.license_id, lic.product_id,
                "limited" if act.erased or lic.erased else "full", _time(act.created_at),
                _time(act.last_seen_at), act.client_os, act.sdk_version, act.app_version,
                _time(act.deactivated_at)]))
        if chunk:
            yield "".join(chunk)


@dataclass(frozen=True)
class RowError:
    """A refused cell or row: ``row`` (the header is row 1), the ``field`` and why."""

    row: int
    field: str
    message: str


@dataclass(frozen=True)
class ImportedLicense:
    """A license an import issued: its row, id, product and key (shown once)."""

    row: int
    license_id: str
    product_id: str
    license_key: str


@dataclass
class ImportResult:
    """What :func:`import_licenses` did: every license issued, or every refusal.

    ``errors`` empty: all rows were imported (``licenses``); otherwise
    nothing was (``licenses`` is empty).
    """

    licenses: list[ImportedLicense] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows: int = 0

    @property
    def ok(self) -> bool:
        """True when every row was imported."""
        return not self.errors


@dataclass(frozen=True)
class _Row:
    number: int
    product: str
    kind: str
    seats: int
    expires_at: datetime | None
    expires_after_days: int | None
    features: list[str] | None
    customer_ref: str | None
    order_ref: str | None
    notes: str | None
    password: str | None


def parse_expiry(text: str, *, now: datetime | None = None) -> datetime | None:
    """An expiry typed by a vendor: empty (none), a plain date or an RFC 3339 time.

    The same rule as the admin API, the CLI and the panel
    (:func:`software_dna.server.schemas.licenses.expiry_from_text`): a plain
    date ``2027-06-30`` means valid through that day (the license ends at
    ``2027-07-01T00:00:00Z``).

    Raises:
        ServiceError: 400 ``invalid_request``: neither form, or in the past.
    """
    text = text.strip()
    if not text:
        return None
    try:
        when = expiry_from_text(text)
    except ValueError:
        raise invalid("Give a date (2027-06-30) or an RFC 3339 time "
                      "(2027-06-30T12:00:00Z).") from None
    if when <= (now or utcnow()):
        raise invalid("This date is in the past: a license would be expired at once.")
    return when


def _bounded(values: dict[str, str], name: str, limit: int,
             errors: list[RowError], number: int) -> str | None:
    text = values.get(name, "").strip()
    if len(text) > limit:
        errors.append(RowError(number, name, f"At most {limit} characters."))
    elif any(not ch.isprintable() for ch in text.replace("\n", "")):
        errors.append(RowError(number, name, "Control characters are not allowed."))
    return text or None


def _whole(text: str) -> bool:
    """ASCII digits only, at most 9 (``isdigit`` alone lets "²" and 5,000 digits through)."""
    return text.isascii() and text.isdigit() and len(text) <= 9


def _parse_row(number: int, values: dict[str, str], errors: list[RowError]) -> _Row | None:
    """One data row checked cell by cell (the service checks the rest when issuing)."""
    before = len(errors)
    product = values.get("product", "").strip()
    if not product:
        errors.append(RowError(number, "product", "A product id is required."))
    kind = values.get("kind", "").strip().lower() or "full"
    if kind not in IMPORT_KINDS:
        errors.append(RowError(number, "kind", f"Use one of: {', '.join(IMPORT_KINDS)}."))
    seats_text = values.get("seats", "").strip() or "1"
    seats = 0
    if not _whole(seats_text) or not 1 <= (seats := int(seats_text)) <= 100_000:
        errors.append(RowError(number, "seats", "A whole number from 1 to 100000."))
    expires_at: datetime | None = None
    try:
        expires_at = parse_expiry(values.get("expires", ""))
    except ServiceError as exc:
        errors.append(RowError(number, "expires", exc.message))
    days_text = values.get("expires_after_days", "").strip()
    expires_after_days: int | None = None
    if days_text and (not _whole(days_text)
                      or not 1 <= (expires_after_days := int(days_text)) <= 3650):
        errors.append(RowError(number, "expires_after_days",
                               "A whole number of days from 1 to 3650."))
    raw_features = values.get("features", "").replace(";", " ").split()
    features = raw_features or None
    customer_ref = _bounded(values, "customer_ref", MAX_REF, errors, number)
    order_ref = _bounded(values, "order_ref", MAX_REF, errors, number)
    notes = _bounded(values, "notes", MAX_NOTES, errors, number)
    password = values.get("password", "") or None
    if len(errors) > before:
        return None
    return _Row(number, product, kind, seats, expires_at, expires_after_days, features,
                customer_ref, order_ref, notes, password)


def _read_rows(text: str, result: ImportResult) -> list[_Row]:
    """The CSV's data rows, checked; refusals go to ``result.errors``."""
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
    except StopIteration:
        result.errors.append(RowError(1, "header", "The file is empty: the first row names "
                                      "the columns (product, kind, seats, expires, ...)."))
        return []
    except csv.Error as exc:
        result.errors.append(RowError(1, "header", f"Not CSV: {exc}."))
        return []
    unknown = [n for n in header if n not in IMPORT_COLUMNS]
    if unknown or "product" not in header or len(set(header)) != len(header):
        result.errors.append(RowError(1, "header", (
            f"Unknown column(s): {', '.join(unknown)}. " if unknown else "") + (
            "Each column once. " if len(set(header)) != len(header) else "") +
            "The columns are " + ", ".join(IMPORT_COLUMNS) + " (product required)."))
        return []
    rows: list[_Row] = []
    try:
        for cells in reader:
            number = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line
            result.rows += 1
            if result.rows > MAX_IMPORT_ROWS:
                result.errors.append(RowError(number, "file", f"At most {MAX_IMPORT_ROWS} rows "
                                              "per import: split the file."))
                return []
            if len(cells) != len(header):
                result.errors.append(RowError(number, "row", f"{len(cells)} cells; the header "
                                              f"has {len(header)}."))
                continue
            parsed = _parse_row(number, dict(zip(header, cells, strict=True)), result.errors)
            if parsed is not None:
                rows.append(parsed)
    except csv.Error as exc:
        result.errors.append(RowError(reader.line_num, "row", f"Not CSV: {exc}."))
    if result.rows == 0 and not result.errors:
        result.errors.append(RowError(2, "file", "No rows to import under the header."))
    return rows


def import_licenses(engine: Engine, ctx: Context, text: str, *,
                    actor: str = "admin") -> ImportResult:
    """Issue one license per CSV row, all in one transaction, or none.

    Args:
        engine: the database (the import opens its own connection and transaction).
        ctx: the service context (the vault hashes the keys).
        text: the CSV, header first (:data:`IMPORT_COLUMNS`).
        actor: the audit log's actor of every ``license.issue``.

    Returns:
        An :class:`ImportResult`: every license with its key when all rows
        were accepted, else every refusal (row number, field, message) and
        nothing written.
    """
    result = ImportResult()
    rows = _read_rows(text, result)
    if any(e.field in {"header", "file"} for e in result.errors) or not rows:
        return result
    with engine.connect() as conn:
        outer = conn.begin()
        # Each issue_license() commit ends only a savepoint of this transaction.
        session = Session(bind=conn, join_transaction_mode="create_savepoint",
                          expire_on_commit=False)
        try:
            issued: list[ImportedLicense] = []
            for row in rows:
                try:
                    lic, key = issue_license(
                        session, ctx, product_id=row.product, seats=row.seats,
                        expires_at=row.expires_at, duration_days=row.expires_after_days,
                        features=row.features, password=row.password, kind=row.kind,
                        customer_ref=row.customer_ref, order_ref=row.order_ref,
                        notes=row.notes, actor=actor)
                except ServiceError as exc:
                    session.rollback()  # to the row's savepoint
                    name = (exc.details or {}).get("field") or (
                        "product" if (exc.details or {}).get("kind") == "product" else "row")
                    result.errors.append(RowError(row.number, str(name), exc.message))
                    continue
                session.commit()  # the savepoint
                issued.append(ImportedLicense(row.number, lic.id, lic.product_id, key))
            if result.errors:
                outer.rollback()
                result.errors.sort(key=lambda e: e.row)
                return result
            outer.commit()
            result.licenses = issued
            return result
        finally:
            session.close()
            if outer.is_active:
                outer.rollback()


def keys_csv(licenses: Sequence[ImportedLicense]) -> str:
    """The keys of an import as CSV (row, license id, product, key) for the vendor to keep."""
    return _line(("row", "license_id", "product", "license_key")) + "".join(
        _line((lic.row, lic.license_id, lic.product_id, lic.license_key)) for lic in licenses)
