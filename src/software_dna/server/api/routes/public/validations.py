"""Validation, the hottest route: ``POST /v1/activations/{id}/validate``."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from software_dna.server import services
from software_dna.server.api.deps import AppState, IdPath, bearer, fingerprint_data
from software_dna.server.api.errors import error_responses
from software_dna.server.api.middleware import parsed_body
from software_dna.server.schemas import ValidateIn, ValidateOut
from software_dna.server.services import hotpath, usage
from software_dna.wire.codes import Code

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["end user"])
_ERRORS = error_responses(400, 401, 403, 404, 409, 410, 413, 429)


_ACTIVATION_ID = TypeAdapter(IdPath)
#: Refusals before the request proved it holds the activation's secret.
_UNAUTHENTICATED = frozenset({Code.UNAUTHORIZED, Code.INVALID_REQUEST, Code.RATE_LIMITED})
#: FastAPI's answer to a body it cannot parse (neither JSON nor a JSON decode error).
_UNPARSABLE = "There was an error parsing the body"


def _located(loc: tuple[int | str, ...], exc: ValidationError) -> list[dict[str, Any]]:
    return [{**error, "loc": (*loc, *error["loc"])} for error in exc.errors(include_url=False)]


class _LeanValidateRoute(APIRoute):
    """The validate route with a request handler of its own, inside FastAPI.

    FastAPI's generic handler (dependency solving, the content type parsed
    with the email module, telemetry hooks, ...) cost about as much CPU as the
    validation.  This one checks the same things with the same pydantic types,
    in FastAPI's order, and raises what FastAPI raises -- the same
    ``RequestValidationError`` (so the same 400 ``invalid_request``
    messages) or ``HTTPException(400)`` -- then calls the endpoint.  It uses
    the body the body-limit middleware already parsed.  The OpenAPI document
    comes from the endpoint's signature as for any route;
    tests/server/test_lean_route.py compares the answers with FastAPI's own
    handler.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return _handle_validate


async def _handle_validate(request: Request) -> Response:
    raw = await request.body()
    data: Any = None
    if raw:
        # The body-limit middleware let only application/json bodies through.
        known, data = parsed_body(request.scope, raw)
        if not known:
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise RequestValidationError([{
                    "type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error",
                    "input": {}, "ctx": {"error": exc.msg},
                }], body=exc.doc) from exc
            except Exception as exc:  # e.g. nesting too deep, bytes that are no UTF
                raise HTTPException(status_code=400, detail=_UNPARSABLE) from exc
    errors: list[dict[str, Any]] = []
    activation_id: str = request.path_params["activation_id"]
    try:
        _ACTIVATION_ID.validate_python(activation_id)
    except ValidationError as exc:
        errors += _located(("path", "activation_id"), exc)
    body: ValidateIn | None = None
    if not raw:
        errors.append({"type": "missing", "loc": ("body",), "msg": "Field required",
                       "input": None})
    else:
        try:
            body = ValidateIn.model_validate(data, from_attributes=True)
        except ValidationError as exc:
            errors += _located(("body",), exc)
    if errors:
        raise RequestValidationError(errors, body=data)
    assert body is not None
    return await validate(activation_id, body, request)


async def validate(activation_id: IdPath, body: ValidateIn, request: Request) -> Response:
    """A fresh token for this activation, or a refusal."""
    # The hottest route (services.hotpath): no per-request dependencies.  On
    # PostgreSQL its common case runs right here on the event loop, on a connection
    # of its own with bounded waits (db.make_inline_engine): a hand-off to the thread
    # pool costs more CPU than the validation.  The other cases, and SQLite (which
    # may wait for its write lock), take one hand-off to the thread pool.
    state: AppState = request.app.state.sdna
    secret = bearer(request)
    fingerprint = fingerprint_data(body.fingerprint, body.previous)
    trusted = frozenset(body.trusted_keys) if body.trusted_keys is not None else None
    app_version = body.client.app_version if body.client is not None else None
    counter = usage.counter_of(request.app.state)
    try:
        result = await _validated(state, activation_id, secret, fingerprint=fingerprint,
                                  nonce=body.nonce, trusted=trusted, app_version=app_version)
    except services.ServiceError as exc:
        # Past the secret (a revoked license, another machine...): the activation's product.
        product = "" if exc.code in _UNAUTHENTICATED else await run_in_threadpool(
            usage.activation_product, state.sessions, activation_id)
        counter.record(usage.VALIDATION, exc.code.value, product)
        raise
    counter.record(usage.VALIDATION, usage.OK, result.product_id)
    # Serialized once here instead of FastAPI validating it against response_model
    # again (the OpenAPI document is unchanged).
    answer = ValidateOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                         rebound=result.rebound, activation_secret=result.activation_secret)
    return Response(answer.model_dump_json(), media_type="application/json")


async def _validated(state: AppState, activation_id: str, secret: str | None, *,
                     fingerprint: services.FingerprintData, nonce: str,
                     trusted: frozenset[str] | None,
                     app_version: str | None) -> services.Validated:
    """The validation on the fast path when it applies, else on the ORM path."""
    result: services.Validated | None = None
    if state.direct is not None:
        result = await hotpath.validate_direct(state.direct, state.ctx, activation_id, secret,
                                        fingerprint=fingerprint, nonce=nonce,
                                        trusted=trusted, app_version=app_version)
        if result is None:
            result = await run_in_threadpool(
                hotpath.validate_orm, state.sessions, state.ctx, activation_id, secret,
                fingerprint=fingerprint, nonce=nonce, trusted=trusted, app_version=app_version)
        return result
    return await run_in_threadpool(
        hotpath.validate, state.engine, state.sessions, state.ctx, activation_id, secret,
        fingerprint=fingerprint, nonce=nonce, trusted=trusted, app_version=app_version)


router.add_api_route("/activations/{activation_id}/validate", validate, methods=["POST"],
                     response_model=ValidateOut, responses=_ERRORS,
                     route_class_override=_LeanValidateRoute)
