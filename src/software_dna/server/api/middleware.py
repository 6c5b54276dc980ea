"""Request-body middleware: size limits, JSON only, strict JSON.

Bodies over the limit answer 413 ``too_large``, a body that is not
``application/json`` 415 ``unsupported_media_type``, and JSON that two
parsers could read differently (duplicate keys, ``NaN``) 400
``invalid_request``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from software_dna.server.api.errors import error_response
from software_dna.server.config import ADMIN_BODY_LIMIT, PUBLIC_BODY_LIMIT
from software_dna.wire.codes import Code

__all__ = ["PARSED_BODY", "BodyLimitMiddleware", "parsed_body"]


#: Scope key under which :class:`BodyLimitMiddleware` leaves the body it parsed
#: (a route may use it instead of parsing the same bytes again: :func:`parsed_body`).
PARSED_BODY = "software_dna.parsed_body"


def _strict_json(body: bytes, scope: Scope) -> bool:
    """False for a body that two JSON parsers could read differently.

    Duplicate keys (which one wins is up to the parser) and ``NaN`` /
    ``Infinity`` (not JSON) are refused; anything else that fails to parse is
    left to the route's own validation, which answers with its usual 400.
    A body that parses is left in ``scope[PARSED_BODY]``.
    """
    try:
        value = json.loads(body, object_pairs_hook=_no_duplicate_keys,
                           parse_constant=_no_constant)
    except _NotStrict:
        return False
    except (ValueError, RecursionError):
        return True
    scope[PARSED_BODY] = (body, value)
    return True


def parsed_body(scope: Scope, body: bytes) -> tuple[bool, Any]:
    """``(True, value)`` when the middleware parsed exactly ``body``, else ``(False, None)``.

    The strict parse gives the same value as ``json.loads`` for every body it
    lets through (it refuses duplicate keys and the non-JSON constants).
    """
    stored = scope.get(PARSED_BODY)
    if stored is not None and stored[0] == body:
        return True, stored[1]
    return False, None


class _NotStrict(Exception):
    """A JSON construct that strict parsing refuses."""


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _NotStrict
    return result


def _no_constant(name: str) -> Any:
    raise _NotStrict


class BodyLimitMiddleware:
    """Reads request bodies up front: over the limit -> 413, non-JSON -> 415.

    The limit is 64 KiB on public routes and 1 MiB on ``/v1/admin``; both
    the ``Content-Length`` header and the bytes actually streamed are checked.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = ADMIN_BODY_LIMIT if path.startswith("/v1/admin") else PUBLIC_BODY_LIMIT
        length: str | None = None
        ctype = ""
        for key, value in scope.get("headers", []):
            name = key.lower()
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value.decode("latin-1")

        def too_large() -> ASGIApp:
            return error_response(Code.TOO_LARGE,
                                  f"The request body is over {limit // 1024} KiB.")

        if length is not None:
            if not length.isdigit():
                await error_response(Code.INVALID_REQUEST, "Bad Content-Length.")(
                    scope, receive, send)
                return
            if int(length) > limit:
                await too_large()(scope, receive, send)
                return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await too_large()(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body:
            if ctype.split(";")[0].strip().lower() != "application/json":
                await error_response(Code.UNSUPPORTED_MEDIA_TYPE,
                                     "Send the body as application/json.")(scope, receive, send)
                return
            if not _strict_json(body, scope):
                await error_response(
                    Code.INVALID_REQUEST,
                    "The body is not valid JSON (duplicate keys, NaN and Infinity are refused).",
                )(scope, receive, send)
                return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
