"""Request-body middleware: size limits, the admin key first, JSON only, strict JSON.

One admin path takes a raw image instead of JSON: ``PUT /v1/admin/products/{id}/logo``
(its route checks the body's type, after the admin key's role).

Bodies over the limit answer 413 ``too_large``, a body that is not
``application/json`` 415 ``unsupported_media_type``, a body with too many
or too deeply nested arrays and objects (:mod:`~software_dna.server.domain.json_shape`)
and JSON that two parsers could read differently (duplicate keys, ``NaN``)
400 ``invalid_request``.

On ``/v1/admin/*`` (every path under it, a 404 included) a body over
:data:`ADMIN_UNAUTHENTICATED_BODY` bytes is read only once the
``Authorization`` header holds a valid admin API key: otherwise 401
``unauthorized`` (as the routes' own check answers), without reading it.
The key is checked with the service layer's
:func:`~software_dna.server.services.check_admin_key`, in the thread pool.
Invariant: an unauthenticated request never makes the server read, scan or
parse more than 4 KiB of an admin body.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from software_dna.server.api.credentials import bearer_credential
from software_dna.server.api.errors import error_response
from software_dna.server.api.faults import RETRY_AFTER, TRANSIENT
from software_dna.server.config import ADMIN_BODY_LIMIT, PUBLIC_BODY_LIMIT
from software_dna.server.domain.json_shape import refusal
from software_dna.server.services import check_admin_key
from software_dna.wire.codes import Code

__all__ = ["ADMIN_UNAUTHENTICATED_BODY", "PARSED_BODY", "BodyLimitMiddleware", "parsed_body"]

#: Bytes of an admin body read before the admin API key has been checked.
ADMIN_UNAUTHENTICATED_BODY = 4096


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


def _admin_key_valid(scope: Scope, authorization: str) -> bool:
    """Whether the request carries a usable admin API key of any role (for the middleware)."""
    key = bearer_credential(authorization)
    if key is None:
        return False
    state = scope["app"].state.sdna  # deps.AppState
    session = state.sessions()
    try:
        return check_admin_key(session, state.ctx, key)
    finally:
        session.rollback()  # SQLite: release the lock at once
        session.close()


#: The paths that take form bodies: RFC 8058 one-click unsubscribe (the body is
#: ignored), the control panel's and the license portal's pages.
_FORM_PATHS = ("/v1/unsubscribe/", "/panel/", "/portal/")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The one admin path that takes a raw file: a product's logo (PUT; its route checks
#: the declared type, and the service reads the real one from the bytes).
_LOGO_PATH = re.compile(r"^/v1/admin/products/[^/]+/logo$")


class BodyLimitMiddleware:
    """Reads request bodies up front: over the limit -> 413, non-JSON -> 415.

    The limit is 64 KiB on public routes and 1 MiB on ``/v1/admin``; both
    the ``Content-Length`` header and the bytes actually streamed are checked.
    An admin body over 4 KiB is read only with a valid admin key (else 401);
    a body is scanned (:func:`~software_dna.server.domain.json_shape.refusal`)
    before it is parsed.  Pure ASGI: nothing is buffered before these checks.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        # Every path the admin limit applies to is held to the admin key (a 404 too).
        admin = path.startswith("/v1/admin")
        # The panel's forms (a CSV import) may be as large as an admin body.
        limit = ADMIN_BODY_LIMIT if admin or path.startswith("/panel/") else PUBLIC_BODY_LIMIT
        length: str | None = None
        ctype = ""
        authorization = ""
        for key, value in scope.get("headers", []):
            name = key.lower()
            if name == b"content-length":
                length = value.decode("latin-1")
            elif name == b"content-type":
                ctype = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        # Admin bodies: the key is checked once the body would pass 4 KiB (None: not yet).
        admitted: bool | None = None if admin else True

        async def key_checked() -> bool:
            nonlocal admitted
            if admitted is None:
                admitted = bool(authorization) and await run_in_threadpool(
                    _admin_key_valid, scope, authorization)
            return admitted

        async def refused_admin() -> ASGIApp | None:
            """None when the body may be read on; else the answer (401, or 503)."""
            try:
                if await key_checked():
                    return None
            except TRANSIENT:  # as the routes answer a database fault (api.faults)
                return error_response(
                    Code.UNAVAILABLE,
                    "The license server's database is unavailable; try again shortly.",
                    headers={"Retry-After": str(RETRY_AFTER)})
            return error_response(Code.UNAUTHORIZED, "Missing or wrong admin API key.")

        def too_large() -> ASGIApp:
            return error_response(Code.TOO_LARGE,
                                  f"The request body is over {limit // 1024} KiB.")

        if length is not None:
            if not (length.isascii() and length.isdigit() and len(length) <= 18):
                await error_response(Code.INVALID_REQUEST, "Bad Content-Length.")(
                    scope, receive, send)
                return
            if int(length) > limit:
                await too_large()(scope, receive, send)
                return
            if int(length) > ADMIN_UNAUTHENTICATED_BODY:
                answer = await refused_admin()
                if answer is not None:
                    await answer(scope, receive, send)
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
            if size > ADMIN_UNAUTHENTICATED_BODY:
                answer = await refused_admin()
                if answer is not None:
                    await answer(scope, receive, send)
                    return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        media = ctype.split(";")[0].strip().lower()
        # RFC 8058: a mail client's one-click unsubscribe is a form POST (its body is ignored).
        # The logo's route checks its type itself, after the key's role (401/403 first).
        if body and not (media in _FORM_TYPES and path.startswith(_FORM_PATHS)) and not (
                _LOGO_PATH.match(path) and scope["method"] == "PUT"):
            if media != "application/json":
                await error_response(Code.UNSUPPORTED_MEDIA_TYPE,
                                     "Send the body as application/json.")(scope, receive, send)
                return
            refused = refusal(body)
            if refused is not None:
                await error_response(Code.INVALID_REQUEST, refused)(scope, receive, send)
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
