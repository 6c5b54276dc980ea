"""License keys as end users type them: the one normalisation the SDK and the server share.

Generated keys look like ``ACME-7KQ2-XPNM-4R9T-HCWZ``: an optional prefix,
then four groups of four characters from :data:`ALPHABET` (no look-alikes:
no ``0``/``O``, no ``1``/``I``). What people type differs: lower case,
spaces, a word processor's en or em dashes, a key pasted with no dash at
all. :func:`normalize` maps all of these to the one canonical form, so the
server's look-up (a keyed hash of it) finds the license whatever was typed.
"""

from __future__ import annotations

import re

__all__ = ["ALPHABET", "GROUPS", "GROUP_LEN", "normalize"]

#: The characters of a generated key's random groups.
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
GROUPS = 4
GROUP_LEN = 4
_RANDOM_LEN = GROUPS * GROUP_LEN
_KEY_RE = re.compile(r"[A-Z0-9]+(-[A-Z0-9]+)*")
#: What a word processor, a PDF or a phone keyboard makes of ``-``: hyphen,
#: non-breaking hyphen, figure, en and em dashes, horizontal bar, minus sign,
#: small and full-width hyphen-minus.
_DASHES = dict.fromkeys(
    map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"), "-")


def normalize(key: str) -> str:
    """The canonical form of a typed license key (or renewal code).

    Upper case, whitespace removed, typographic dashes read as ``-``. When
    the last 16 characters (separators aside) are of :data:`ALPHABET`, the
    key is regrouped as generated keys are: those 16 in four groups of four,
    what comes before them as the prefix (``acme 7kq2xpnm–4r9t hcwz`` ->
    ``ACME-7KQ2-XPNM-4R9T-HCWZ``), so spaces in place of dashes, or none at
    all, find the key too.

    Args:
        key: what the end user typed.

    Returns:
        The canonical key.

    Raises:
        ValueError: it cannot be a key (empty, other characters, 4-64
            characters once normalised).
    """
    upper = key.translate(_DASHES).upper()
    compact = "".join(upper.split())
    bare = compact.replace("-", "")
    if len(bare) >= _RANDOM_LEN and all(c in ALPHABET for c in bare[-_RANDOM_LEN:]):
        head, tail = bare[:-_RANDOM_LEN], bare[-_RANDOM_LEN:]
        groups = [tail[i:i + GROUP_LEN] for i in range(0, _RANDOM_LEN, GROUP_LEN)]
        compact = "-".join([head, *groups] if head else groups)
    if not (4 <= len(compact) <= 64) or not _KEY_RE.fullmatch(compact):
        raise ValueError("not a license key")
    return compact
