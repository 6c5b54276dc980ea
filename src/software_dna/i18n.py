"""Message catalogues: the texts end users read, in their language.

The catalogues are GNU gettext ``.mo`` files under ``software_dna/locale``,
extracted and compiled with Babel when the package is built (``make
messages``); at run time only the standard library's :mod:`gettext` reads
them, so neither the SDK nor an app gains a dependency.  Two domains:

- ``software_dna``: the SDK's end-user messages (its exceptions' texts);
- ``portal``: the license portal's pages (the server).

English is the source language (the message ids); every other language in
:data:`LANGUAGES` ships complete (a test checks that no message lacks a
translation).  A language without a catalogue, or a message without a
translation, falls back to English; nothing here raises.
"""

from __future__ import annotations

import functools
import gettext
import re
from pathlib import Path

__all__ = ["DEFAULT", "LANGUAGES", "LOCALE_DIR", "N_", "negotiate", "normalize", "translation"]

#: Where the compiled catalogues live: ``<LOCALE_DIR>/<language>/LC_MESSAGES/<domain>.mo``.
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
#: The source language.
DEFAULT = "en"
#: The languages that ship complete, by tag; their names in themselves.
LANGUAGES: dict[str, str] = {"en": "English", "de": "Deutsch"}

_TAG = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")
# A range's parameters: only a weight, a qvalue of RFC 9110 (0 to 1, three decimals at most).
_WEIGHT = re.compile(r"^\s*[qQ]\s*=\s*(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)\s*$")


def N_(message: str) -> str:  # noqa: N802  # the conventional gettext marker
    """Mark ``message`` for extraction without translating it now (it is translated
    where it is shown)."""
    return message


def normalize(language: str | None) -> str | None:
    """The shipped language a tag names (``de-AT`` -> ``de``; ``EN_gb`` -> ``en``), else None.

    Args:
        language: a BCP 47 tag or POSIX locale name (``de``, ``de-CH``, ``de_DE.UTF-8``,
            ``de_DE@euro``); anything else (``C``, ``*``, garbage) gives None.
    """
    if not language or len(language) > 100:
        return None
    base = language.strip().split(".", 1)[0].split("@", 1)[0]
    if not _TAG.match(base):
        return None
    primary = re.split(r"[-_]", base, maxsplit=1)[0].lower()
    return primary if primary in LANGUAGES else None


def negotiate(accept_language: str | None, *, default: str = DEFAULT) -> str:
    """The best shipped language for an HTTP ``Accept-Language`` header (RFC 9110, 12.5.4).

    Ranges are taken in order of their ``q`` weight (ties: as written); ``*``,
    unknown languages, ranges with ``q=0`` and ranges whose weight is not a valid
    ``qvalue`` (``q=2``, ``q=-1``, ``q=abc``) are skipped.  A header that names no
    shipped language, or is longer than 1000 characters, gives ``default``; only its
    first 30 ranges are read.
    """
    if not accept_language or len(accept_language) > 1000:
        return default
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")[:30]):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params:
            match = _WEIGHT.match(params)
            if match is None:
                continue
            weight = float(match.group(1))
        if weight <= 0:
            continue
        ranked.append((-weight, position, tag.strip()))
    for _, _, tag in sorted(ranked):
        language = normalize(tag)
        if language is not None:
            return language
    return default


@functools.lru_cache(maxsize=32)
def translation(language: str | None, domain: str = "software_dna") -> gettext.NullTranslations:
    """The catalogue of ``domain`` in ``language`` (English: the messages as written).

    Args:
        language: a tag (:func:`normalize` applies); None or unknown: English.
        domain: ``software_dna`` (the SDK) or ``portal`` (the server's portal).

    Returns:
        A :class:`gettext.NullTranslations` whose ``gettext``/``ngettext``
        answer the translation, or the message itself when there is none.
    """
    shipped = normalize(language)
    if shipped is None or shipped == DEFAULT:
        return gettext.NullTranslations()
    return gettext.translation(domain, localedir=str(LOCALE_DIR), languages=[shipped],
                               fallback=True)
