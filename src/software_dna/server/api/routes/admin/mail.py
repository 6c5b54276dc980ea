"""Vendor routes: mail templates (list, show, set, reset, preview) and the sent log.

``?product=ID`` picks a product's templates; without it the vendor default
(every product without its own version) is shown or changed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from software_dna.server.api.deps import ACTOR, Db, State, require
from software_dna.server.api.errors import error_responses
from software_dna.server.domain.roles import Permission
from software_dna.server.schemas.mail import (
    MailLogEntry,
    MailLogOut,
    MailTemplateIn,
    MailTemplateList,
    MailTemplateOut,
    MailTemplateSummary,
    PreviewIn,
    RenderedOut,
)
from software_dna.server.services import emails, mail_templates

__all__ = ["router"]

_PERSONAL_DATA = [Depends(require(Permission.PERSONAL_DATA))]
_COMMERCE = [Depends(require(Permission.COMMERCE))]
_READ = [Depends(require(Permission.READ))]

router = APIRouter(
    prefix="/v1/admin",
    tags=["admin"],
    responses=error_responses(400, 401, 404),
)

NamePath = Annotated[str, Path(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
ProductQuery = Annotated[str | None, Query(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


def _out(template: mail_templates.MailTemplate, product: str | None) -> MailTemplateOut:
    return MailTemplateOut(name=template.name, product=product, source=template.source,
                           subject=template.subject, text=template.text, html=template.html)


@router.get("/mail-templates", dependencies=_READ, response_model=MailTemplateList)
def list_templates(session: Db, product: ProductQuery = None) -> MailTemplateList:
    """Every mail template and where the one in use comes from."""
    rows = mail_templates.list_templates(session, product)
    return MailTemplateList(product=product,
                            templates=[MailTemplateSummary(**row) for row in rows])


@router.get("/mail-templates/{name}", dependencies=_READ, response_model=MailTemplateOut)
def show_template(name: NamePath, session: Db, product: ProductQuery = None) -> MailTemplateOut:
    """The template in use (the product's, else the vendor default, else the built-in one)."""
    return _out(mail_templates.show_template(session, name, product), product)


@router.put("/mail-templates/{name}", dependencies=_COMMERCE, response_model=MailTemplateOut)
def set_template(name: NamePath, body: MailTemplateIn, session: Db,
                 product: ProductQuery = None) -> MailTemplateOut:
    """Save the vendor's version (checked by rendering it with sample values: 400 if it fails)."""
    mail_templates.set_template(session, name, product_id=product, subject=body.subject,
                                text=body.text, html=body.html, actor=ACTOR)
    return _out(mail_templates.effective_template(session, name, product), product)


@router.delete("/mail-templates/{name}", dependencies=_COMMERCE, response_model=MailTemplateOut)
def reset_template(name: NamePath, session: Db, product: ProductQuery = None) -> MailTemplateOut:
    """Drop the vendor's version at this level; answers the template now in use."""
    return _out(mail_templates.reset_template(session, name, product_id=product, actor=ACTOR),
                product)


@router.post("/mail-templates/{name}/preview", dependencies=_COMMERCE, response_model=RenderedOut)
def preview_template(name: NamePath, body: PreviewIn, session: Db,
                     product: ProductQuery = None) -> RenderedOut:
    """The template in use rendered with sample values (``context`` replaces some)."""
    rendered = mail_templates.preview_template(session, name, product_id=product,
                                               context=body.context)
    return RenderedOut(subject=rendered.subject, text=rendered.text, html=rendered.html)


@router.get("/mail-log", dependencies=_PERSONAL_DATA, response_model=MailLogOut)
def mail_log(state: State, session: Db,
             license_id: Annotated[str | None,
                                   Query(alias="license", pattern=r"^[A-Za-z0-9_-]{1,40}$")
                                   ] = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> MailLogOut:
    """The mails queued and sent, newest first, with their addresses (personal data)."""
    rows = emails.mail_log(session, state.ctx, license_id=license_id, limit=limit)
    return MailLogOut(mails=[MailLogEntry(**row) for row in rows])
