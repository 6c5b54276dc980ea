"""Payment providers' webhooks: ``POST /v1/stores/{provider}/webhook`` (docs/commerce.md).

The body is read as raw bytes (the signature covers them, byte for byte)
after the public body limit and the JSON checks of the middleware; the
service verifies, parses and applies it in its own transaction. A refusal is
a 400 JSON error (422 ``price_not_mapped`` for a sale of an unmapped price, so
the provider retries it) and changes nothing.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.concurrency import run_in_threadpool

from software_dna.server.api.deps import State
from software_dna.server.api.errors import error_responses
from software_dna.server.schemas.stores import StoreWebhookOut
from software_dna.server.services import stores

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["stores"])
#: Any short text: an unknown provider is the service's 400, never a 422.
ProviderPath = Annotated[str, Path(max_length=32)]


@router.post("/stores/{provider}/webhook", response_model=StoreWebhookOut,
             responses=error_responses(400, 413, 415, 422))
async def store_webhook(provider: ProviderPath, request: Request,
                        state: State) -> StoreWebhookOut:
    """Take one signed event from Stripe, Paddle Billing or Lemon Squeezy."""
    body = await request.body()
    headers = {name.lower(): value for name, value in request.headers.items()}
    received = await run_in_threadpool(stores.receive_webhook, state.engine, state.ctx,
                                       provider, body, headers)
    return StoreWebhookOut(outcome=received.outcome)
