"""Field types shared by the bodies: times, ids, keys, text, fingerprints, durations.

Strings have a length and, where they are identifiers, an alphabet; times go
out as RFC 3339 UTC (``2026-11-29T12:00:00Z``) and come in as RFC 3339 with an
offset.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    PlainSerializer,
    StrictInt,
    StringConstraints,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from software_dna.server.domain.seats import SEAT_MODES
from software_dna.server.domain.terms import ISSUABLE_KINDS
from software_dna.server.domain.tokens import PROTECTIONS

__all__ = [
    "ArmoredText",
    "ActivationLabel",
    "ClientText",
    "ComponentName",
    "ComponentValue",
    "Days",
    "Email",
    "Feature",
    "Features",
    "FingerprintId",
    "IdempotencyKey",
    "Kid",
    "LeaseSeconds",
    "LicenseKey",
    "LockoutLimit",
    "LockoutPeriod",
    "Nonce",
    "ObjectId",
    "Password",
    "ProductId",
    "IssuableKind",
    "Protection",
    "RegKey",
    "RegValue",
    "Registration",
    "SeatMode",
    "Seconds",
    "ShortClientText",
    "TestCodeLimit",
    "TrustedKeys",
    "TimeIn",
    "TrialDays",
    "UtcTime",
    "error_location",
]


def _fmt(value: datetime) -> str:
    utc = value.astimezone(timezone.utc)
    # RFC 3339 years have four digits; strftime("%Y") does not pad years before 1000.
    return f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%SZ")


def _only_str(value: object) -> object:
    if not isinstance(value, (str, datetime)):
        raise ValueError("an RFC 3339 date-time string with an offset")
    return value


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(timezone.utc)
    except OverflowError as exc:  # e.g. 9999-12-31T23:59:59-14:00 is past year 9999 in UTC
        raise ValueError("time out of range") from exc


#: A time as sent: RFC 3339 ``...Z`` (UTC).
UtcTime = Annotated[datetime, PlainSerializer(_fmt, return_type=str)]
#: A time as received: RFC 3339 with an offset, converted to UTC.
TimeIn = Annotated[
    AwareDatetime,
    BeforeValidator(_only_str),
    AfterValidator(_to_utc),
    PlainSerializer(_fmt, return_type=str),
]
Nonce = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{16,64}$")]
IdempotencyKey = Nonce
ProductId = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
]
ObjectId = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{1,40}$")]
LicenseKey = Annotated[
    str, StringConstraints(strict=True, min_length=4, max_length=64, pattern=r"^[A-Za-z0-9 -]+$")
]
Password = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=256)]
#: Bidirectional embeddings, overrides and isolates: they reorder what a reader sees.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _readable_text(value: str) -> str:
    """Text people read (registration details, client facts): no control characters.

    Refused: C0/C1 controls (NUL, escape sequences that drive a vendor's
    terminal), line and paragraph separators, and the bidi overrides that
    make a name display as something else.  Letters of every script, emoji
    and joiners are fine.
    """
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char in _BIDI_CONTROLS:
            raise ValueError("control, separator and bidi-override characters are not allowed")
    return value


def _email_text(value: str) -> str:
    """An email address: no control, format (zero-width, BOM, bidi), private-use or unassigned
    characters; international letters (RFC 6531) and IDN domains are fine."""
    for char in value:
        if unicodedata.category(char)[0] in ("C", "Z"):
            raise ValueError("control, format and separator characters are not allowed")
    return value


Email = Annotated[
    str,
    StringConstraints(
        strict=True,
        strip_whitespace=True,
        max_length=254,
        pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$",
    ),
    AfterValidator(_email_text),
]
RegKey = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64),
                   AfterValidator(_readable_text)]
RegValue = Annotated[str, StringConstraints(strict=True, max_length=256),
                     AfterValidator(_readable_text)]
def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


#: The name the end user gave a computer (``activate(label=...)``; personal data): 1 to 64
#: characters people read, shown in the license portal beside the seat.
ActivationLabel = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64),
                            AfterValidator(_readable_text), AfterValidator(_not_blank)]
#: A short fact about the client (SDK version, OS, Python), shown in the vendor's tools.
ClientText = Annotated[str, StringConstraints(strict=True, max_length=64),
                       AfterValidator(_readable_text)]
ShortClientText = Annotated[str, StringConstraints(strict=True, max_length=32),
                            AfterValidator(_readable_text)]
#: How many registration details an end user may give.
MAX_REGISTRATION_DETAILS = 16


def _few_details(value: Any) -> Any:
    """Refuse more than :data:`MAX_REGISTRATION_DETAILS` before each one is validated: a
    body of hundreds of bad details would otherwise raise two errors each, every one
    costing the server time for a request that shows no credential."""
    if isinstance(value, dict) and len(value) > MAX_REGISTRATION_DETAILS:
        raise ValueError(f"at most {MAX_REGISTRATION_DETAILS} registration details")
    return value


#: The end user's registration details (name, company ...): at most 16.
Registration = Annotated[dict[RegKey, RegValue], BeforeValidator(_few_details),
                         Field(max_length=MAX_REGISTRATION_DETAILS)]


def _one_of(values: tuple[str, ...]) -> Callable[[object], object]:
    """A check that the input is one of ``values``, worded as pydantic words a ``Literal``."""
    expected = " or ".join([", ".join(repr(v) for v in values[:-1]), repr(values[-1])])

    def check(value: object) -> object:
        if not isinstance(value, str) or value not in values:
            raise PydanticCustomError("literal_error", "Input should be {expected}",
                                      {"expected": expected})
        return value

    return check


def _enum(values: tuple[str, ...]) -> dict[str, Any]:
    """The JSON schema of a string that is one of ``values``."""
    return {"enum": list(values), "type": "string"}


def error_location(loc: Iterable[int | str]) -> str:
    """Where a validation error is, for an error message: field names only.

    Parts that are not plain field names (the keys of free-form objects such
    as ``registration``, sent by the client) are shown as ``*``, so a message
    never echoes what was sent.
    """
    parts = []
    for part in loc:
        if part == "body":
            continue
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(part if _FIELD_NAME.match(part) or part == "[key]" else "*")
    return ".".join(parts)


ComponentName = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[a-z][a-z0-9_]{0,31}$")
]
ComponentValue = Annotated[str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9_-]{43}$")]
FingerprintId = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
]
Feature = Annotated[
    str, StringConstraints(strict=True, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
]
Features = Annotated[list[Feature], Field(max_length=64)]
Seconds = Annotated[StrictInt, Field(ge=0, le=10 * 365 * 86400)]
#: A product's protection level (the SDK's ``Protection``), as its string.
Protection = Annotated[str, BeforeValidator(_one_of(PROTECTIONS)),
                       WithJsonSchema(_enum(PROTECTIONS))]
Kid = Annotated[str, StringConstraints(strict=True, pattern=r"^k4\.pid\.[A-Za-z0-9_-]{1,60}$")]
#: The signing keys an app trusts (their ids), sent with each request answered with a
#: token; bounded (an app ships its current key and a few older ones during a rotation).
TrustedKeys = Annotated[list[Kid], Field(min_length=1, max_length=16)]
#: Trials, test codes, terms and renewal.
TrialDays = Annotated[StrictInt, Field(ge=0, le=365)]
TestCodeLimit = Annotated[StrictInt, Field(ge=0, le=100)]
Days = Annotated[StrictInt, Field(ge=1, le=3650)]
#: Seat policy: floating lease length, lock-out window and limits.
LeaseSeconds = Annotated[StrictInt, Field(ge=5, le=86400)]
LockoutPeriod = Annotated[StrictInt, Field(ge=3600, le=366 * 86400)]
LockoutLimit = Annotated[StrictInt, Field(ge=0, le=100_000)]
#: A kind of license the vendor issues directly (the SDK's ``Kind``), as its string.
IssuableKind = Annotated[str, BeforeValidator(_one_of(ISSUABLE_KINDS)),
                         WithJsonSchema(_enum(ISSUABLE_KINDS))]
#: What a seat is (the SDK's ``SeatMode``), as its string.
SeatMode = Annotated[str, BeforeValidator(_one_of(SEAT_MODES)),
                     WithJsonSchema(_enum(SEAT_MODES))]
ArmoredText = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=48 * 1024)]
