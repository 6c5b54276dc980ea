"""E-mail templates per product and the one-click unsubscribe record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["EmailTemplate", "MailOptOut"]


class EmailTemplate(Base):
    """A vendor's version of one mail (subject, plain text, HTML) for one product.

    Without a row the built-in template is used.  ``product_id`` None is the
    vendor's default for every product.
    """

    __tablename__ = "email_templates"
    __table_args__ = (UniqueConstraint("product_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    product_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(32))  # license_key / expiry_reminder / ...
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class MailOptOut(Base):
    """One address that unsubscribed from a license's reminders and notices.

    Held as the keyed look-up hash of the address (never the address);
    deleted when the end user is erased.
    """

    __tablename__ = "mail_opt_outs"
    __table_args__ = (UniqueConstraint("license_id", "email_index"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    license_id: Mapped[str] = mapped_column(String(40), index=True)
    email_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
