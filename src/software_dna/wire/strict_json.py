"""Strict JSON parsing shared by the token layer and the local store.

RFC 8259 leaves duplicate object keys to the parser; two parsers that pick
different duplicates are a classic way to smuggle claims past a check. Here a
duplicate key, ``NaN``/``Infinity``, invalid UTF-8, a document nested too
deeply, or a top level that is not an object is refused with ``ValueError``.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

__all__ = ["loads_object"]


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def loads_object(data: bytes | str, *, max_size: int) -> dict[str, Any]:
    """Parse one JSON object strictly.

    Args:
        data: UTF-8 bytes or text.
        max_size: largest accepted length of ``data`` (bytes or characters).

    Raises:
        ValueError: too large, not UTF-8, not JSON, a duplicate key,
            ``NaN``/``Infinity``, nested too deeply, or not an object.
    """
    if len(data) > max_size:
        raise ValueError("JSON document too large")
    try:
        value = json.loads(data, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (UnicodeDecodeError, RecursionError) as exc:
        raise ValueError("invalid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("JSON document must be an object")
    return value
