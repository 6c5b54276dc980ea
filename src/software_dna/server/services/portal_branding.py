"""A product's logo in the license portal: uploaded by the vendor, served by this server.

The portal loads nothing from elsewhere, so the logo is stored in the
database (``product_logos``) and served at ``/portal/{product}/logo``.  Only
raster images whose first bytes say what they are are taken: PNG, JPEG and
WebP.  SVG is refused (it can carry script), and so is anything whose bytes
do not match one of the three, whatever its file name or declared type.
"""

from __future__ import annotations

import hashlib

from sqlalchemy.orm import Session

from software_dna.server.models import ProductLogo
from software_dna.server.services.common import audit, utcnow
from software_dna.server.services.errors import ServiceError, invalid, not_found
from software_dna.server.services.lookups import get_product
from software_dna.wire.codes import Code

__all__ = ["LOGO_TYPES", "MAX_LOGO_BYTES", "get_logo", "logo_type", "remove_logo", "set_logo"]

#: The largest logo taken, in bytes (256 KiB).
MAX_LOGO_BYTES = 256 * 1024
#: The media types a logo may have.
LOGO_TYPES = ("image/png", "image/jpeg", "image/webp")

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def logo_type(data: bytes) -> str | None:
    """The media type the image's magic bytes name (one of :data:`LOGO_TYPES`), or None.

    Args:
        data: the file's bytes.
    """
    if data.startswith(_PNG) and len(data) > len(_PNG):
        return "image/png"
    if data.startswith(_JPEG) and len(data) > len(_JPEG):
        return "image/jpeg"
    if len(data) > 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def get_logo(session: Session, product_id: str) -> ProductLogo | None:
    """The product's logo row, or None when it has none (an unknown product too)."""
    return session.get(ProductLogo, product_id)


def set_logo(session: Session, product_id: str, data: bytes, *,
             actor: str = "admin") -> ProductLogo:
    """Store ``data`` as the product's logo (replacing any), audit it and commit.

    The type is read from the bytes themselves, never from a name or a
    header the uploader chose.

    Args:
        product_id: the product.
        data: the image, at most :data:`MAX_LOGO_BYTES` bytes of PNG, JPEG or WebP.
        actor: who did it (the audit log's actor).

    Returns:
        The stored row (``content_type``, ``sha256`` hex of ``data``, ``updated_at``).

    Raises:
        ServiceError: 404 ``not_found`` (no such product); 413 ``too_large`` (over
            256 KiB); 400 ``invalid_request`` (empty, or not a PNG, JPEG or WebP image).
    """
    get_product(session, product_id)
    if len(data) > MAX_LOGO_BYTES:
        # (Callers may pass only the first bytes past the limit: the size is not named.)
        raise ServiceError(Code.TOO_LARGE,
                           f"A logo is at most {MAX_LOGO_BYTES // 1024} KiB; this one is larger.")
    content_type = logo_type(data)
    if content_type is None:
        raise invalid("A logo must be a PNG, JPEG or WebP image (SVG and other formats are "
                      "refused).")
    now = utcnow()
    digest = hashlib.sha256(data).hexdigest()
    row = session.get(ProductLogo, product_id)
    if row is None:
        row = ProductLogo(product_id=product_id, content_type=content_type, data=data,
                          sha256=digest, updated_at=now)
        session.add(row)
    else:
        row.content_type, row.data, row.sha256, row.updated_at = (
            content_type, data, digest, now)
    audit(session, actor, "product.logo_set", at=now, product_id=product_id,
          detail={"content_type": content_type, "bytes": len(data), "sha256": digest})
    session.commit()
    return row


def remove_logo(session: Session, product_id: str, *, actor: str = "admin") -> None:
    """Remove the product's logo, audit it and commit (its pages then show its name alone).

    Raises:
        ServiceError: 404 ``not_found`` (no such product, or it has no logo).
    """
    get_product(session, product_id)
    row = session.get(ProductLogo, product_id)
    if row is None:
        raise not_found("logo")
    session.delete(row)
    audit(session, actor, "product.logo_remove", product_id=product_id)
    session.commit()
