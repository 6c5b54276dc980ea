"""RFC 3339 times on the wire: parsed into aware UTC, written as ``YYYY-MM-DDTHH:MM:SSZ``.

Every time in a token, a receipt, a stored document or an answer of the
server is an RFC 3339 (https://www.rfc-editor.org/rfc/rfc3339) string with an
explicit offset; a time without one is refused.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

__all__ = ["CLOCK_SKEW", "format_rfc3339", "parse_rfc3339"]

#: How far the client's clock may be off from the server's before times are
#: held against it (``nbf`` in the future, ``exp`` in the past, the clock set
#: back). Five minutes, as is usual for signed tokens.
CLOCK_SKEW = timedelta(minutes=5)

_RFC3339 = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[Tt ]"
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?P<frac>\.\d{1,9})?"
    r"(?P<tz>[Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)


def parse_rfc3339(value: object) -> datetime:
    """Parse an RFC 3339 date-time with an explicit offset into aware UTC.

    Args:
        value: a ``str`` such as ``"2026-11-29T12:00:00Z"`` or
            ``"2026-11-29T17:30:00.5+05:30"`` (RFC 3339 section 5.6).

    Returns:
        A timezone-aware :class:`datetime` in UTC.

    Raises:
        ValueError: not a string, no offset (a naive time), an impossible
            date, or any other departure from RFC 3339. A leap second
            (``:60``) is read as the last instant of that minute.
    """
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("time must be an RFC 3339 string")
    found = _RFC3339.fullmatch(value)
    if found is None:
        raise ValueError(f"not an RFC 3339 time with an offset: {value!r}")
    second = int(found["s"])
    leap = second == 60
    frac = found["frac"] or ""
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    try:
        year, month, day = (int(p) for p in found["date"].split("-"))
        tz_text = found["tz"]
        if tz_text in ("Z", "z"):
            tz = timezone.utc
        else:
            sign = -1 if tz_text[0] == "-" else 1
            hours, minutes = int(tz_text[1:3]), int(tz_text[4:6])
            if hours > 23 or minutes > 59:
                raise ValueError("offset out of range")
            tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
        moment = datetime(
            year, month, day, int(found["h"]), int(found["m"]),
            59 if leap else second, 999999 if leap else micro, tzinfo=tz,
        )
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a valid time: {value!r}") from exc
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError(f"time out of range: {value!r}") from exc


def format_rfc3339(moment: datetime) -> str:
    """Format an aware datetime as RFC 3339 in UTC, e.g. ``2026-11-29T12:00:00Z``.

    Microseconds are kept when non-zero. Raises ``ValueError`` for a naive datetime.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("naive datetime: give a timezone-aware time")
    utc = moment.astimezone(timezone.utc)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"
