"""A byte scan that refuses JSON bodies too intricate to parse, before they are parsed.

Parsing costs CPU per container (array or object) far more than per byte: a
1 MiB body of ``[{},{},...]`` took about 240 ms on the event loop, whoever
sent it.  :func:`refusal` looks at the raw bytes first and refuses a body
with more than :data:`MAX_CONTAINERS` arrays and objects, or nested deeper
than :data:`MAX_DEPTH`, at a cost of a few milliseconds per MiB: every step
over the whole body is a bytes method or a compiled C loop, and Python only
walks the bracket characters once there are few of them.

Invariant (tested with hypothesis): a document that ``json.loads`` accepts
and that is within both limits is never refused; every document over one of
them is.  No protocol body comes close: the largest legitimate bodies (a
settings document, a product's feature list) have tens of containers and a
depth under 10.
"""

from __future__ import annotations

__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "refusal"]

#: Arrays and objects a body may hold, in all.
MAX_CONTAINERS = 1000
#: How deep arrays and objects may nest (``[[1]]`` is 2).
MAX_DEPTH = 32

_BRACKETS = b"[]{}"
#: Every byte value but the four brackets (``bytes.translate`` deletes these).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)


def _outside_strings(body: bytes) -> bytes:
    """``body`` without the contents of its JSON strings (brackets in strings do not count).

    In JSON a backslash occurs only inside a string and always starts an
    escape, so removing ``\\\\`` pairs and then ``\\"`` leaves no escaped
    quote; the quotes that remain open and close strings by turns.
    """
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(plain.split(b'"')[0::2])


def refusal(body: bytes) -> str | None:
    """Why ``body`` is refused before parsing, or None when it may be parsed.

    Args:
        body: the raw request body (any bytes; not necessarily valid JSON).

    Returns:
        A sentence for the 400 answer, or None.  A body that is not JSON at
        all is left to the parser, which refuses it cheaply.
    """
    if b"[" not in body and b"{" not in body:
        return None
    brackets = _outside_strings(body).translate(None, _NOT_BRACKETS)
    opened = brackets.count(b"[") + brackets.count(b"{")
    # A document within the limits has as many closing brackets as opening ones.
    if opened > MAX_CONTAINERS or len(brackets) - opened > MAX_CONTAINERS:
        return (f"The body holds more than {MAX_CONTAINERS:,} JSON arrays and objects; "
                "send a smaller document.")
    depth = deepest = 0
    for byte in brackets:
        if byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    if deepest > MAX_DEPTH:
        return (f"The body nests JSON arrays and objects deeper than {MAX_DEPTH} levels; "
                "send a flatter document.")
    return None
