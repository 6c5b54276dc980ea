"""Immutability for the SDK's small value classes (``License``, ``Fingerprint``, keys).

These classes are plain classes with ``__slots__`` rather than dataclasses:
``dataclasses`` imports ``inspect`` (with ``ast``, ``dis``, ``tokenize``),
which costs more than the rest of the SDK's start-up (docs/performance.md).
:class:`Frozen` gives them what ``@dataclass(frozen=True)`` gave: attributes
are set only in ``__init__``, and any later assignment or deletion raises
:class:`dataclasses.FrozenInstanceError` (an :class:`AttributeError`),
imported only on that error path. Equality, hashing, ``repr`` and
``__reduce__`` (for ``copy`` and ``pickle``) are written out in each class.
"""

from __future__ import annotations

from typing import NoReturn

__all__ = ["Frozen"]

_set = object.__setattr__


def _refuse(action: str, name: str) -> NoReturn:
    from dataclasses import FrozenInstanceError  # only on this error path

    raise FrozenInstanceError(f"cannot {action} field {name!r}")


class Frozen:
    """Base class of an immutable value: ``__init__`` calls :meth:`_open`, sets, then :meth:`_seal`.

    A subclass lists its attributes in ``__slots__`` and sets them in
    ``__init__`` between the two calls, annotated ``Final`` there so that
    type checkers refuse assignments too.
    """

    __slots__ = ("_sealed",)
    _sealed: bool

    def _open(self) -> None:
        _set(self, "_sealed", False)

    def _seal(self) -> None:
        _set(self, "_sealed", True)

    def __setattr__(self, name: str, value: object) -> None:
        if self._sealed:
            _refuse("assign to", name)
        _set(self, name, value)

    def __delattr__(self, name: str) -> None:
        _refuse("delete", name)
