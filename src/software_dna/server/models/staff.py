"""The vendor's staff: accounts of the control panel and their sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from software_dna.server.models.base import Base

__all__ = ["StaffMember", "StaffSession"]


class StaffMember(Base):
    """One of the vendor's staff: signs in to the control panel with email and password.

    Staff are the vendor's own people, not end users: their address is the
    sign-in name and is kept in clear (lower-cased), their password as a
    scrypt hash, their TOTP secret sealed under the master key.
    """

    __tablename__ = "staff"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(16))  # domain.roles.Role
    password_hash: Mapped[str] = mapped_column(String(200))
    # The TOTP secret (RFC 6238), sealed; set at enrolment, used once confirmed.
    totp_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed_at: Mapped[datetime | None]
    # The last TOTP time step accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    # Set by ``staff reset``: the next sign-in must choose a new password.
    must_change_password: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    last_sign_in_at: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]


class StaffSession(Base):
    """A signed-in browser: the cookie holds a random token, the row its keyed hash.

    ``second_factor_due`` is true between the password and the TOTP code:
    such a session reaches nothing but the code form.
    """

    __tablename__ = "staff_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # vault hash of the token
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"),
                                          index=True)
    second_factor_due: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)

    staff: Mapped[StaffMember] = relationship(lazy="joined")
