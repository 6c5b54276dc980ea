"""The sandbox mail templates are rendered in, and the bounded check of a vendor's template.

Templates are Jinja2 run in a :class:`jinja2.sandbox.SandboxedEnvironment`
(no Python internals; strict variables; the HTML body auto-escaped) whose
``range`` yields at most :data:`MAX_RANGE` items.

A template a vendor saves is first rendered with its sample context in a
child process (:func:`check`), and every mail from a vendor's template is
rendered the same way (:func:`render_bounded`; the built-in templates, which
are ours, render in-process): ``sys.executable -m`` this module, the
template and the contexts as JSON on its standard input: the render gets
:data:`RENDER_SECONDS` seconds and :data:`MEMORY_BYTES` of address space
(Linux and other systems with ``RLIMIT_AS``).  Nested loops, huge string
repetitions and padding filters (``center``, ``indent``, ``format`` widths)
therefore cost the server at most that, never a request thread or the worker
for minutes; a part over :data:`MAX_PART_CHARS` characters is refused too.
This module imports nothing of the server but Jinja2, so the child starts
quickly.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "MAX_PART_CHARS",
    "MAX_RANGE",
    "MEMORY_BYTES",
    "RENDER_SECONDS",
    "CheckFailed",
    "Parts",
    "check",
    "render",
    "render_bounded",
]

#: The most items a template's ``range()`` yields (jinja2's own bound is 100000).
MAX_RANGE = 1000
#: Wall-clock seconds the check's render may take.
RENDER_SECONDS = 2.0
#: Address space of the check's child process, bytes.
MEMORY_BYTES = 512 * 1024 * 1024
#: The most characters a rendered subject, text or HTML part may have (a mail that
#: large would be refused by mail servers, so the mail would never arrive).
MAX_PART_CHARS = 500_000
#: Seconds the child may take to start (import Jinja2) before its render budget.
_START_SECONDS = 20.0


class _Sandbox(SandboxedEnvironment):
    """The sandbox with a ``range`` bounded by :attr:`MAX_RANGE`."""

    MAX_RANGE = MAX_RANGE

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["range"] = self._range

    def _range(self, *args: int) -> range:
        rng = range(*args)
        if len(rng) > self.MAX_RANGE:
            raise OverflowError(f"range() is limited to {self.MAX_RANGE} items in a template")
        return rng


_TEXT = _Sandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_HTML = _Sandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)


@dataclass(frozen=True)
class Parts:
    """A mail's three template sources, or the three rendered texts (``html`` None: none)."""

    subject: str
    text: str
    html: str | None


def render(template: Parts, context: Mapping[str, Any]) -> Parts:
    """Render ``template`` in the sandbox, in this process (the subject made one line).

    Raises:
        Exception: jinja2's TemplateError (SecurityError, UndefinedError, a
            syntax error) or what an expression raised (OverflowError of a
            range over :data:`MAX_RANGE`, TypeError, ...).
    """
    subject = _TEXT.from_string(template.subject).render(context)
    text = _TEXT.from_string(template.text).render(context)
    html = (_HTML.from_string(template.html).render(context)
            if template.html is not None else None)
    return Parts(" ".join(subject.split()), text, html)


class CheckFailed(Exception):
    """The template does not render within the bounds; the message says why (for the vendor)."""


_TOO_COSTLY = "The template takes too long or too much memory to render."
_TOO_LARGE = (f"The template renders a part over {MAX_PART_CHARS:,} characters: "
              "too large a mail to send.")


def check(template: Parts, contexts: Sequence[Mapping[str, Any]]) -> None:
    """Render ``template`` with each of ``contexts`` in a bounded child process.

    Args:
        template: the sources.
        contexts: JSON-able contexts to render with (each must render).

    Raises:
        CheckFailed: a render failed (the message names the error), took over
            :data:`RENDER_SECONDS` seconds or :data:`MEMORY_BYTES` of memory, or
            gave a part over :data:`MAX_PART_CHARS` characters.
    """
    _in_child(template, contexts)


def render_bounded(template: Parts, context: Mapping[str, Any]) -> Parts:
    """:func:`render` in a bounded child process (how a vendor's template is rendered
    for a mail: its branches may depend on the mail's real values).

    Raises:
        CheckFailed: as :func:`check`.
    """
    (rendered,) = _in_child(template, [context])
    return rendered


def _in_child(template: Parts, contexts: Sequence[Mapping[str, Any]]) -> list[Parts]:
    request = json.dumps({"template": [template.subject, template.text, template.html],
                          "contexts": [dict(c) for c in contexts]})
    try:
        done = subprocess.run(  # noqa: S603 -- this interpreter, this module, no shell
            [sys.executable, "-m", __name__], input=request.encode("utf-8"),
            capture_output=True, timeout=_START_SECONDS + RENDER_SECONDS, check=False)
    except subprocess.TimeoutExpired:
        raise CheckFailed(_TOO_COSTLY) from None
    try:
        answer = json.loads(done.stdout.decode("utf-8"))
    except ValueError:  # killed by a limit, or out of memory before it could answer
        raise CheckFailed(_TOO_COSTLY) from None
    if not isinstance(answer, dict):
        raise CheckFailed(_TOO_COSTLY)
    if answer.get("error"):
        raise CheckFailed(str(answer["error"]))
    return [Parts(*parts) for parts in answer["rendered"]]


class _OutOfTime(BaseException):
    """The render's time is up (a BaseException: a template cannot catch it)."""


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise _OutOfTime


def _limit_memory() -> None:
    try:
        import resource  # noqa: PLC0415 -- Unix only
    except ImportError:
        return
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit already: keep it
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))


def _main() -> int:
    """The child: read the request, render under the limits, write ``{"error": ...}``."""
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    subject, text, html = request["template"]
    template = Parts(subject, text, html)
    _limit_memory()
    timer = hasattr(signal, "setitimer")
    if timer:
        signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, RENDER_SECONDS)
    error: str | None = None
    rendered: list[list[str | None]] = []
    try:
        for context in request["contexts"]:
            done = render(template, context)
            parts = [done.subject, done.text, done.html]
            if any(part is not None and len(part) > MAX_PART_CHARS for part in parts):
                error = _TOO_LARGE
                break
            rendered.append(parts)
    except (_OutOfTime, MemoryError, RecursionError):
        error = _TOO_COSTLY
    except Exception as exc:  # any fault of a vendor's template is reported
        error = f"The template does not render: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        if timer:
            signal.setitimer(signal.ITIMER_REAL, 0)
    sys.stdout.write(json.dumps({"error": error, "rendered": [] if error else rendered}))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
