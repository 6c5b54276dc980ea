"""Seat modes and the bounds of a product's seat policy (docs/seats.md)."""

from __future__ import annotations

from software_dna.wire.claims import SeatMode

__all__ = [
    "FLOATING",
    "LEASE_DURATION_RANGE",
    "LIMIT_RANGE",
    "REACTIVATION_PERIOD_RANGE",
    "SEAT_MODES",
    "seat_options_problem",
]

#: What a seat can be (the license's ``seat_mode``), from the SDK's :class:`SeatMode`.
SEAT_MODES = tuple(mode.value for mode in SeatMode)
#: The seat mode whose seats are leases (docs/seats.md).
FLOATING = SeatMode.FLOATING.value

#: Bounds of the product's seat policy (seconds / counts, inclusive).
LEASE_DURATION_RANGE = (5, 86400)
REACTIVATION_PERIOD_RANGE = (3600, 366 * 86400)
LIMIT_RANGE = (0, 100_000)


def seat_options_problem(seat_mode: str, rollover: bool) -> str | None:
    """What is wrong with a license's seat options (a sentence for the vendor), else None."""
    if seat_mode not in SEAT_MODES:
        return f"seat_mode must be one of {', '.join(SEAT_MODES)}."
    if rollover and seat_mode == FLOATING:
        return ("Roll-over applies to machine and user seats, not to floating seats "
                "(a floating seat frees itself when its lease lapses).")
    return None
