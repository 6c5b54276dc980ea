"""The API's error answers: one body for every error, and the handlers that make it.

Every error is a JSON body ``{"error": {"code", "message"}}`` (plus
``details``, ``receipt`` or ``retry_at`` where they apply): validation errors
and malformed JSON (400 ``invalid_request``), unknown routes (404
``not_found``), wrong methods (405 ``method_not_allowed``), bodies over the
limit (413 ``too_large``), a body that is not JSON (415
``unsupported_media_type``), refusals of the service layer (the
:class:`~software_dna.server.services.errors.ServiceError`'s code and its
status), and unexpected faults (500 ``internal_error``, no stack trace,
nothing from the request).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from software_dna.server.api.faults import install_database_fault_handlers
from software_dna.server.schemas import ErrorBody, error_location
from software_dna.server.services.errors import ServiceError
from software_dna.wire.codes import Code

__all__ = ["error_response", "error_responses", "install_handlers"]

log = logging.getLogger("software_dna.server")

_HTTP_CODES: dict[int, Code] = {
    400: Code.INVALID_REQUEST,
    401: Code.UNAUTHORIZED,
    403: Code.FORBIDDEN,
    404: Code.NOT_FOUND,
    405: Code.METHOD_NOT_ALLOWED,
    406: Code.NOT_ACCEPTABLE,
    413: Code.TOO_LARGE,
    415: Code.UNSUPPORTED_MEDIA_TYPE,
    422: Code.INVALID_REQUEST,
    429: Code.RATE_LIMITED,
}


def error_response(code: Code, message: str, *, status: int | None = None,
                   details: Mapping[str, Any] | None = None, receipt: str | None = None,
                   headers: dict[str, str] | None = None,
                   retry_at: datetime | None = None) -> JSONResponse:
    """The protocol's error body ``{"error": {"code", "message", ...}}``.

    Args:
        code: the protocol code; the HTTP status is ``code.status`` unless
            ``status`` is given (an HTTP error of the framework's own).
        message: the human sentence.
        details: structured facts about the refusal, sent as ``details``.
        receipt: a signed receipt, sent as ``receipt``.
        headers: extra response headers (e.g. ``Retry-After``).
        retry_at: an aware time, sent as ``retry_at`` in RFC 3339 UTC.
    """
    detail: dict[str, Any] = {"code": code.value, "message": message}
    if details is not None:
        detail["details"] = dict(details)
    if receipt is not None:
        detail["receipt"] = receipt
    if retry_at is not None:
        detail["retry_at"] = retry_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return JSONResponse({"error": detail}, status_code=code.status if status is None else status,
                        headers=headers)


def error_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """The OpenAPI ``responses`` of a route that may answer these error statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


def _validation_message(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "The request is malformed."
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "The body is not valid JSON."
    where = error_location(first.get("loc", ())) or "body"
    # The message names the field and the rule, never the value sent.
    return f"Invalid {where}: {first.get('msg', 'invalid value')}."[:300]


def _validation_code(exc: RequestValidationError) -> Code:
    """``invalid_fingerprint`` for a first error in a fingerprint, else ``invalid_request``."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    # A body without a fingerprint at all is a malformed request, not a bad fingerprint.
    if loc[:2] in (("body", "fingerprint"), ("body", "previous")) and (
            len(loc) > 2 or first.get("type") != "missing"):
        return Code.INVALID_FINGERPRINT
    return Code.INVALID_REQUEST


def install_handlers(app: FastAPI) -> None:
    """Answer every error of ``app`` with the protocol's error body."""
    @app.exception_handler(ServiceError)
    async def _service_error(_: Request, exc: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
        return error_response(exc.code, exc.message, details=exc.details, receipt=exc.receipt,
                              headers=headers, retry_at=exc.retry_at)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(_validation_code(exc), _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, Code.HTTP_ERROR)
        message = {
            404: "No such route.",
            405: "Method not allowed on this route.",
        }.get(exc.status_code, str(exc.detail)[:200] if exc.detail else code.value)
        if exc.status_code >= 500:
            code, message = Code.INTERNAL_ERROR, "The server failed; try again later."
        return error_response(code, message, status=exc.status_code,
                              headers=dict(exc.headers) if exc.headers else None)

    install_database_fault_handlers(app)  # 503, not 500, while the database is away

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while handling a request", type(exc).__name__)
        return error_response(Code.INTERNAL_ERROR, "The server failed; try again later.")
