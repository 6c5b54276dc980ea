"""Licenses in the panel: search, issue (one or in bulk), a license's page and its actions.

A license key is shown once: on the page that answers the issue (or the
rekey) post, with a CSV of the new keys offered there only (the page posts
the keys back to :func:`issued_csv`, which checks each one against its
license).  Searching by a full key is a form post too, so the key never
lands in a URL (browser history, access logs).

Permissions: every page READ; changes LICENSES; lifting lock-outs LOCKOUTS;
restoring full mode after an erasure ERASE.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from software_dna.server import services
from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import Permission
from software_dna.server.domain.terms import ISSUABLE_KINDS
from software_dna.server.models import License, Product
from software_dna.server.panel.web import (
    ACTOR,
    HEADERS,
    PanelError,
    PanelRoute,
    Posted,
    Staff,
    field_errors,
    paginate,
    poster,
    query_string,
    render,
    see_other,
    viewer,
)
from software_dna.server.schemas.licenses import (
    CUSTOMER_REF_MAX,
    NOTES_MAX,
    ORDER_REF_MAX,
    expiry_from_text,
    looks_like_full_key,
)
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.licenses import MAX_SEATS, buyer_on_file, rekey_license
from software_dna.server.services.lockouts import lockout_report, reset_lockouts
from software_dna.server.services.renewals import issue_renewal_codes, list_renewal_codes
from software_dna.wire.codes import Code

__all__ = ["MAX_BULK", "parse_end", "router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

#: At most this many licenses in one bulk issue.
MAX_BULK = 100
STATUSES = ("active", "suspended", "revoked")
KINDS = ("full", "trial", "evaluation", "test")
_REF_HELP = ("Your own reference, for searching. Not personal data by design: "
             "put no names or addresses here.")


def parse_end(text: str, field: str) -> datetime | None:
    """A typed end: '' is none; ``YYYY-MM-DD`` is through that day (UTC); or RFC 3339.

    Raises:
        ServiceError: 400 ``invalid_request`` naming ``field``.
    """
    if not text.strip():
        return None
    try:
        return expiry_from_text(text)
    except ValueError as exc:
        raise ServiceError(Code.INVALID_REQUEST, str(exc), details={"field": field}) from None


def _int(text: str, field: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ServiceError(Code.INVALID_REQUEST, f"A whole number from {low} to {high}.",
                           details={"field": field})
    return value


def _features(text: str) -> list[str]:
    return [f.strip() for f in text.replace("\n", ",").split(",") if f.strip()]


def _products(session: Db) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.id)))


# --------------------------------------------------------------------------- the list


@router.get("/licenses")
def licenses_page(request: Request, session: Db, state: State,
                  staff: Annotated[Staff, Depends(viewer(Permission.READ))], *,
                  q: str = "", product: str = "", status: str = "", kind: str = "",
                  page: int = 1) -> Response:
    """Licenses, newest first: search ``q`` and filters by product, status and kind."""
    if q and looks_like_full_key(q):
        # A key in an address lands in proxy logs and browser history: refused, as the
        # admin API does; the search box posts it instead.
        raise PanelError(400, "Not in the address", "A full license key is never put in a "
                         "page's address (it would be kept in logs and the browser's "
                         "history). Type it in the search box of the licenses page.")
    if "@" in q:
        raise PanelError(400, "Not in the address", "An email address is never put in a "
                         "page's address (it would be kept in logs and the browser's "
                         "history). Type it in the search box of the licenses page.")
    return _list(request, session, state, staff, q=q, product=product, status=status,
                 kind=kind, page=page)


def _list(request: Request, session: Db, state: State, staff: Staff, *, q: str, product: str,
          status: str, kind: str, page: int, key: str = "", status_code: int = 200
          ) -> Response:
    """The list page; ``key``: a full key that found nothing (searched, never shown).

    Searching by an email address tells whether that person holds a license:
    only a role allowed personal data may do it.
    """
    if "@" in q and not staff.can(Permission.PERSONAL_DATA):
        raise PanelError(403, "Not allowed", "Searching by email address needs the "
                         "personal-data permission; search by key, reference or id instead.")
    found = services.search_licenses(
        session, state.ctx, q=key or q, product_id=product or None,
        status=status if status in STATUSES else None, kind=kind if kind in KINDS else None)
    rows = paginate(session, found.query, page)
    used = {lic.id: services.seats_in_use(session, lic.id) for lic in rows.items}
    # An email search is answered from its post (the address never goes in a link):
    # its pages after the first are the list's, without the search.
    params = query_string(q="" if "@" in q else q, product=product, status=status, kind=kind)
    return render(request, "licenses.html", staff, status=status_code, page=rows, used=used,
                  q=q, product=product, status_filter=status, kind=kind,
                  products=_products(session), statuses=STATUSES, kinds=KINDS,
                  params="&" + params[1:] if params else "", matched=found.matched,
                  export_params=query_string(product=product, status=status, kind=kind),
                  not_found_key=bool(key))


@router.post("/licenses/search")
def search_post(request: Request, session: Db, state: State,
                posted: Annotated[Posted, Depends(poster(Permission.READ))]) -> Response:
    """The search box: a full key goes straight to its license (it stays out of URLs);
    anything else becomes the list's ``q``."""
    q = posted.get("q")[:200]
    filters = {"product": posted.get("product"), "status": posted.get("status"),
               "kind": posted.get("kind")}
    if looks_like_full_key(q):
        found = services.search_licenses(session, state.ctx, q=q)
        if found.exact is not None:
            return see_other(request, f"/panel/licenses/{found.exact.id}")
        return _list(request, session, state, posted.staff, q="", key=q, page=1,
                     status_code=404, **filters)
    if q.startswith("lic_") and session.get(License, q) is not None:
        return see_other(request, f"/panel/licenses/{q}")  # an id names one license
    if "@" in q:
        # An end user's address stays out of addresses too: the results are this page
        # (its first page; the pages after it are the list's, without the search).
        return _list(request, session, state, posted.staff, q=q, page=1,
                     product=filters["product"], status=filters["status"],
                     kind=filters["kind"])
    return see_other(request, "/panel/licenses" + query_string(q=q, **filters))


# --------------------------------------------------------------------------- issuing


def _issue_form(request: Request, session: Db, staff: Staff, *, values: dict[str, str],
                errors: dict[str, str], status: int = 200) -> Response:
    return render(request, "licenses_new.html", staff, status=status, values=values,
                  errors=errors, products=_products(session), kinds=ISSUABLE_KINDS,
                  max_bulk=MAX_BULK, ref_help=_REF_HELP, customer_max=CUSTOMER_REF_MAX,
                  order_max=ORDER_REF_MAX, notes_max=NOTES_MAX)


@router.get("/licenses/new")
def new_page(request: Request, session: Db,
             staff: Annotated[Staff, Depends(viewer(Permission.LICENSES))],
             product: str = "") -> Response:
    """The form to issue one license, or several alike."""
    return _issue_form(request, session, staff, values={"product": product, "count": "1",
                                                         "seats": "1", "kind": "full"},
                       errors={})


@router.post("/licenses/new")
def new_post(request: Request, session: Db, state: State,
             posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Issue ``count`` licenses alike; the answer shows their keys, this once."""
    values = {name: posted.get(name) for name in (
        "product", "count", "seats", "kind", "expires", "duration", "features", "customer_ref",
        "order_ref")}
    values["notes"] = posted.values.get("notes", "")
    values["allow_past"] = "on" if posted.get("allow_past") else ""
    values["default_features"] = "on" if posted.get("default_features") else ""
    password = posted.values.get("password", "")
    try:
        count = _int(values["count"], "count", 1, MAX_BULK)
        seats = _int(values["seats"], "seats", 1, MAX_SEATS)
        expires = parse_end(values["expires"], "expires")
        duration = (_int(values["duration"], "duration", 1, 3650)
                    if values["duration"] else None)
        kind = values["kind"] if values["kind"] in ISSUABLE_KINDS else "full"
        services.get_product(session, values["product"])
        services.check_expiry(expires, allow_past=bool(values["allow_past"]), field="expires")
        features = None if values["default_features"] else _features(values["features"])
        issued: list[tuple[License, str]] = []
        for _ in range(count):
            issued.append(services.issue_license(
                session, state.ctx, product_id=values["product"], seats=seats,
                expires_at=expires, features=features, password=password or None,
                actor=ACTOR, kind=kind, duration_days=duration,
                customer_ref=values["customer_ref"] or None,
                order_ref=values["order_ref"] or None, notes=values["notes"] or None,
                allow_past=True))  # checked above, with the form's field name
    except ServiceError as exc:
        session.rollback()
        errors = field_errors(exc)
        if (exc.details or {}).get("kind") == "product":
            errors = {"product": exc.message}
        return _issue_form(request, session, posted.staff, values=values, errors=errors,
                           status=400)
    return render(request, "licenses_issued.html", posted.staff,
                  issued=[(lic, key) for lic, key in issued], title="Licenses issued"
                  if count > 1 else "License issued")


@router.post("/licenses/new/keys.csv")
def issued_csv(session: Db, state: State,
               posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """The keys just issued, as CSV: posted back by the issue page (never stored).

    Each posted key must be the key of the license it is paired with; a key
    that is not is refused (nothing is echoed that the server did not issue).
    """
    ids, keys = posted.all("license_id"), posted.all("license_key")
    if not ids or len(ids) != len(keys) or len(ids) > MAX_BULK:
        raise PanelError(400, "Nothing to download", "This download is offered only on the "
                         "page that shows new keys.")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["license_id", "product", "license_key", "expires_at", "customer_ref",
                     "order_ref"])
    for license_id, key in zip(ids, keys, strict=True):
        lic = services.find_license_by_key(session, state.ctx, key)
        if lic is None or lic.id != license_id:
            raise PanelError(400, "Not a new key", "A key in this download does not belong "
                             "to its license. Nothing was downloaded.")
        writer.writerow([lic.id, lic.product_id, key,
                         lic.expires_at.isoformat() if lic.expires_at else "",
                         _csv_cell(lic.customer_ref), _csv_cell(lic.order_ref)])
    headers = {**HEADERS, "Content-Disposition": 'attachment; filename="new-license-keys.csv"'}
    return Response(out.getvalue(), media_type="text/csv; charset=utf-8", headers=headers)


def _csv_cell(value: str | None) -> str:
    """A cell a spreadsheet will not run as a formula."""
    text = value or ""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# --------------------------------------------------------------------------- one license


def _detail(request: Request, session: Db, state: State, staff: Staff, license_id: str, *,
            errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
            status: int = 200, shown: dict[str, Any] | None = None) -> Response:
    lic = services.get_license(session, license_id)
    activations = services.list_activations(session, lic.id)
    codes = list_renewal_codes(session, license_id=lic.id, limit=50)
    lockouts = lockout_report(session, state.ctx, lic.id) if staff.can(Permission.LOCKOUTS) \
        else None
    # The form shows the last valid day: an end at 00:00 UTC is "through" the day before.
    through = ((lic.expires_at - timedelta(microseconds=1)).strftime("%Y-%m-%d")
               if lic.expires_at else "")
    return render(request, "licenses_detail.html", staff, status=status, lic=lic,
                  through=through,
                  used=services.seats_in_use(session, lic.id), activations=activations,
                  codes=codes, lockouts=lockouts, errors=errors or {}, values=values or {},
                  ref_help=_REF_HELP, customer_max=CUSTOMER_REF_MAX, order_max=ORDER_REF_MAX,
                  notes_max=NOTES_MAX, shown=shown or {})


@router.get("/licenses/{license_id}")
def detail_page(request: Request, session: Db, state: State, license_id: str,
                staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """A license: its facts, its activations (with the mode each token has), its renewal
    codes, and the actions the staff member's role allows."""
    return _detail(request, session, state, staff, license_id)


def _refused(request: Request, session: Db, state: State, posted: Posted, *,
             license_id: str, exc: ServiceError, field: str) -> Response:
    session.rollback()
    if exc.code.status == 404:
        raise exc
    return _detail(request, session, state, posted.staff, license_id,
                   errors=field_errors(exc, default=field), values=posted.values, status=400)


@router.post("/licenses/{license_id}/refs")
def refs_post(request: Request, session: Db, state: State, license_id: str,
              posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Set the customer reference, the order reference and the notes ('' clears one)."""
    try:
        services.update_license(session, license_id, actor=ACTOR,
                                customer_ref=posted.get("customer_ref"),
                                order_ref=posted.get("order_ref"),
                                notes=posted.values.get("notes", ""))
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="customer_ref")
    return see_other(request, f"/panel/licenses/{license_id}", "References saved.")


@router.post("/licenses/{license_id}/seats")
def seats_post(request: Request, session: Db, state: State, license_id: str,
               posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Set the number of seats (lowering keeps existing activations working)."""
    try:
        seats = _int(posted.get("seats"), "seats", 1, MAX_SEATS)
        services.update_license(session, license_id, actor=ACTOR, seats=seats)
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="seats")
    return see_other(request, f"/panel/licenses/{license_id}", f"Seats set to {seats}.")


@router.post("/licenses/{license_id}/expiry")
def expiry_post(request: Request, session: Db, state: State, license_id: str,
                posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Set the end (a date: through that day, UTC) or, left empty, make it never end."""
    try:
        end = parse_end(posted.get("expires"), "expires")
        services.check_expiry(end, allow_past=bool(posted.get("allow_past")), field="expires")
        services.update_license(session, license_id, actor=ACTOR, expires_at=end)
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="expires")
    return see_other(request, f"/panel/licenses/{license_id}",
                     f"The license now ends {end:%Y-%m-%d %H:%M} UTC." if end
                     else "The license now never ends.")


@router.post("/licenses/{license_id}/extend")
def extend_post(request: Request, session: Db, state: State, license_id: str,
                posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Add days to a timed license (from its end, or from now if it already ended)."""
    try:
        days = _int(posted.get("days"), "days", 1, 3650)
        services.extend_license(session, license_id, days=days, actor=ACTOR)
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="days")
    return see_other(request, f"/panel/licenses/{license_id}", f"Extended by {days} day(s).")


@router.post("/licenses/{license_id}/features")
def features_post(request: Request, session: Db, state: State, license_id: str,
                  posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Set the features (comma-separated; empty: none)."""
    try:
        services.update_license(session, license_id, actor=ACTOR,
                                features=_features(posted.get("features")))
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="features")
    return see_other(request, f"/panel/licenses/{license_id}", "Features saved.")


@router.post("/licenses/{license_id}/password")
def password_post(request: Request, session: Db, state: State, license_id: str,
                  posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Set the activation password, or clear it (``clear``)."""
    clear = bool(posted.get("clear"))
    password = posted.values.get("password", "")
    try:
        if not clear and not password:
            raise ServiceError(Code.INVALID_REQUEST, "Type the new password (or clear it).",
                               details={"field": "password"})
        services.set_license_password(session, license_id, None if clear else password,
                                      actor=ACTOR)
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="password")
    return see_other(request, f"/panel/licenses/{license_id}",
                     "Activation password removed." if clear else "Activation password set.")


@router.post("/licenses/{license_id}/resume")
def resume_post(request: Request, session: Db, license_id: str,
                posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """Resume a suspended license."""
    services.resume_license(session, license_id, actor=ACTOR)
    return see_other(request, f"/panel/licenses/{license_id}", "License resumed.")


@router.post("/licenses/{license_id}/lockouts")
def lockouts_post(request: Request, session: Db, state: State, license_id: str,
                  posted: Annotated[Posted, Depends(poster(Permission.LOCKOUTS))]) -> Response:
    """Lift every lock-out and limit counter of the license."""
    services.get_license(session, license_id)
    reset_lockouts(session, state.ctx, license_id=license_id, actor=ACTOR)
    return see_other(request, f"/panel/licenses/{license_id}", "Lock-outs lifted.")


@router.post("/licenses/{license_id}/renewal-codes")
def renewal_codes_post(request: Request, session: Db, state: State, license_id: str,
                       posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]
                       ) -> Response:
    """Make renewal codes bound to this license; they are shown this once."""
    try:
        days = _int(posted.get("code_days"), "code_days", 1, 3650)
        count = _int(posted.get("code_count") or "1", "code_count", 1, 100)
        made = issue_renewal_codes(session, state.ctx, days=days, license_id=license_id,
                                   count=count, actor=ACTOR)
    except ServiceError as exc:
        return _refused(request, session, state, posted, license_id=license_id, exc=exc,
                        field="code_days")
    return _detail(request, session, state, posted.staff, license_id,
                   shown={"codes": [(row, code) for row, code in made]})


# --------------------------------------------------------------------------- confirmed actions

#: action -> (permission, title, what happens, button, notice)
_CONFIRMED: dict[str, tuple[Permission, str, str, str, str]] = {
    "suspend": (Permission.LICENSES, "Suspend this license?",
                "Every app using it is refused at its next check, until you resume the "
                "license. Nothing else changes.", "Suspend the license", "License suspended."),
    "revoke": (Permission.LICENSES, "Revoke this license?",
               "Every app using it stops at its next check; this cannot be undone (a revoked "
               "license cannot be resumed: you would have to issue a new one).",
               "Revoke the license for good", "License revoked."),
    "restore": (Permission.ERASE, "Restore full mode?",
                "After an erasure the license runs in limited mode (the product's limited "
                "features) until you restore it. Restoring gives its activations full tokens "
                "again at their next check. The erased personal data stays erased.",
                "Restore full mode", "Full mode restored."),
    "rekey": (Permission.LICENSES, "Give this license a new key?",
              "The old key stops activating at once; machines already activated keep "
              "working. The new key is shown once, on the next page, and mailed to the buyer "
              "on file if there is one.", "Make a new key", ""),
}


def _confirm_page(request: Request, session: Db, staff: Staff, license_id: str,
                  action: str) -> Response:
    lic = services.get_license(session, license_id)
    _permission, title, what, button, _notice = _CONFIRMED[action]
    return render(request, "licenses_confirm.html", staff, lic=lic, action=action,
                  title=title, what=what, button=button)


def _confirmed(request: Request, session: Db, state: State, posted: Posted, *,
               license_id: str, action: str) -> Response:
    notice = _CONFIRMED[action][4]
    if action == "suspend":
        services.suspend_license(session, license_id, actor=ACTOR)
    elif action == "revoke":
        services.revoke_license(session, license_id, actor=ACTOR)
    elif action == "restore":
        services.restore_license(session, license_id, actor=ACTOR)
    else:
        lic, key = rekey_license(session, state.ctx, license_id, actor=ACTOR)
        mailed = buyer_on_file(session, lic) is not None
        return render(request, "licenses_issued.html", posted.staff, issued=[(lic, key)],
                      title="New key", rekeyed=True, mailed=mailed)
    return see_other(request, f"/panel/licenses/{license_id}", notice)


def _confirmation_routes(action: str, permission: Permission) -> None:
    """``GET`` (the confirmation page) and ``POST`` (the action) of one :data:`_CONFIRMED`.

    The dependencies are default values, not ``Annotated`` hints: the hints are
    strings (``from __future__ import annotations``) that FastAPI resolves in the
    module's globals, where ``permission`` does not exist.
    """
    def page(request: Request, session: Db, license_id: str,
             staff: Staff = Depends(viewer(permission))) -> Response:  # noqa: B008
        return _confirm_page(request, session, staff, license_id, action)

    def post(request: Request, session: Db, state: State, license_id: str,
             posted: Posted = Depends(poster(permission))) -> Response:  # noqa: B008
        return _confirmed(request, session, state, posted, license_id=license_id,
                          action=action)

    path = f"/licenses/{{license_id}}/{action}"
    router.add_api_route(path, page, methods=["GET"], name=f"{action}_page")
    router.add_api_route(path, post, methods=["POST"], name=f"{action}_post")


for _action, (_permission, *_) in _CONFIRMED.items():
    _confirmation_routes(_action, _permission)

