"""What the end user reads when a license has ended: one wording for both halves.

The server puts it in its ``license_expired`` refusal; the SDK says it when a
stored token shows the end offline. Worded by the license's kind.
"""

from __future__ import annotations

from datetime import datetime

from software_dna.wire.claims import Kind
from software_dna.wire.times import format_rfc3339

__all__ = ["expired_message"]

#: kind -> (what ended, "ended" / "expired", what to do next)
_WORDING = {
    Kind.TRIAL: ("The trial", "ended", "Buy a license to keep using the product."),
    Kind.EVALUATION: ("The evaluation period", "ended",
                      "Buy a license to keep using the product."),
    Kind.TEST: ("This test code", "expired", "Ask the vendor for a new one."),
    Kind.FULL: ("The license", "expired", "Renew it to keep using the product."),
}


def expired_message(kind: Kind, ended: datetime | None = None) -> str:
    """The sentence for a license of ``kind`` that ended at ``ended``.

    Args:
        kind: the license's kind.
        ended: when it ended (aware); None when the sentence need not say
            when (e.g. "The trial has ended.").

    Returns:
        e.g. ``"The trial ended on 2026-12-01T10:00:00Z. Buy a license to keep
        using the product."``
    """
    subject, verb, advice = _WORDING[kind]
    if ended is None:
        return f"{subject} has {verb}. {advice}"
    return f"{subject} {verb} on {format_rfc3339(ended)}. {advice}"
