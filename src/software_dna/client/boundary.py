"""The SDK's boundary: what escapes a public method of ``LicenseClient`` is a ``LicenseError``.

Every layer below translates the errors it knows (``requests``, ``ssl``,
``OSError`` of the store, the wire layer's ``ValueError``) into the
documented exceptions of :mod:`software_dna.errors`, with ``raise ... from``.
:func:`guard` is the last net, around each public method: a module that
cannot be imported any more (a frozen app whose unpacked folder was removed
while it ran) is :class:`~software_dna.errors.ServerUnreachable`, and
anything else that still escapes -- a defect -- is a plain
:class:`~software_dna.errors.LicenseError` whose ``__cause__`` is the
original, so one ``except LicenseError`` is enough in the app.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from software_dna.errors import LicenseError, Message
from software_dna.i18n import N_

from .transport import network_unavailable

__all__ = ["guard", "unexpected"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def unexpected(exc: BaseException) -> LicenseError:
    """``exc``, which the SDK should have translated, as a :class:`LicenseError`.

    The original is the result's ``__cause__`` (set here, so that it is there
    also when the result is handed to a callback rather than raised).
    """
    if isinstance(exc, ImportError):
        error: LicenseError = network_unavailable(exc)
    else:
        error = LicenseError(Message(
            N_("The license check failed unexpectedly (%(error)s)."),
            error=f"{type(exc).__name__}: {exc}"))
    error.__cause__ = exc
    return error


def guard(method: Callable[_P, _R], *, passthrough: tuple[type[Exception], ...] = ()
          ) -> Callable[_P, _R]:
    """``method`` raising only :class:`LicenseError` (and ``passthrough``, argument errors).

    ``MemoryError`` and ``BaseException`` that are not ``Exception``
    (``KeyboardInterrupt``, ``SystemExit``) pass unchanged.
    """

    @functools.wraps(method)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except (LicenseError, MemoryError):
            raise
        except passthrough:
            raise
        except Exception as exc:
            raise unexpected(exc) from exc

    return guarded
