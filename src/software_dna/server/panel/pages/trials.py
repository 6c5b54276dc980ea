"""Developers' tools in the panel: trial machines and test codes (Permission.TEST_CODES).

A trial machine is forgotten so that it may start a new trial (its trial
license is revoked); a test code is a short ``TEST-…`` key for the vendor's
own testing, shown once when made, reset (activations removed) or revoked.
These pages touch only trials and test codes: a license of another kind is
"not found" here, whatever id is posted.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select

from software_dna.server import services
from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import Permission
from software_dna.server.domain.terms import TEST_CODE_MAX_DAYS
from software_dna.server.models import License, Product, Trial
from software_dna.server.panel.web import (
    ACTOR,
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
from software_dna.server.services.errors import ServiceError, not_found
from software_dna.server.services.lookups import get_trial
from software_dna.server.services.trials import issue_test_code, remove_trial, reset_test_code
from software_dna.wire.claims import Kind
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


def _products(session: Db) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.id)))


def _test_code(session: Db, license_id: str) -> License:
    """The test code ``license_id``; any other license is 404 here."""
    lic = session.get(License, license_id)
    if lic is None or lic.kind != Kind.TEST.value:
        raise not_found("test code")
    return lic


# --------------------------------------------------------------------------- trials


@router.get("/trials")
def trials_page(request: Request, session: Db,
                staff: Annotated[Staff, Depends(viewer(Permission.TEST_CODES))],
                product: str = "", page: int = 1) -> Response:
    """The machines that used a product's trial, newest first."""
    query = select(Trial).order_by(Trial.created_at.desc(), Trial.id)
    if product:
        query = query.where(Trial.product_id == product)
    rows = paginate(session, query, page)
    params = query_string(product=product)
    return render(request, "trials.html", staff, page=rows, product=product,
                  products=_products(session), params="&" + params[1:] if params else "")


@router.get("/trials/{trial_id}/remove")
def trial_remove_page(request: Request, session: Db, trial_id: str,
                      staff: Annotated[Staff, Depends(viewer(Permission.TEST_CODES))]
                      ) -> Response:
    """Confirm forgetting a trial machine: says what happens."""
    trial = get_trial(session, trial_id)
    return render(request, "trials_confirm.html", staff, trial=trial)


@router.post("/trials/{trial_id}/remove")
def trial_remove_post(request: Request, session: Db, trial_id: str,
                      posted: Annotated[Posted, Depends(poster(Permission.TEST_CODES))]
                      ) -> Response:
    """Forget the trial machine (its trial license is revoked)."""
    trial = remove_trial(session, trial_id, actor=ACTOR)
    return see_other(request, "/panel/trials" + query_string(product=trial.product_id),
                     "Trial machine forgotten: it may start a new trial.")


# --------------------------------------------------------------------------- test codes


def _codes_page(request: Request, session: Db, staff: Staff, *, product: str, page: int,
                errors: dict[str, str] | None = None, values: dict[str, str] | None = None,
                new: tuple[License, str] | None = None, status: int = 200) -> Response:
    query = select(License).where(License.kind == Kind.TEST.value).order_by(
        License.created_at.desc(), License.id)
    if product:
        query = query.where(License.product_id == product)
    rows = paginate(session, query, page)
    params = query_string(product=product)
    return render(request, "test_codes.html", staff, status=status, page=rows,
                  product=product, products=_products(session), errors=errors or {},
                  values=values or {}, new=new, max_days=TEST_CODE_MAX_DAYS,
                  params="&" + params[1:] if params else "")


@router.get("/test-codes")
def test_codes_page(request: Request, session: Db,
                    staff: Annotated[Staff, Depends(viewer(Permission.TEST_CODES))],
                    product: str = "", page: int = 1) -> Response:
    """Test codes, newest first, and the form to make one."""
    return _codes_page(request, session, staff, product=product, page=page)


@router.post("/test-codes")
def test_codes_post(request: Request, session: Db, state: State,
                    posted: Annotated[Posted, Depends(poster(Permission.TEST_CODES))]
                    ) -> Response:
    """Make a test code; its key is shown this once."""
    values = {name: posted.get(name) for name in ("product", "days", "features")}
    try:
        try:
            days = int(values["days"] or "1")
        except ValueError:
            raise ServiceError(Code.INVALID_REQUEST, f"A whole number from 1 to "
                               f"{TEST_CODE_MAX_DAYS}.", details={"field": "days"}) from None
        features = [f.strip() for f in values["features"].split(",") if f.strip()]
        lic, key = issue_test_code(session, state.ctx, product_id=values["product"], days=days,
                                   features=features or None,
                                   password=posted.values.get("password") or None,
                                   actor=ACTOR)
    except ServiceError as exc:
        session.rollback()
        errors = field_errors(exc, default="form")
        if (exc.details or {}).get("kind") == "product":
            errors = {"product": exc.message}
        return _codes_page(request, session, posted.staff, product=values["product"], page=1,
                           errors=errors, values=values, status=400)
    return _codes_page(request, session, posted.staff, product=lic.product_id, page=1,
                       new=(lic, key))


@router.get("/test-codes/{license_id}/revoke")
def test_code_revoke_page(request: Request, session: Db, license_id: str,
                          staff: Annotated[Staff, Depends(viewer(Permission.TEST_CODES))]
                          ) -> Response:
    """Confirm revoking a test code."""
    lic = _test_code(session, license_id)
    return render(request, "test_codes_confirm.html", staff, lic=lic, action="revoke",
                  what="Every app using this test code stops at its next check. It cannot be "
                       "undone.", button="Revoke the test code")


@router.post("/test-codes/{license_id}/revoke")
def test_code_revoke_post(request: Request, session: Db, license_id: str,
                          posted: Annotated[Posted, Depends(poster(Permission.TEST_CODES))]
                          ) -> Response:
    """Revoke a test code (only a test code)."""
    lic = _test_code(session, license_id)
    services.revoke_license(session, lic.id, actor=ACTOR)
    return see_other(request, "/panel/test-codes" + query_string(product=lic.product_id),
                     "Test code revoked.")


@router.get("/test-codes/{license_id}/reset")
def test_code_reset_page(request: Request, session: Db, license_id: str,
                         staff: Annotated[Staff, Depends(viewer(Permission.TEST_CODES))]
                         ) -> Response:
    """Confirm resetting a test code."""
    lic = _test_code(session, license_id)
    return render(request, "test_codes_confirm.html", staff, lic=lic, action="reset",
                  what="Its activations are removed and its days start again at the next "
                       "activation.", button="Reset the test code")


@router.post("/test-codes/{license_id}/reset")
def test_code_reset_post(request: Request, session: Db, license_id: str,
                         posted: Annotated[Posted, Depends(poster(Permission.TEST_CODES))]
                         ) -> Response:
    """Reset a test code: activations removed, its term starts again."""
    lic = _test_code(session, license_id)
    reset_test_code(session, lic.id, actor=ACTOR)
    return see_other(request, "/panel/test-codes" + query_string(product=lic.product_id),
                     "Test code reset.")
