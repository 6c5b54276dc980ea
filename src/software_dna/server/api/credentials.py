"""Reading a credential from an ``Authorization`` header (routes and middleware alike)."""

from __future__ import annotations

__all__ = ["bearer_credential"]


def bearer_credential(header: str) -> str | None:
    """The credential of an ``Authorization`` header's value if it is ``Bearer``, else None.

    Args:
        header: the header's value as sent (``"Bearer <credential>"``); the
            scheme is case-insensitive, surrounding spaces are ignored.
    """
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
