"""A byte scan that refuses JSON bodies too costly to parse or to validate, before parsing.

Parsing costs CPU per container (array or object) far more than per byte: a
1 MiB body of ``[{},{},...]`` took about 240 ms on the event loop, whoever
sent it.  Validating costs CPU per object member the model refuses: one flat
object of 6,000 unknown keys (59 KB) cost 30-40 ms, nearly all of it in
building and copying one validation error per key (pydantic's
``ValidationError.errors()`` and FastAPI's copy of each error), not in the
parse (about 1 ms).  And a body that is not UTF-8 (UTF-16 or UTF-32, which
``json.loads`` reads all the same) hides its brackets and quotes from a scan
of UTF-8 bytes.

:func:`refusal` looks at the raw bytes first and refuses a body that

- is not UTF-8 (RFC 8259 section 8.1: JSON between systems MUST be UTF-8):
  a byte order mark, a NUL byte (every UTF-16 or UTF-32 JSON text has one:
  each of its ASCII characters does; JSON allows no raw NUL anywhere), or
  bytes that do not decode as UTF-8;
- holds more than :data:`MAX_CONTAINERS` arrays and objects;
- holds more than :data:`MAX_MEMBERS` object members in all (its colons
  outside strings: JSON has one per member and no other);
- nests arrays and objects deeper than :data:`MAX_DEPTH`;

at a cost of a few milliseconds per MiB: every step over the whole body is a
bytes method or a compiled C loop, and Python only walks the bracket
characters once there are few of them.  The settings service holds a stored
document to the same rule (its compact encoding), so a document is never
stored in a shape that later fails to serialise.

Invariant (tested with hypothesis): a UTF-8 document that ``json.loads``
accepts and that is within the three limits is never refused; every
document over one of them, and every document in UTF-16 or UTF-32, is.  No
protocol body comes close: the largest legitimate bodies (a settings
document, a product's feature list) have tens of containers, tens to a few
hundred members and a depth under 10.
"""

from __future__ import annotations

__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "MAX_MEMBERS", "NOT_UTF8", "refusal"]

#: Arrays and objects a body may hold, in all.
MAX_CONTAINERS = 1000
#: Object members (``"key": value`` pairs) a body may hold, in all objects together.
MAX_MEMBERS = 1000
#: How deep arrays and objects may nest (``[[1]]`` is 2).
MAX_DEPTH = 32

_BRACKETS = b"[]{}"
#: Every byte value but the four brackets (``bytes.translate`` deletes these).
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _BRACKETS)
#: Byte order marks of UTF-8, UTF-16 and UTF-32 (the UTF-32 ones start with these too).
_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")

NOT_UTF8 = "The body is not UTF-8 JSON (no byte order mark, no UTF-16 or UTF-32); send UTF-8."


def _outside_strings(body: bytes) -> bytes:
    """``body`` without the contents of its JSON strings (brackets in strings do not count).

    In JSON a backslash occurs only inside a string and always starts an
    escape, so removing ``\\\\`` pairs and then ``\\"`` leaves no escaped
    quote; the quotes that remain open and close strings by turns.  Sound for
    UTF-8 only (no other byte of a UTF-8 text equals a quote or a backslash),
    hence the encoding check first.
    """
    plain = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    return b"".join(plain.split(b'"')[0::2])


def _not_utf8(body: bytes) -> bool:
    if body.startswith(_BOMS) or b"\x00" in body:
        return True
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def refusal(body: bytes) -> str | None:
    """Why ``body`` is refused before parsing, or None when it may be parsed.

    Args:
        body: the raw request body (any bytes; not necessarily valid JSON).

    Returns:
        A sentence for the 400 answer, or None.  A UTF-8 body that is not
        JSON at all is left to the parser, which refuses it cheaply.
    """
    if _not_utf8(body):
        return NOT_UTF8
    if b"[" not in body and b"{" not in body:
        return None
    plain = _outside_strings(body)
    if plain.count(b":") > MAX_MEMBERS:
        return (f"The body holds more than {MAX_MEMBERS:,} JSON object members; "
                "send a smaller document.")
    brackets = plain.translate(None, _NOT_BRACKETS)
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
