"""Products and their settings: list, create, change (the same fields as the admin API's PATCH).

Reading needs Permission.READ; creating and changing need Permission.PRODUCTS.
The form sends every setting each time; the page turns the typed text into
the service's values (whole numbers, lists, blank = none) and the service
checks them, so the rules are the admin API's and the CLI's.  The logo of the
product's license portal has a form of its own (a file upload), on the
product's page.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from software_dna.server.api.deps import Db, ProductPath
from software_dna.server.domain.roles import Permission
from software_dna.server.models import Product
from software_dna.server.panel.web import (
    ACTOR,
    PanelRoute,
    Posted,
    Staff,
    field_errors,
    paginate,
    poster,
    render,
    see_other,
    viewer,
)
from software_dna.server.services import create_product, get_product, update_product
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.portal_branding import (
    LOGO_TYPES,
    MAX_LOGO_BYTES,
    get_logo,
    remove_logo,
    set_logo,
)
from software_dna.server.services.products import BRANDING_KEYS

__all__ = ["SETTINGS", "router", "settings_from_form"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

#: Whole-number settings: ``(name, label, help, blank allowed)``.  Blank means None
#: (no lock-out, unbounded re-binds, no trial) where allowed.
NUMBERS: tuple[tuple[str, str, str, bool], ...] = (
    ("refresh_interval", "Refresh interval (seconds)",
     "How often the app refreshes its token online (60 seconds to 10 years).", False),
    ("offline_grace_period", "Offline grace period (seconds)",
     "How long a token stays valid when the server cannot be reached.", False),
    ("fingerprint_tolerance", "Fingerprint tolerance",
     "How many machine components may change (0 or 1).", False),
    ("trial_days", "Trial days", "0 or blank: no trial; else 1-365 days, once per machine.",
     True),
    ("test_code_limit", "Test codes live at once", "0-100.", False),
    ("lease_duration", "Floating lease (seconds)",
     "How long a floating seat's lease lasts without a heartbeat.", False),
    ("reactivation_limit", "Re-activation limit",
     "Re-activations a license may have per period on top of its seats (blank: no lock-out).",
     True),
    ("reactivation_period", "Re-activation period (seconds)", "The lock-out window.", False),
    ("address_activation_limit", "New activations per client address",
     "Per period (blank: no lock-out by address).", True),
    ("rebind_limit", "Re-binds per period",
     "Re-binds to a changed machine an activation may have (blank: unbounded).", True),
    ("rebind_period", "Re-bind period (seconds)", "3600 seconds to 366 days.", False),
    ("air_gapped_token_days", "Air-gapped token lifetime (days)",
     "1-3650; a new activation response renews it.", False),
    ("payment_grace_days", "Payment grace (days)",
     "Days a failed payment is tolerated before the license is suspended (0-365).", False),
)
#: The license portal's settings, as :data:`NUMBERS`.
PORTAL_NUMBERS: tuple[tuple[str, str, str, bool], ...] = (
    ("portal_release_limit", "Computers a license holder may free",
     "Per license per period, in the license portal (0: only you free them; blank: no "
     "limit).", True),
    ("portal_release_days", "Period of that limit (days)", "1-366 days.", False),
)
#: On/off settings: ``(name, label, help)``.
SWITCHES: tuple[tuple[str, str, str], ...] = (
    ("password_required", "Every license needs an activation password", ""),
    ("air_gapped", "Licenses may be activated from air-gapped requests",
     "Off by default; a license may override it."),
    ("air_gapped_perpetual", "Air-gapped tokens never end",
     "Only the license's own expiry ends them."),
)
#: Every setting the form carries (the names of the service's keyword arguments).
SETTINGS: tuple[str, ...] = (
    "name", "protection", "features", "limited_features", "sharing_policy", "reminder_days",
    *(n for n, _, _, _ in NUMBERS), *(n for n, _, _, _ in PORTAL_NUMBERS),
    *(n for n, _, _ in SWITCHES),
    *(f"branding_{key}" for key in BRANDING_KEYS),
)
PROTECTION_CHOICES = [("offline", "offline: check the token only, never the server"),
                      ("opportunistic", "opportunistic: refresh when possible"),
                      ("mandatory", "mandatory: the server must be reached")]
SHARING_CHOICES = [("flag", "flag it for the vendor"), ("suspend", "suspend the activation")]
_WORDS = re.compile(r"[\s,]+")


class FormProblem(Exception):
    """A field the page could not read (``field``: its name; the message says why)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _words(text: str) -> list[str]:
    return [w for w in _WORDS.split(text) if w]


def settings_from_form(values: Mapping[str, str], form_switches: set[str]) -> dict[str, Any]:
    """The service's keyword arguments from the form's text.

    Args:
        values: the posted fields (stripped strings).
        form_switches: the checkbox names that were ticked.

    Returns:
        ``{name: value}`` for every setting (create and update take the same names;
        ``branding`` a dict).

    Raises:
        FormProblem: a whole number or a list of days that is not one.
    """
    out: dict[str, Any] = {
        "name": values.get("name", "").strip(),
        "protection": values.get("protection", "").strip(),
        "features": _words(values.get("features", "")),
        "limited_features": _words(values.get("limited_features", "")),
        "sharing_policy": values.get("sharing_policy", "").strip(),
    }
    for name, _label, _help, blank in (*NUMBERS, *PORTAL_NUMBERS):
        text = values.get(name, "").strip()
        if not text and blank:
            out[name] = None
            continue
        if not re.fullmatch(r"\d{1,10}", text):
            raise FormProblem(name, "Enter a whole number"
                              + (" (or leave it blank)." if blank else "."))
        out[name] = int(text)
    if out["trial_days"] is None:
        out["trial_days"] = 0
    days = _words(values.get("reminder_days", ""))
    if not all(re.fullmatch(r"\d{1,4}", d) for d in days):
        raise FormProblem("reminder_days", "Enter whole numbers of days separated by commas.")
    out["reminder_days"] = [int(d) for d in days]
    for name, _label, _help in SWITCHES:
        out[name] = name in form_switches
    out["branding"] = {key: values.get(f"branding_{key}", "").strip() for key in BRANDING_KEYS}
    return out


def _branding_allowed(staff: Staff, before: Mapping[str, str],
                      after: Mapping[str, str]) -> None:
    """The mails' branding needs COMMERCE (its support address receives buyers' replies,
    its logo is fetched from every mail opened).

    Raises:
        FormProblem: a role without it changed a branding field.
    """
    now = {key: value for key, value in after.items() if value}
    was = {key: value for key, value in before.items() if value}
    if now != was and not staff.can(Permission.COMMERCE):
        field = next(f"branding_{key}" for key in sorted(set(now) | set(was))
                     if now.get(key) != was.get(key))
        raise FormProblem(field, "Only an owner or an admin changes the mails' branding "
                          "(replies go to its support address; its logo loads in every mail).")


def _form_values(product: Product | None) -> dict[str, str]:
    """The form's text for a product (defaults for a new one)."""
    if product is None:
        return {"protection": "opportunistic", "refresh_interval": "86400",
                "offline_grace_period": str(7 * 86400), "fingerprint_tolerance": "1",
                "trial_days": "", "test_code_limit": "5", "lease_duration": "900",
                "reactivation_limit": "", "reactivation_period": str(30 * 86400),
                "address_activation_limit": "", "rebind_limit": "3",
                "rebind_period": str(30 * 86400), "air_gapped_token_days": "365",
                "payment_grace_days": "14", "reminder_days": "7, 3, 1",
                "sharing_policy": "flag", "portal_release_limit": "3",
                "portal_release_days": "30"}
    values = {"name": product.name, "protection": product.protection,
              "features": ", ".join(product.features),
              "limited_features": ", ".join(product.limited_features),
              "sharing_policy": product.sharing_policy,
              "reminder_days": ", ".join(str(d) for d in product.reminder_days)}
    for name, _label, _help, _blank in (*NUMBERS, *PORTAL_NUMBERS):
        value = getattr(product, name)
        values[name] = "" if value is None else str(value)
    for name, _label, _help in SWITCHES:
        values[name] = "on" if getattr(product, name) else ""
    for key in BRANDING_KEYS:
        values[f"branding_{key}"] = str((product.branding or {}).get(key, ""))
    return values


def _errors(exc: ServiceError) -> dict[str, str]:
    """A refusal next to its field: the services name it first ("refresh_interval must be")."""
    errors = field_errors(exc)
    if "form" in errors:
        message = exc.message
        for name in SETTINGS:
            if message.startswith((name.replace("branding_", "branding.") + " ",
                                   name + ":")):
                return {name: message}
        if message.startswith(("A product id", "The product")):
            return {"id": message}
        if message.startswith("A product name"):
            return {"name": message}
        if message.startswith(("Bad name in features", "At most")):
            return {"features" if "limited" not in message else "limited_features": message}
        if message.startswith("Bad name in limited_features"):
            return {"limited_features": message}
    return errors


def _page(request: Request, staff: Staff, template: str, *, status: int = 200,
          **context: Any) -> Response:
    return render(request, template, staff, status=status, numbers=NUMBERS, switches=SWITCHES,
                  portal_numbers=PORTAL_NUMBERS, protections=PROTECTION_CHOICES,
                  sharing=SHARING_CHOICES, branding_keys=BRANDING_KEYS,
                  logo_types=",".join(LOGO_TYPES), max_logo_kib=MAX_LOGO_BYTES // 1024,
                  **context)


def _product_page(request: Request, session: Db, staff: Staff, product: Product, *,
                  status: int = 200, values: dict[str, str] | None = None,
                  errors: dict[str, str] | None = None) -> Response:
    """A product's page: its settings form and its portal logo."""
    return _page(request, staff, "products_form.html", status=status, product=product,
                 values=_form_values(product) if values is None else values,
                 errors=errors or {}, logo=get_logo(session, product.id))


@router.get("/products")
def products(request: Request, session: Db,
             staff: Annotated[Staff, Depends(viewer(Permission.READ))],
             page: int = 1) -> Response:
    """Every product, by id."""
    listing = paginate(session, select(Product).order_by(Product.id), page)
    return render(request, "products.html", staff, page=listing)


@router.get("/products/new")
def new_product(request: Request,
                staff: Annotated[Staff, Depends(viewer(Permission.PRODUCTS))]) -> Response:
    """The form for a new product."""
    return _page(request, staff, "products_form.html", product=None, values=_form_values(None),
                 errors={})


@router.post("/products/new")
def create(request: Request, session: Db,
           posted: Annotated[Posted, Depends(poster(Permission.PRODUCTS))]) -> Response:
    """Create the product (the service checks every value)."""
    values = dict(posted.values)
    product_id = posted.get("id")
    try:
        settings = settings_from_form(posted.values, set(posted.values))
        _branding_allowed(posted.staff, {}, settings["branding"])
        if not settings["name"]:
            settings["name"] = None
        created = create_product(session, product_id=product_id, actor=ACTOR, **settings)
    except FormProblem as problem:
        return _page(request, posted.staff, "products_form.html", status=400, product=None,
                     values=values, errors={problem.field: problem.message})
    except ServiceError as exc:
        session.rollback()
        return _page(request, posted.staff, "products_form.html", status=400, product=None,
                     values=values, errors=_errors(exc))
    return see_other(request, f"/panel/products/{created.id}",
                     f"Product {created.id} created. Generate its signing key next.")


@router.get("/products/{product_id}")
def show(request: Request, session: Db, product_id: ProductPath,
         staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """A product's settings (a form for those who may change them)."""
    product = get_product(session, product_id)
    return _product_page(request, session, staff, product)


@router.post("/products/{product_id}")
def change(request: Request, session: Db, product_id: ProductPath,
           posted: Annotated[Posted, Depends(poster(Permission.PRODUCTS))]) -> Response:
    """Change the product's settings (every field of the form)."""
    product = get_product(session, product_id)
    values = dict(posted.values)
    try:
        settings = settings_from_form(posted.values, set(posted.values))
        _branding_allowed(posted.staff, {k: v for k, v in (product.branding or {}).items() if v},
                          settings["branding"])
        update_product(session, product_id, actor=ACTOR, **settings)
    except FormProblem as problem:
        return _product_page(request, session, posted.staff, product, status=400,
                             values=values, errors={problem.field: problem.message})
    except ServiceError as exc:
        session.rollback()
        product = get_product(session, product_id)
        return _product_page(request, session, posted.staff, product, status=400,
                             values=values, errors=_errors(exc))
    return see_other(request, f"/panel/products/{product_id}", "Settings saved.")


@router.post("/products/{product_id}/logo")
async def upload_logo(request: Request, session: Db, product_id: ProductPath,
                      posted: Annotated[Posted, Depends(
                          poster(Permission.PRODUCTS, max_files=1))]) -> Response:
    """Store the uploaded image as the logo of the product's license portal.

    Async for the upload's read; the service (which reads the type from the
    bytes, never from the file's name or declared type) runs in the thread pool.
    """
    upload = posted.form.get("logo")
    data = b""
    if isinstance(upload, UploadFile):
        try:
            # One byte over the limit is enough to refuse it (with the service's sentence).
            data = await upload.read(MAX_LOGO_BYTES + 1)
        finally:
            await upload.close()
    try:
        if not data:
            raise FormProblem("logo", "Choose a PNG, JPEG or WebP image.")
        await run_in_threadpool(set_logo, session, product_id, data, actor=ACTOR)
    except (FormProblem, ServiceError) as exc:
        errors = {"logo": exc.message}
        await run_in_threadpool(session.rollback)
        product = await run_in_threadpool(get_product, session, product_id)
        return await run_in_threadpool(
            lambda: _product_page(request, session, posted.staff, product, status=400,
                                  errors=errors))
    return see_other(request, f"/panel/products/{product_id}",
                     "Logo saved: the product's license portal shows it now.")


@router.post("/products/{product_id}/logo/remove")
def drop_logo(request: Request, session: Db, product_id: ProductPath,
              posted: Annotated[Posted, Depends(poster(Permission.PRODUCTS))]) -> Response:
    """Remove the logo of the product's license portal (its pages show the name alone)."""
    try:
        remove_logo(session, product_id, actor=ACTOR)
    except ServiceError as exc:
        session.rollback()
        if (exc.details or {}).get("kind") != "logo":
            raise
        return see_other(request, f"/panel/products/{product_id}", "There was no logo.")
    return see_other(request, f"/panel/products/{product_id}", "Logo removed.")
