"""CSV in and out: the licenses and activations exports, the licenses import.

The exports stream (services.csvio reads the rows in batches) and take the
list pages' filters as query parameters; they hold no personal data, so
Permission.READ is enough.  The import (Permission.LICENSES) takes an
uploaded file or pasted text, checks every row, and writes all of them or
none; the new keys are shown once, with a CSV download of them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import Permission
from software_dna.server.panel.web import (
    ACTOR,
    HEADERS,
    PanelRoute,
    Posted,
    Staff,
    poster,
    render,
    viewer,
)
from software_dna.server.services import csvio

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

#: The example shown on the import page.
EXAMPLE = ("product,kind,seats,expires,features,customer_ref,order_ref,notes\r\n"
           "my-app,full,2,2027-06-30,pro;export,CUST-1042,ORD-88,Reseller batch\r\n")


def _download(rows: object, name: str) -> StreamingResponse:
    """A CSV download named ``name-<UTC time>.csv`` (never cached)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {**HEADERS, "Content-Disposition": f'attachment; filename="{name}-{stamp}.csv"',
               "Cache-Control": "no-store"}
    return StreamingResponse(rows, media_type="text/csv; charset=utf-8",  # type: ignore[arg-type]
                             headers=headers)


def _given(value: str) -> str | None:
    return value.strip() or None


@router.get("/licenses/export.csv")
def export_licenses(state: State, session: Db,
                    staff: Annotated[Staff, Depends(viewer(Permission.READ))], *,
                    product: str = "", status: str = "", kind: str = "",
                    customer_ref: str = "", order_ref: str = "") -> Response:
    """The licenses (the list's filters) as a CSV download; no personal data."""
    filters = csvio.LicenseFilter(product_id=_given(product), status=_given(status),
                                  kind=_given(kind), customer_ref=_given(customer_ref),
                                  order_ref=_given(order_ref))
    session.rollback()  # the request's session holds no transaction while the rows stream
    return _download(csvio.export_licenses(state.sessions, filters), "licenses")


@router.get("/activations/export.csv")
def export_activations(app_state: State, session: Db,
                       staff: Annotated[Staff, Depends(viewer(Permission.READ))], *,
                       product: str = "", license: str = "", state: str = "") -> Response:
    """The activations (by product, license, ``state`` live/removed) as a CSV download."""
    filters = csvio.ActivationFilter(product_id=_given(product), license_id=_given(license),
                                     state=_given(state))
    session.rollback()  # the request's session holds no transaction while the rows stream
    return _download(csvio.export_activations(app_state.sessions, filters), "activations")


@router.get("/licenses/import")
def import_form(request: Request,
                staff: Annotated[Staff, Depends(viewer(Permission.LICENSES))]) -> Response:
    """The import form: a CSV file to upload, or text to paste."""
    return render(request, "import.html", staff, text="", errors=[], example=EXAMPLE,
                  columns=csvio.IMPORT_COLUMNS, max_rows=csvio.MAX_IMPORT_ROWS)


async def _uploaded_text(posted: Posted) -> tuple[str, str | None]:
    """The CSV text: the uploaded file when one was chosen, else the pasted text.

    Returns ``(text, problem)``; ``problem`` says why the file cannot be read.
    """
    upload = posted.form.get("file")
    if isinstance(upload, UploadFile) and upload.filename:
        try:
            data = await upload.read()
        finally:
            await upload.close()
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            return "", "The file is not UTF-8 text: save it as \"CSV UTF-8\" and try again."
    return posted.values.get("text", ""), None


@router.post("/licenses/import")
async def import_licenses(request: Request, state: State, session: Db,
                          posted: Annotated[Posted, Depends(
                              poster(Permission.LICENSES, max_files=1))]) -> Response:
    """Import the CSV: every license issued (their keys shown once), or nothing and every error.

    Async for the upload's read; the import itself runs in the thread pool.
    """
    text, problem = await _uploaded_text(posted)
    errors: list[csvio.RowError] = []
    if problem is not None:
        errors = [csvio.RowError(0, "file", problem)]
    elif not text.strip():
        errors = [csvio.RowError(0, "file", "Choose a CSV file or paste its text.")]
    if errors:
        return render(request, "import.html", posted.staff, status=400, text=text,
                      errors=errors, example=EXAMPLE, columns=csvio.IMPORT_COLUMNS,
                      max_rows=csvio.MAX_IMPORT_ROWS)
    # The import has a connection and transaction of its own (SQLite: one writer at a time).
    await run_in_threadpool(session.rollback)
    result = await run_in_threadpool(csvio.import_licenses, state.engine, state.ctx, text,
                                     actor=ACTOR)
    if not result.ok:
        return render(request, "import.html", posted.staff, status=400, text=text,
                      errors=result.errors, rows=result.rows, example=EXAMPLE,
                      columns=csvio.IMPORT_COLUMNS, max_rows=csvio.MAX_IMPORT_ROWS)
    response = render(request, "import_done.html", posted.staff, licenses=result.licenses)
    response.headers["Cache-Control"] = "no-store"  # the keys are on this page
    return response


def _row_number(text: str) -> bool:
    """True for a row number as the result page wrote it (ASCII digits, at most 6)."""
    return text.isascii() and text.isdigit() and len(text) <= 6


@router.post("/licenses/import/keys.csv")
def import_keys(posted: Annotated[Posted, Depends(poster(Permission.LICENSES))]) -> Response:
    """The keys just shown on the import's result page, as a CSV download.

    The server keeps no key: the page's own form sends them back (the
    keys are already on the staff member's screen).
    """
    rows, ids, products, keys = (posted.all("row"), posted.all("license_id"),
                                 posted.all("product"), posted.all("license_key"))
    count = min(len(rows), len(ids), len(products), len(keys), csvio.MAX_IMPORT_ROWS)
    licenses = [csvio.ImportedLicense(int(rows[i]) if _row_number(rows[i]) else 0,
                                      ids[i][:40], products[i][:64], keys[i][:128])
                for i in range(count)]
    return _download(iter([csvio.keys_csv(licenses)]), "license-keys")
