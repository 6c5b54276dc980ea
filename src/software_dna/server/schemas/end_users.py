"""Bodies of end users: search and export (GDPR access)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from software_dna.server.schemas.activations import ClientFacts
from software_dna.server.schemas.base import Out
from software_dna.server.schemas.types import UtcTime

__all__ = ["EndUserActivation", "EndUserExport", "EndUserList", "EndUserMail", "EndUserSummary",
           "export_document"]


class EndUserSummary(Out):
    """An end user found by email (no personal data in the answer)."""

    id: str
    created_at: UtcTime
    consent_at: UtcTime | None
    erased_at: UtcTime | None


class EndUserList(Out):
    """``GET /v1/admin/end-users?email=``."""

    end_users: list[EndUserSummary]


class EndUserActivation(Out):
    """One activation in an export."""

    id: str
    license_id: str
    product: str
    fingerprint_id: str
    created_at: UtcTime
    last_seen_at: UtcTime
    deactivated_at: UtcTime | None
    client: ClientFacts
    #: The computer's name the app set with the end user's consent (None: none, or erased).
    label: str | None = None


class EndUserMail(Out):
    """One mail sent (or queued) to the end user, with the address it went to."""

    id: str
    template: str
    license_id: str | None
    status: str
    created_at: UtcTime
    sent_at: UtcTime | None
    to: str | None


class EndUserExport(Out):
    """Everything held about one end user (GDPR access)."""

    id: str
    email: str | None
    registration: dict[str, str] | None
    consent_at: UtcTime | None
    email_confirmed_at: UtcTime | None = None
    created_at: UtcTime
    erased_at: UtcTime | None
    activations: list[EndUserActivation]
    settings: dict[str, dict[str, Any]]
    #: Licenses this person bought (``License.buyer_id``).
    licenses: list[str] = Field(default_factory=list)
    #: The sent log's mails to this person.
    mails: list[EndUserMail] = Field(default_factory=list)


def export_document(data: Mapping[str, Any]) -> str:
    """An export (:func:`~software_dna.server.services.endusers.export_end_user`'s dict) as
    the JSON file a download gives: checked by :class:`EndUserExport`, keys sorted, indented
    by two, ending with a newline.  The panel and the portal both serve exactly this."""
    checked = EndUserExport.model_validate(dict(data))
    return json.dumps(checked.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
