"""The database schema (SQLAlchemy 2 ORM), one module per table's noun.

Times are stored as naive UTC and come back timezone-aware (UTC) through
:class:`UTCDateTime`; durations are integer seconds.  What is personal data
lives only in :class:`EndUser` (encrypted) and :class:`LicenseSettings`
(encrypted); the audit log holds ids only.

Changing a model means adding an Alembic revision under
``software_dna/server/migrations/versions``; importing this package
registers every table on :attr:`Base.metadata`.
"""

from __future__ import annotations

from software_dna.server.models.activation import Activation
from software_dna.server.models.activation_event import ActivationEvent
from software_dna.server.models.admin_key import AdminApiKey
from software_dna.server.models.audit import AuditEntry
from software_dna.server.models.base import Base, UTCDateTime
from software_dna.server.models.binding import BindingIndex, MachineBinding
from software_dna.server.models.end_user import EmailConfirmation, EndUser
from software_dna.server.models.lease import Lease
from software_dna.server.models.ledger import LedgerEntry
from software_dna.server.models.license import License
from software_dna.server.models.license_settings import LicenseSettings
from software_dna.server.models.mail import EmailTemplate, MailOptOut
from software_dna.server.models.outbox import DeliveryAttempt, OutboxItem, ScheduledJob
from software_dna.server.models.password_reset import PasswordResetCode
from software_dna.server.models.portal import PortalLink, PortalSession, ProductLogo
from software_dna.server.models.product import Product
from software_dna.server.models.rate_limit import RateLimitCounter
from software_dna.server.models.renewal_code import RenewalCode
from software_dna.server.models.signing_key import SigningKey
from software_dna.server.models.staff import StaffMember, StaffSession
from software_dna.server.models.store import StoreConnector, StoreEvent, StoreMapping, StoreOrder
from software_dna.server.models.trial import Trial
from software_dna.server.models.usage import UsageCount
from software_dna.server.models.webhook import WebhookEndpoint

__all__ = [
    "WebhookEndpoint",
    "StoreOrder",
    "StoreMapping",
    "StoreEvent",
    "StoreConnector",
    "ScheduledJob",
    "OutboxItem",
    "MailOptOut",
    "EmailTemplate",
    "DeliveryAttempt",
    "Activation",
    "ActivationEvent",
    "AdminApiKey",
    "AuditEntry",
    "Base",
    "BindingIndex",
    "EmailConfirmation",
    "EndUser",
    "Lease",
    "LedgerEntry",
    "License",
    "LicenseSettings",
    "MachineBinding",
    "PasswordResetCode",
    "PortalLink",
    "PortalSession",
    "Product",
    "ProductLogo",
    "RateLimitCounter",
    "RenewalCode",
    "SigningKey",
    "StaffMember",
    "StaffSession",
    "Trial",
    "UsageCount",
    "UTCDateTime",
]
