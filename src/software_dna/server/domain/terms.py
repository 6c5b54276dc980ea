"""License kinds and the rules of a license's term (docs/licenses.md).

A term is perpetual (no end), a fixed end (``expires_at``), or N days after
the first activation (``duration_days``; evaluations and test codes always
work this way).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from software_dna.wire.claims import Kind, Protection

__all__ = [
    "EVALUATION_MAX_DAYS",
    "ISSUABLE_KINDS",
    "LATEST_END",
    "later_by",
    "KINDS",
    "MAX_DAYS",
    "TEST_CODE_MAX_DAYS",
    "terms_problem",
]

#: The kinds of license (the token's ``kind`` claim), from the SDK's :class:`Kind`.
KINDS = tuple(kind.value for kind in Kind)
#: The kinds a vendor issues directly (trials start from the app; test codes have a route).
ISSUABLE_KINDS = (Kind.FULL.value, Kind.EVALUATION.value)
#: The latest end a license can have: the last second RFC 3339 can write.
LATEST_END = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
#: Longest term, extension or renewal code, in days (10 years).
MAX_DAYS = 3650
#: Evaluation keys run 1 to 60 days after their first activation.
EVALUATION_MAX_DAYS = 60
#: Test codes run 1 to 7 days after their first activation.
TEST_CODE_MAX_DAYS = 7


def terms_problem(*, protection: str, kind: str, expires_at: datetime | None,
                  duration_days: int | None, subscription: bool) -> str | None:
    """What is wrong with a combination of terms (a sentence for the vendor), else None.

    Args:
        protection: the product's protection level (a subscription needs
            ``mandatory``).
        kind: ``full``, ``evaluation`` or ``test`` (trials are started by the app).
        expires_at: a fixed end (aware), or None.
        duration_days: days after the first activation, or None.
        subscription: True for a subscription.
    """
    if kind not in KINDS or kind == Kind.TRIAL.value:
        return "kind must be full, evaluation or test (trials are started by the app)."
    if expires_at is not None and duration_days is not None:
        return "Give either expires_at or expires_after_days, not both."
    if duration_days is not None and not 1 <= duration_days <= MAX_DAYS:
        return f"expires_after_days must be 1 to {MAX_DAYS}."
    if kind == Kind.EVALUATION.value and (duration_days is None
                                          or duration_days > EVALUATION_MAX_DAYS):
        return f"An evaluation key needs expires_after_days of 1 to {EVALUATION_MAX_DAYS}."
    if kind == Kind.TEST.value and (duration_days is None or duration_days > TEST_CODE_MAX_DAYS):
        return f"A test code runs 1 to {TEST_CODE_MAX_DAYS} days."
    if subscription and kind != Kind.FULL.value:
        return "Only a full license can be a subscription."
    if subscription and protection != Protection.MANDATORY.value:
        return ("A subscription needs the product's protection level 'mandatory' "
                "(so that a cancellation reaches every app).")
    return None


def later_by(start: datetime, days: int) -> datetime:
    """``start`` plus ``days`` days, but never past :data:`LATEST_END` (no overflow)."""
    if LATEST_END - start <= timedelta(days=days):
        return LATEST_END
    return start + timedelta(days=days)
