"""Bodies of mail: templates (show, set, preview), the sent log, the unsubscribe answer."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from software_dna.server.schemas.base import Out, Strict
from software_dna.server.schemas.types import UtcTime

__all__ = [
    "MailLogEntry",
    "MailLogOut",
    "MailTemplateIn",
    "MailTemplateList",
    "MailTemplateOut",
    "MailTemplateSummary",
    "PreviewIn",
    "RenderedOut",
    "UnsubscribedOut",
]

#: A template body (Jinja2 source, sandboxed), at most 64 KiB.
Body = Annotated[str, StringConstraints(strict=True, max_length=64 * 1024)]


class UnsubscribedOut(Out):
    """``POST /v1/unsubscribe/{token}``: recorded (``already``: it was before)."""

    unsubscribed: bool = True
    already: bool = False


class MailTemplateIn(Strict):
    """``PUT /v1/admin/mail-templates/{name}``: the vendor's version of a mail."""

    subject: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=300)]
    text: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64 * 1024)]
    html: Body | None = None


class MailTemplateOut(Out):
    """A template as a product uses it (``source``: ``product``, ``vendor`` or ``builtin``)."""

    name: str
    product: str | None
    source: str
    subject: str
    text: str
    html: str | None


class MailTemplateSummary(Out):
    """One line of ``GET /v1/admin/mail-templates``."""

    name: str
    description: str
    unsubscribable: bool
    source: str
    variables: list[str]


class MailTemplateList(Out):
    """``GET /v1/admin/mail-templates``."""

    product: str | None
    templates: list[MailTemplateSummary]


class PreviewIn(Strict):
    """``POST /v1/admin/mail-templates/{name}/preview``: values replacing the sample ones."""

    context: dict[str, Any] = Field(default_factory=dict)


class RenderedOut(Out):
    """A rendered mail."""

    subject: str
    text: str
    html: str | None


class MailLogEntry(Out):
    """One mail of the sent log; ``to`` is personal data (None once erased)."""

    id: str
    template: str
    product: str | None
    license_id: str | None
    end_user_id: str | None
    status: str
    attempts: int
    created_at: UtcTime
    sent_at: UtcTime | None
    last_error: str | None
    to: str | None


class MailLogOut(Out):
    """``GET /v1/admin/mail-log``, newest first."""

    mails: list[MailLogEntry]
