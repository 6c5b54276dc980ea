"""Counting cases of an attack / fault family: tried, as expected, unexpected."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Scale", "Tally"]

#: Unexpected outcomes kept verbatim per family (the count is always exact).
_KEEP = 20


class Scale(enum.Enum):
    """How hard a family runs: ``SHORT`` inside ``make test``, ``LONG`` in ``make stress``."""

    SHORT = "short"
    LONG = "long"

    def pick(self, short: int, long: int) -> int:
        """``short`` or ``long`` by scale (counts, seconds ...)."""
        return short if self is Scale.SHORT else long


@dataclass
class Tally:
    """The outcome of one family run.

    Attributes:
        family: the family's name, as printed by ``make stress``.
        tried: cases run.
        expected: cases that were refused / survived exactly as designed.
        unexpected: how many were not; ``notes`` describes the first ones.
    """

    family: str
    tried: int = 0
    expected: int = 0
    unexpected: int = 0
    notes: list[str] = field(default_factory=list)

    def check(self, ok: bool, case: str) -> bool:
        """Count one case; ``case`` describes it when it was not as expected."""
        self.tried += 1
        if ok:
            self.expected += 1
        else:
            self.unexpected += 1
            if len(self.notes) < _KEEP:
                self.notes.append(case)
        return ok

    def merge(self, other: Tally) -> None:
        """Add another tally's counts to this one."""
        self.tried += other.tried
        self.expected += other.expected
        self.unexpected += other.unexpected
        self.notes.extend(other.notes[: max(0, _KEEP - len(self.notes))])

    def line(self) -> str:
        """One line: ``family  tried N  as expected N  unexpected N``."""
        return (f"{self.family:<22} tried {self.tried:>8}   refused/held as expected "
                f"{self.expected:>8}   unexpected {self.unexpected:>4}")

    def assert_clean(self) -> None:
        """For pytest: fail listing the unexpected cases, if any; and at least one case ran."""
        assert self.tried > 0, f"{self.family}: no case ran"
        assert self.unexpected == 0, f"{self.family}: {self.unexpected} unexpected:\n" + \
            "\n".join(self.notes)
