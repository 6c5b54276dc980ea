"""A clock a test moves by hand, for ``LicenseClient(clock=...)``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

__all__ = ["SimulatedClock"]


class SimulatedClock:
    """The app's clock in a test: it starts at the real time and moves only when told.

    Call it for the time (a timezone-aware UTC :class:`~datetime.datetime`);
    give it to ``LicenseClient(clock=...)``. Only the app's clock moves: the
    license server keeps its own time.

    Args:
        start: the time it shows first (timezone-aware); default: now.

    Raises:
        ValueError: ``start`` has no time zone.
    """

    def __init__(self, start: datetime | None = None) -> None:
        if start is not None and start.utcoffset() is None:
            raise ValueError("start must be timezone-aware (e.g. timezone.utc)")
        self._start = datetime.now(timezone.utc) if start is None else start
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        """The time it shows: ``start`` plus every :meth:`advance` (UTC)."""
        return (self._start + self.offset).astimezone(timezone.utc)

    def advance(self, by: timedelta | None = None, **parts: float) -> datetime:
        """Move forward (or back, with a negative step) by ``by`` or ``timedelta(**parts)``.

        ``clock.advance(hours=2)`` is ``clock.advance(timedelta(hours=2))``.

        Returns:
            The new time.

        Raises:
            TypeError: both ``by`` and keyword parts, or neither.
        """
        if (by is None) == (not parts):
            raise TypeError("advance(timedelta) or advance(days=..., hours=..., ...), one of them")
        self.offset += by if by is not None else timedelta(**parts)
        return self()

    def __repr__(self) -> str:
        return f"SimulatedClock({self().isoformat()})"
