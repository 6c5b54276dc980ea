"""Staff accounts and scoped admin API keys (owners: ``Permission.STAFF``).

Passwords and keys made here are shown once, on the page that answers the
post (never in a redirect's notice cookie, never in the audit log).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response
from sqlalchemy import select

from software_dna.server.api.deps import Db, State
from software_dna.server.domain.roles import ROLE_PERMISSIONS, Permission, Role, role_names
from software_dna.server.models import AdminApiKey, StaffMember
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
from software_dna.server.services import staff as staff_service
from software_dna.server.services.admin import issue_admin_key, revoke_admin_key
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/panel", route_class=PanelRoute, include_in_schema=False)

Viewer = Annotated[Staff, Depends(viewer(Permission.STAFF))]
Poster = Annotated[Posted, Depends(poster(Permission.STAFF))]
StaffId = Annotated[str, Path(pattern=r"^stf_[A-Za-z0-9_-]{1,36}$")]
KeyId = Annotated[str, Path(pattern=r"^adk_[A-Za-z0-9_-]{1,36}$")]


def _roles() -> list[tuple[str, str]]:
    return [(name, name.replace("_", "-")) for name in role_names()]


def _role_table() -> list[tuple[str, str]]:
    return [(role.value.replace("_", "-"),
             ", ".join(sorted(p.value.replace("_", " ") for p in ROLE_PERMISSIONS[role])))
            for role in Role]


# --- admin API keys (before /staff/{id}, which would match "keys") ---------------------

def _keys_page(request: Request, staff: Staff, session: Db, *, status: int = 200,
               errors: dict[str, str] | None = None, name: str = "", role: str = "read_only",
               page: int = 1) -> Response:
    query = select(AdminApiKey).where(AdminApiKey.revoked_at.is_(None)).order_by(
        AdminApiKey.created_at, AdminApiKey.id)
    return render(request, "keys_api.html", staff, status=status,
                  page=paginate(session, query, page), roles=_roles(), errors=errors or {},
                  name=name, role=role)


@router.get("/staff/keys")
def keys_list(request: Request, session: Db, staff: Viewer, page: int = 1) -> Response:
    """The admin API keys in use (names, roles, ids; never the keys) and a form for a new one."""
    return _keys_page(request, staff, session, page=page)


@router.post("/staff/keys")
def keys_create(request: Request, state: State, session: Db, posted: Poster) -> Response:
    """Make an admin API key for a role; the key is on the answering page only."""
    name, role = posted.get("name"), posted.get("role")
    if not name:
        return _keys_page(request, posted.staff, session, status=400, name=name, role=role,
                          errors={"name": "Name the key after who or what uses it."})
    try:
        row, key = issue_admin_key(session, state.ctx, role=role, name=name, actor=ACTOR)
    except ServiceError as exc:
        return _keys_page(request, posted.staff, session, status=400, name=name, role=role,
                          errors=field_errors(exc))
    return render(request, "keys_api_created.html", posted.staff, row=row, key=key)


def _key_row(session: Db, key_id: str) -> AdminApiKey:
    row = session.get(AdminApiKey, key_id)
    if row is None:
        raise ServiceError(Code.NOT_FOUND, "No such admin API key.")
    return row


@router.get("/staff/keys/{key_id}/revoke")
def keys_revoke_page(request: Request, session: Db, staff: Viewer, key_id: KeyId) -> Response:
    """Ask before revoking a key."""
    return render(request, "keys_api_revoke.html", staff, row=_key_row(session, key_id))


@router.post("/staff/keys/{key_id}/revoke")
def keys_revoke(request: Request, session: Db, posted: Poster, key_id: KeyId) -> Response:
    """Revoke a key: requests with it are refused from now on."""
    row = revoke_admin_key(session, key_id, actor=ACTOR)
    return see_other(request, "/panel/staff/keys",
                     f"Admin API key {row.name or row.id} revoked.")


# --- staff accounts --------------------------------------------------------------------

@router.get("/staff")
def staff_list(request: Request, session: Db, staff: Viewer, page: int = 1,
               show: str = "") -> Response:
    """Staff members: address, name, role, two-step sign-in, last sign-in, removed or not."""
    query = select(StaffMember).order_by(StaffMember.email)
    if show != "all":
        query = query.where(StaffMember.disabled_at.is_(None))
    return render(request, "staff.html", staff, page=paginate(session, query, page),
                  show=show if show == "all" else "", roles=_role_table())


@router.get("/staff/new")
def staff_new(request: Request, staff: Viewer) -> Response:
    """The form for a new staff member."""
    return render(request, "staff_new.html", staff, roles=_roles(), errors={}, email="",
                  name="", role="support")


@router.post("/staff/new")
def staff_create(request: Request, session: Db, posted: Poster) -> Response:
    """Add a staff member; a generated password is shown on the answering page once."""
    email, name, role = posted.get("email"), posted.get("name"), posted.get("role")
    typed = posted.values.get("password", "")
    password = typed or staff_service.generate_password()
    try:
        row = staff_service.create_staff(session, email=email, password=password, role=role,
                                         name=name, actor=ACTOR,
                                         must_change_password=not typed)
    except ServiceError as exc:
        return render(request, "staff_new.html", posted.staff, status=400, roles=_roles(),
                      errors=field_errors(exc), email=email, name=name, role=role)
    return render(request, "staff_secret.html", posted.staff, member=row,
                  password=None if typed else password, action="added")


@router.get("/staff/{staff_id}")
def staff_show(request: Request, session: Db, staff: Viewer, staff_id: StaffId) -> Response:
    """One staff member, with the forms to change their role, reset or remove them."""
    row = staff_service.get_staff(session, staff_id)
    return render(request, "staff_detail.html", staff, member=row, roles=_roles(), errors={})


@router.post("/staff/{staff_id}/role")
def staff_role(request: Request, session: Db, posted: Poster, staff_id: StaffId) -> Response:
    """Change the role (refused for the last owner)."""
    row = staff_service.get_staff(session, staff_id)
    try:
        staff_service.set_role(session, row.id, posted.get("role"), actor=ACTOR)
    except ServiceError as exc:
        session.rollback()
        return render(request, "staff_detail.html", posted.staff, status=exc.code.status,
                      member=staff_service.get_staff(session, staff_id), roles=_roles(),
                      errors=field_errors(exc, "role"))
    return see_other(request, f"/panel/staff/{row.id}",
                     f"{row.email} is now {row.role.replace('_', '-')}.")


@router.get("/staff/{staff_id}/reset")
def staff_reset_page(request: Request, session: Db, staff: Viewer,
                     staff_id: StaffId) -> Response:
    """Ask before resetting a password."""
    row = staff_service.get_staff(session, staff_id)
    return render(request, "staff_confirm.html", staff, member=row, what="reset")


@router.post("/staff/{staff_id}/reset")
def staff_reset(request: Request, session: Db, posted: Poster, staff_id: StaffId) -> Response:
    """A new random password (shown once); their sessions end; optionally the TOTP goes."""
    row, password = staff_service.reset_password(
        session, staff_id, actor=ACTOR, clear_totp=posted.get("clear_totp") == "on")
    return render(request, "staff_secret.html", posted.staff, member=row, password=password,
                  action="reset")


@router.get("/staff/{staff_id}/remove")
def staff_remove_page(request: Request, session: Db, staff: Viewer,
                      staff_id: StaffId) -> Response:
    """Ask before removing a staff member."""
    row = staff_service.get_staff(session, staff_id)
    return render(request, "staff_confirm.html", staff, member=row, what="remove")


@router.post("/staff/{staff_id}/remove")
def staff_remove(request: Request, session: Db, posted: Poster, staff_id: StaffId) -> Response:
    """Remove a staff member (refused for the last owner)."""
    try:
        row = staff_service.remove_staff(session, staff_id, actor=ACTOR)
    except ServiceError as exc:
        session.rollback()
        return render(request, "staff_confirm.html", posted.staff, status=exc.code.status,
                      member=staff_service.get_staff(session, staff_id), what="remove",
                      errors=field_errors(exc))
    return see_other(request, "/panel/staff", f"{row.email} removed.")
