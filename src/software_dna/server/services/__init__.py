"""The license server's business logic, shared by the HTTP API and the CLI.

Every function takes a SQLAlchemy :class:`~sqlalchemy.orm.Session` first
and, where it needs secrets or settings, a :class:`Context` (settings + the
master-key :class:`~software_dna.server.crypto.Vault`).  Functions that
change something commit before returning; on a refusal they raise
:class:`ServiceError` (a ``code`` from :class:`software_dna.wire.codes.Code`,
whose ``status`` is the HTTP status, a ``message`` and optional ``details``;
docs/protocol.md) and the caller rolls back.  Times are timezone-aware UTC
datetimes, durations integer seconds.

Typical use (the CLI does this)::

    from software_dna.server import services
    from software_dna.server.config import Settings
    from software_dna.server.db import make_engine, make_session_factory

    settings = Settings.from_env()
    ctx = services.Context.from_settings(settings)
    sessions = make_session_factory(make_engine(settings, pooled=False))
    with sessions() as session:
        services.create_product(session, product_id="acme-editor")
        services.generate_key(session, ctx, "acme-editor")
        lic, key = services.issue_license(session, ctx, product_id="acme-editor", seats=2)

Products: :func:`create_product`, :func:`list_products`, :func:`get_product`,
:func:`update_product`.

Signing keys: :func:`generate_key`, :func:`rotate_key`, :func:`retire_key`,
:func:`list_keys`, :func:`public_keys`, :func:`active_signing_key`.

Licenses: :func:`issue_license`, :func:`list_licenses`, :func:`get_license`,
:func:`find_license_by_key`, :func:`update_license`, :func:`suspend_license`,
:func:`resume_license`, :func:`revoke_license`, :func:`set_license_password`,
:func:`seats_in_use`.

Activations (end-user side): :func:`activate`, :func:`validate`,
:func:`deactivate`, :func:`get_settings`, :func:`put_settings`,
:func:`request_erasure`; (vendor side) :func:`list_activations`,
:func:`get_activation`, :func:`remove_activation`.

End users: :func:`find_end_users`, :func:`get_end_user`,
:func:`export_end_user`, :func:`erase_end_user`.

Admin keys and audit: :func:`create_admin_key`, :func:`check_admin_key`,
:func:`has_admin_key`, :func:`revoke_admin_keys`, :func:`list_audit`.

Rate limiting: :func:`ratelimit.hit` (used by :func:`activate`).

Air-gapped activation (docs/offline.md): :mod:`software_dna.server.services.offline`
-- ``respond`` (an activation request in, a response out, through
:func:`activate`) and ``deactivate_from_receipt``.

Trials and test codes (``trials``): :func:`start_trial`, :func:`list_trials`,
:func:`remove_trial`, :func:`issue_test_code`, :func:`list_test_codes`,
:func:`reset_test_code`; trial to paid: :func:`replace_activation` (``activations``).

A license's term (``license_terms``): :func:`extend_license`,
:func:`make_perpetual`, :func:`cancel_subscription`; renewal codes
(``renewals``): :func:`issue_renewal_codes`, :func:`list_renewal_codes`,
:func:`redeem_renewal_code`.

Seats (``seats``, ``leases``, ``password_reset``; docs/seats.md): machine,
user and floating seats, roll-over, the re-activation lock-out
(:func:`seats.lockout_status`; every limit of a license, shown and reset:
:func:`lockouts.lockout_report`, :func:`lockouts.reset_lockouts`), floating leases
(:func:`leases.list_leases`; check-out and check-in go through
:func:`validate`), password reset by email
(:func:`password_reset.request_reset`, :func:`password_reset.confirm_reset`).
"""

from __future__ import annotations

from software_dna.server.domain.tokens import PROTECTIONS
from software_dna.server.services import (
    events,  # registers the webhook events' audit listener: every change can raise one
    hotpath,
    leases,
    offline,
    password_reset,
    ratelimit,
    seats,
)
from software_dna.server.services.activations import (
    activate,
    deactivate,
    list_activations,
    remove_activation,
    replace_activation,
    request_erasure,
    validate,
)
from software_dna.server.services.admin import (
    check_admin_key,
    create_admin_key,
    has_admin_key,
    list_audit,
    revoke_admin_keys,
)
from software_dna.server.services.authentication import authenticate
from software_dna.server.services.bindings import parse_fingerprint
from software_dna.server.services.common import Context, utcnow
from software_dna.server.services.endusers import (
    erase_end_user,
    export_end_user,
    find_end_users,
    restore_license,
)
from software_dna.server.services.errors import ServiceError
from software_dna.server.services.keys import (
    active_signing_key,
    generate_key,
    list_keys,
    public_keys,
    retire_key,
    rotate_key,
)
from software_dna.server.services.license_terms import (
    cancel_subscription,
    extend_license,
    make_perpetual,
)
from software_dna.server.services.licenses import (
    LicenseSearch,
    check_expiry,
    issue_license,
    list_licenses,
    resume_license,
    revoke_license,
    search_licenses,
    seats_in_use,
    set_license_password,
    suspend_license,
    update_license,
)
from software_dna.server.services.lookups import (
    find_license_by_key,
    get_activation,
    get_end_user,
    get_license,
    get_product,
    get_renewal_code,
)
from software_dna.server.services.messages import (
    Activated,
    ActivationRequest,
    Erased,
    FingerprintData,
    Receipted,
    Validated,
)
from software_dna.server.services.products import (
    create_product,
    list_products,
    update_product,
)
from software_dna.server.services.renewals import (
    Renewed,
    issue_renewal_codes,
    list_renewal_codes,
    redeem_renewal_code,
)
from software_dna.server.services.settings import SettingsDoc, get_settings, put_settings
from software_dna.server.services.trials import (
    TrialRequest,
    issue_test_code,
    list_test_codes,
    list_trials,
    remove_trial,
    reset_test_code,
    start_trial,
)

__all__ = [
    "PROTECTIONS",
    "Activated",
    "ActivationRequest",
    "Context",
    "Erased",
    "FingerprintData",
    "Receipted",
    "Renewed",
    "ServiceError",
    "SettingsDoc",
    "TrialRequest",
    "Validated",
    "activate",
    "active_signing_key",
    "authenticate",
    "cancel_subscription",
    "check_admin_key",
    "create_admin_key",
    "create_product",
    "deactivate",
    "erase_end_user",
    "export_end_user",
    "extend_license",
    "find_end_users",
    "find_license_by_key",
    "generate_key",
    "get_activation",
    "get_end_user",
    "get_license",
    "get_product",
    "get_renewal_code",
    "get_settings",
    "has_admin_key",
    "issue_license",
    "issue_renewal_codes",
    "issue_test_code",
    "list_activations",
    "list_audit",
    "list_keys",
    "list_licenses",
    "LicenseSearch",
    "check_expiry",
    "search_licenses",
    "list_products",
    "list_renewal_codes",
    "list_test_codes",
    "list_trials",
    "make_perpetual",
    "parse_fingerprint",
    "public_keys",
    "restore_license",
    "put_settings",
    "ratelimit",
    "events",
    "hotpath",
    "leases",
    "offline",
    "password_reset",
    "seats",
    "redeem_renewal_code",
    "remove_activation",
    "remove_trial",
    "replace_activation",
    "request_erasure",
    "reset_test_code",
    "resume_license",
    "retire_key",
    "revoke_admin_keys",
    "revoke_license",
    "rotate_key",
    "seats_in_use",
    "set_license_password",
    "start_trial",
    "suspend_license",
    "update_license",
    "update_product",
    "utcnow",
    "validate",
]
