"""The audit log: filters, newest first, each entry with who did it.

Needs Permission.READ.  The log holds ids, counts and statuses only (no
personal data).  "Who" is the staff member (``actor_id`` ``stf_...``: their
email address) or the admin API key (``adk_...``: its name) behind an entry.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from software_dna.server.api.deps import Db
from software_dna.server.domain.roles import Permission
from software_dna.server.models import AdminApiKey, AuditEntry, StaffMember
from software_dna.server.panel.web import PanelRoute, Staff, paginate, query_string, render, viewer

__all__ = ["actor_names", "router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


def actor_names(session: Session) -> dict[str, str]:
    """``{actor_id: what to show}``: staff members by email, admin API keys by name."""
    names = {row.id: row.email for row in session.scalars(select(StaffMember))}
    for key in session.scalars(select(AdminApiKey)):
        names[key.id] = f"API key {key.name or key.id} ({key.role})"
    return names


def _day(text: str) -> date | None:
    """A plain date ``YYYY-MM-DD`` (raises ValueError otherwise)."""
    return date.fromisoformat(text) if text else None


@router.get("/audit")
def audit_log(request: Request, session: Db, *,
              staff: Annotated[Staff, Depends(viewer(Permission.READ))],
              action: str = "", product: str = "", license: str = "", who: str = "",
              since: str = "", until: str = "", page: int = 1) -> Response:
    """The audit log, newest first, filtered by action prefix, product, license, who, days."""
    errors: dict[str, str] = {}
    query = select(AuditEntry)
    if action.strip():
        query = query.where(AuditEntry.action.startswith(action.strip(), autoescape=True))
    if product.strip():
        query = query.where(AuditEntry.product_id == product.strip())
    if license.strip():
        query = query.where(AuditEntry.license_id == license.strip())
    if who.strip():
        query = query.where(AuditEntry.actor_id == who.strip())
    for name, text in (("since", since.strip()), ("until", until.strip())):
        try:
            day = _day(text)
        except ValueError:
            errors[name] = "Enter a date as YYYY-MM-DD."
            continue
        if day is None:
            continue
        start = datetime.combine(day, time(0), tzinfo=timezone.utc)
        if name == "since":
            query = query.where(AuditEntry.at >= start)
        else:  # the whole day
            query = query.where(AuditEntry.at < start + timedelta(days=1))
    listing = paginate(session, query.order_by(AuditEntry.id.desc()), page)
    names = actor_names(session)
    filters = {"action": action, "product": product, "license": license, "who": who,
               "since": since, "until": until}
    choices = [("", "anyone"), *sorted(names.items(), key=lambda pair: pair[1].lower())]
    return render(request, "audit.html", staff, status=400 if errors else 200, page=listing,
                  names=names, filters=filters, who_choices=choices, errors=errors,
                  params=query_string(**filters).replace("?", "&", 1))
