"""License key format: an optional prefix, then random groups of four.

``ACME-7KQ2-XPNM-4R9T-HCWZ``: the alphabet has no look-alike characters
(no ``0``/``O``, no ``1``/``I``), so a key read aloud or typed from paper
comes out right.  Four groups of four give 32**16 = 2**80 keys.

What users type is normalised before look-up (:func:`normalize`, the rule
shared with the SDK in :mod:`software_dna.wire.keytext`): upper-cased, spaces
removed, typographic dashes read as ``-``, a generated key typed with spaces
or no dash regrouped. Nothing else is mapped (look-alikes never occur in
generated keys).
"""

from __future__ import annotations

import re
import secrets

from software_dna.wire import keytext

__all__ = ["ALPHABET", "InvalidKeyFormat", "generate", "last4", "normalize"]

ALPHABET = keytext.ALPHABET
GROUPS = keytext.GROUPS
GROUP_LEN = keytext.GROUP_LEN
PREFIX_RE = re.compile(r"^[A-Z0-9]{1,12}$")


class InvalidKeyFormat(ValueError):
    """A prefix or key that can never be valid."""


def generate(prefix: str | None = None) -> str:
    """A fresh random license key, e.g. ``ACME-7KQ2-XPNM-4R9T-HCWZ``.

    ``prefix``: 1-12 characters ``A-Z0-9`` (upper-cased); raises
    :class:`InvalidKeyFormat` otherwise.
    """
    groups = [
        "".join(secrets.choice(ALPHABET) for _ in range(GROUP_LEN)) for _ in range(GROUPS)
    ]
    if prefix:
        prefix = prefix.upper()
        if not PREFIX_RE.match(prefix):
            raise InvalidKeyFormat("a key prefix is 1 to 12 characters A-Z and 0-9")
        groups.insert(0, prefix)
    return "-".join(groups)


def normalize(key: str) -> str:
    """The canonical form of a typed key (:func:`software_dna.wire.keytext.normalize`).

    Raises:
        InvalidKeyFormat: it cannot be a key.
    """
    try:
        return keytext.normalize(key)
    except ValueError as exc:
        raise InvalidKeyFormat("not a license key") from exc


def last4(key: str) -> str:
    """The last four characters, kept for display (``…-HCWZ``)."""
    return normalize(key)[-4:]
