"""Outbound webhook endpoints: the vendor's own systems told what happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from software_dna.server.models.base import Base

__all__ = ["WebhookEndpoint"]


class WebhookEndpoint(Base):
    """A URL subscribed to event types, signed per Standard Webhooks with its own secret.

    ``events`` lists the event types it receives; ``product_id`` None means
    every product.  ``personal_data`` marks an endpoint allowed to receive
    personal data (an end user's or buyer's email) in payloads; others never do.
    ``secret_ciphertext`` is the ``whsec_`` signing secret, encrypted.
    """

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]]
    product_id: Mapped[str | None] = mapped_column(String(64), index=True)
    personal_data: Mapped[bool] = mapped_column(default=False)
    secret_ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
