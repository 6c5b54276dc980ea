"""The end user's license portal: signed-in browsers, single-use sign-in links, product logos."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["PortalLink", "PortalSession", "ProductLogo"]


class PortalSession(Base):
    """A browser signed in to the portal for one license of one product.

    ``id`` is the keyed hash of the cookie's token (the token itself is never
    stored).  ``method`` says how the holder got in, which decides the reach:
    ``password`` (license key and activation password: the license, its
    activations, freeing a machine, the password, air-gapped answers) or
    ``link`` (a single-use link mailed to ``end_user_id``'s confirmed address:
    the same, plus that end user's own personal data).
    """

    __tablename__ = "portal_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"),
                                            index=True)
    end_user_id: Mapped[str | None] = mapped_column(
        ForeignKey("end_users.id", ondelete="CASCADE"), index=True)
    method: Mapped[str] = mapped_column(String(16))  # password / link
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class PortalLink(Base):
    """A single-use sign-in link mailed to an end user's confirmed address.

    Held as the keyed hash of its token, bound to the browser that asked for
    it (``browser_hash``: the keyed hash of a random cookie set on that
    browser) and to the address it was mailed to (``email_index``): a link
    opened in another browser, or after the address changed, does nothing.
    """

    __tablename__ = "portal_links"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    browser_hash: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"))
    license_id: Mapped[str] = mapped_column(ForeignKey("licenses.id", ondelete="CASCADE"),
                                            index=True)
    end_user_id: Mapped[str] = mapped_column(ForeignKey("end_users.id", ondelete="CASCADE"),
                                             index=True)
    email_index: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class ProductLogo(Base):
    """A product's logo, served by the server itself (the portal loads nothing from elsewhere).

    A PNG, JPEG or WebP image (the magic bytes are checked; SVG is refused: it
    can carry script), at most :data:`~software_dna.server.services.portal_branding.MAX_LOGO_BYTES`.
    """

    __tablename__ = "product_logos"

    product_id: Mapped[str] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"),
                                            primary_key=True)
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    sha256: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]
