"""End users: the only personal data, encrypted (email, registration), and email confirmation."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    LargeBinary,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["EmailConfirmation", "EndUser"]


class EndUser(Base):
    """The person behind one or more activations; every personal field is encrypted.

    ``email_confirmed_at`` is set when the end user opened the confirmation
    link mailed to the address now on file, and cleared whenever the email
    changes or is erased: password reset codes go only to confirmed addresses.
    """

    __tablename__ = "end_users"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    email_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    email_index: Mapped[str | None] = mapped_column(String(64), index=True)
    registration_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary)
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    erased_at: Mapped[datetime | None]
    email_confirmed_at: Mapped[datetime | None]


class EmailConfirmation(Base):
    """A single-use link token that confirms one end user's email, held only as a keyed hash.

    ``email_index`` is the look-up hash of the address the link was mailed to:
    a link confirms that address only, never one set after it was sent.
    """

    __tablename__ = "email_confirmations"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    end_user_id: Mapped[str] = mapped_column(ForeignKey("end_users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    email_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
