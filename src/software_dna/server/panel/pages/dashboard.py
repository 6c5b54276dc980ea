"""The dashboard: what is happening, at a glance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from software_dna.server.api.deps import Db
from software_dna.server.domain.roles import Permission
from software_dna.server.models import Activation, License
from software_dna.server.panel.web import PanelRoute, Staff, render, viewer

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)


@router.get("/")
def dashboard(request: Request, session: Db,
              staff: Annotated[Staff, Depends(viewer(Permission.READ))]) -> Response:
    """Counts of licenses and live activations."""
    licenses = session.scalar(select(func.count()).select_from(License)) or 0
    active = session.scalar(select(func.count()).select_from(Activation).where(
        Activation.deactivated_at.is_(None))) or 0
    return render(request, "dashboard.html", staff, licenses=licenses, active=active)
