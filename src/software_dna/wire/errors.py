"""The format layer's own errors; the SDK turns them into its exceptions at one boundary.

They carry no advice for an end user: the SDK (``software_dna.license`` and
the client) words the message, the server maps them to a protocol code.
"""

from __future__ import annotations

__all__ = ["InvalidToken", "WireError", "WrongProduct"]


class WireError(ValueError):
    """Base of the errors raised by :mod:`software_dna.wire`."""


class InvalidToken(WireError):
    """A token (or receipt) that is malformed, signed by an unknown key or forged.

    Opaque on purpose: the message never says which check failed.
    """

    def __init__(self, message: str = "The license token is invalid.") -> None:
        super().__init__(message)


class WrongProduct(InvalidToken):
    """A validly signed token, but bound to another product.

    Attributes:
        product: the product the token was checked for.
        other: the product it is signed for, when the token says so (else None).
    """

    def __init__(self, product: str, other: str | None = None) -> None:
        self.product = product
        self.other = other
        super().__init__(f"This token is for another product, not {product!r}.")
