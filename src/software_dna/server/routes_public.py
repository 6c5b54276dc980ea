"""End-user routes, called by the SDK (docs/protocol.md, "End-user routes")."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from software_dna.server import service
from software_dna.server.api import AppState, Db, IdPath, State, bearer, parsed_body
from software_dna.server.schemas import (
    ActivateIn,
    ActivateOut,
    ErasureOut,
    ErrorBody,
    FingerprintIn,
    HealthOut,
    NonceIn,
    OfflineActivateIn,
    OfflineActivateOut,
    OfflineDeactivateIn,
    OfflineDeactivateOut,
    ReceiptOut,
    SettingsIn,
    SettingsOut,
    ValidateIn,
    ValidateOut,
)
from software_dna.server.service import hotpath, offline

router = APIRouter(prefix="/v1", tags=["end user"])

ActivationId = IdPath
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 403, 404, 409, 410, 413, 429)
}


def _fingerprint(fp: FingerprintIn) -> service.FingerprintData:
    return service.FingerprintData(id=fp.id, components=dict(fp.components),
                                   algorithm=fp.algorithm)


@router.get("/health", response_model=HealthOut)
def health(session: Db) -> HealthOut:
    """Liveness and database check."""
    session.execute(text("SELECT 1"))
    session.rollback()
    return HealthOut(status="ok", server_time=service.utcnow())


@router.post("/activations", response_model=ActivateOut, status_code=201, responses={
    **_ERRORS, 200: {"model": ActivateOut, "description": "The same activation again (a "
                     "replay of its idempotency key, or this machine's seat)"}})
def activate(body: ActivateIn, request: Request, response: Response, state: State,
             session: Db) -> ActivateOut:
    """Activate a license on this machine (201; 200 for an idempotent replay)."""
    req = service.ActivationRequest(
        product=body.product,
        license_key=body.license_key,
        fingerprint=_fingerprint(body.fingerprint),
        nonce=body.nonce,
        idempotency_key=body.idempotency_key,
        password=body.password,
        email=body.email,
        registration=body.registration,
        consent=body.consent,
        client=body.client.model_dump(),
        installation_id=body.installation_id,
        replaces=(body.replaces.activation_id, body.replaces.activation_secret)
        if body.replaces is not None else None,
    )
    address = request.client.host if request.client is not None else None
    result = service.activate(session, state.ctx, req, client_address=address)
    if not result.created:
        response.status_code = 200
    return ActivateOut(activation_id=result.activation_id,
                       activation_secret=result.activation_secret, token=result.token,
                       nonce=result.nonce, server_time=result.server_time)


_ACTIVATION_ID = TypeAdapter(ActivationId)
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


async def validate(activation_id: ActivationId, body: ValidateIn, request: Request) -> Response:
    """A fresh token for this activation, or a refusal."""
    # The hottest route (service/hotpath.py): no per-request dependencies.  On
    # PostgreSQL its common case runs right here on the event loop, on a connection
    # of its own with bounded waits (db.make_inline_engine): a hand-off to the thread
    # pool costs more CPU than the validation.  The other cases, and SQLite (which
    # may wait for its write lock), take one hand-off to the thread pool.
    state: AppState = request.app.state.sdna
    secret = bearer(request)
    fingerprint = _fingerprint(body.fingerprint)
    result: service.Validated | None = None
    if state.inline_engine is not None:
        result = hotpath.validate_plain(state.inline_engine, state.ctx, activation_id, secret,
                                        fingerprint=fingerprint, nonce=body.nonce)
        if result is None:
            result = await run_in_threadpool(
                hotpath.validate_orm, state.sessions, state.ctx, activation_id, secret,
                fingerprint=fingerprint, nonce=body.nonce)
    else:
        result = await run_in_threadpool(
            hotpath.validate, state.engine, state.sessions, state.ctx, activation_id, secret,
            fingerprint=fingerprint, nonce=body.nonce)
    # Serialized once here instead of FastAPI validating it against response_model
    # again (the OpenAPI document is unchanged).
    answer = ValidateOut(token=result.token, nonce=result.nonce, server_time=result.server_time,
                         rebound=result.rebound)
    return Response(answer.model_dump_json(), media_type="application/json")


router.add_api_route("/activations/{activation_id}/validate", validate, methods=["POST"],
                     response_model=ValidateOut, responses=_ERRORS,
                     route_class_override=_LeanValidateRoute)


@router.post("/activations/{activation_id}/deactivate", response_model=ReceiptOut,
             responses=_ERRORS)
def deactivate(activation_id: ActivationId, body: NonceIn, request: Request, state: State,
               session: Db) -> ReceiptOut:
    """Free this activation's seat."""
    result = service.deactivate(session, state.ctx, activation_id, bearer(request), body.nonce)
    return ReceiptOut(receipt=result.receipt, nonce=result.nonce, server_time=result.server_time)


@router.get("/activations/{activation_id}/settings", response_model=SettingsOut,
            responses=_ERRORS)
def get_settings(activation_id: ActivationId, request: Request, state: State,
                 session: Db) -> SettingsOut:
    """The end user's settings document (kept per license)."""
    doc = service.get_settings(session, state.ctx, activation_id, bearer(request))
    return SettingsOut(settings=doc.settings, updated_at=doc.updated_at,
                       server_time=doc.server_time)


@router.put("/activations/{activation_id}/settings", response_model=SettingsOut,
            responses=_ERRORS)
def put_settings(activation_id: ActivationId, body: SettingsIn, request: Request, state: State,
                 session: Db) -> SettingsOut:
    """Replace the end user's settings document (a JSON object of at most 32 KiB)."""
    doc = service.put_settings(session, state.ctx, activation_id, bearer(request), body.settings)
    return SettingsOut(settings=doc.settings, updated_at=doc.updated_at,
                       server_time=doc.server_time)


@router.post("/activations/{activation_id}/erasure", response_model=ErasureOut,
             responses=_ERRORS)
def erasure(activation_id: ActivationId, body: NonceIn, request: Request, state: State,
            session: Db) -> ErasureOut:
    """The end user's erasure request: personal data erased, a fresh limited token."""
    result = service.request_erasure(session, state.ctx, activation_id, bearer(request),
                                     body.nonce)
    return ErasureOut(token=result.token, receipt=result.receipt, nonce=result.nonce,
                      server_time=result.server_time)


@router.post("/offline/activations", response_model=OfflineActivateOut, status_code=201,
             responses={**_ERRORS, 200: {"model": OfflineActivateOut,
                                         "description": "The request was answered before"}})
def offline_activate(body: OfflineActivateIn, request: Request, response: Response,
                     state: State, session: Db) -> OfflineActivateOut:
    """Answer an air-gapped activation request (201; 200 when answered before)."""
    address = request.client.host if request.client is not None else None
    result = offline.respond(session, state.ctx, body.request, client_address=address)
    if not result.created:
        response.status_code = 200
    return OfflineActivateOut(response=result.response, activation_id=result.activation_id,
                              license_id=result.license_id, product=result.product,
                              fingerprint_id=result.fingerprint_id,
                              server_time=result.server_time)


@router.post("/offline/deactivations", response_model=OfflineDeactivateOut, responses=_ERRORS)
def offline_deactivate(body: OfflineDeactivateIn, state: State,
                       session: Db) -> OfflineDeactivateOut:
    """Free the seat named by a signed deactivation receipt (idempotent)."""
    result = offline.deactivate_from_receipt(session, state.ctx, body.receipt)
    return OfflineDeactivateOut(
        activation_id=result.activation_id, license_id=result.license_id,
        product=result.product, deactivated_at=result.deactivated_at,
        already_deactivated=result.already_deactivated, receipt=result.receipt,
        nonce=result.nonce, server_time=result.server_time)
