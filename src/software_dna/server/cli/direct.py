"""The vendor operations run on the server's database through the service layer.

:class:`DirectBackend` has the signatures and JSON answers of
:class:`~software_dna.server.adminclient.AdminClient` (see
:class:`~software_dna.server.cli.backend.Backend`), so a command prints the
same document whichever backend ran it. :func:`direct_backend` opens it for
one command (one session) and turns a service refusal into
:class:`~software_dna.server.cli._common.Refused`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from software_dna.server import services as service
from software_dna.server.bootstrap import check_key_opens
from software_dna.server.cli._common import CliError, JSONDict, Refused
from software_dna.server.cli._database import check_database, database_error
from software_dna.server.config import ConfigError, Settings
from software_dna.server.db import SchemaError, check_schema, make_engine, make_session_factory
from software_dna.server.schemas import (
    ActivationOut,
    AuditOut,
    EndUserExport,
    EndUserSummary,
    KeyOut,
    LicenseOut,
    LockoutOut,
    LockoutResetOut,
    OfflineActivateOut,
    OfflineDeactivateOut,
    ProductOut,
    RenewalCodeOut,
    TrialOut,
)
from software_dna.server.schemas.mail import (
    MailLogEntry,
    MailTemplateList,
    MailTemplateOut,
    MailTemplateSummary,
    RenderedOut,
)
from software_dna.server.schemas.products import logo_out
from software_dna.server.schemas.staff import AdminKeyOut, staff_out
from software_dna.server.schemas.stores import connector_out, mapping_out
from software_dna.server.schemas.webhooks import DeliveryOut, EndpointOut
from software_dna.server.services import (
    emails,
    mail_templates,
    outbox,
    portal_branding,
    staff,
    stores,
    webhooks,
)
from software_dna.server.services.admin import issue_admin_key, list_admin_keys, revoke_admin_key
from software_dna.server.services.errors import not_found
from software_dna.server.services.leases import list_leases
from software_dna.server.services.licenses import buyer_on_file, rekey_license
from software_dna.server.services.lockouts import lockout_report, reset_lockouts
from software_dna.server.services.offline import deactivate_from_receipt, respond
from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = ["DirectBackend", "direct_backend"]

#: The actor the audit log records for the CLI.
ACTOR = "cli"


def _time(value: Any) -> str | None:
    return format_rfc3339(value) if value is not None else None


@contextmanager
def direct_backend(data_dir: str | None, database_url: str | None) -> Iterator[DirectBackend]:
    """A :class:`DirectBackend` on the database the options and the environment name.

    Raises:
        CliError: malformed settings, no database, a schema behind or ahead,
            a database error.
        Refused: the service refused an operation (the session is rolled back).
    """
    try:
        settings = Settings.load(home=data_dir, database_url=database_url)
        check_database(settings, database_url)
        backend = DirectBackend(settings)
    except (ConfigError, SchemaError) as exc:
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        raise database_error(exc, database_url) from None
    try:
        yield backend
    except service.ServiceError as exc:
        backend.rollback()
        raise Refused(exc.code, exc.message, exc.details) from None
    except (ConfigError, SchemaError) as exc:
        backend.rollback()
        raise CliError(str(exc)) from None
    except SQLAlchemyError as exc:
        backend.rollback()
        first = (str(exc).splitlines() or [""])[0]
        raise CliError(f"database error: {type(exc).__name__}: {first}") from None
    except BaseException:
        backend.rollback()
        raise
    finally:
        backend.close()


class DirectBackend:
    """The vendor operations on the database (one session per command).

    The master key is loaded only by the operations that need it (keys,
    licenses, end users).

    Raises (from every operation): ``ServiceError`` for a refusal.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        check_database(settings, None)
        self._engine = make_engine(settings, pooled=False)
        try:
            check_schema(self._engine, settings)
        except BaseException:
            self._engine.dispose()
            raise
        self._session: Session = make_session_factory(self._engine)()
        self._ctx: service.Context | None = None

    @property
    def ctx(self) -> service.Context:
        """The service context (loads the master key on first use)."""
        if self._ctx is None:
            ctx = service.Context.from_settings(self.settings)
            # One account's servers share the default key location: never write rows
            # under a key that does not open what the database already holds.
            check_key_opens(self.settings, ctx.vault, connection=self._session.connection())
            self._ctx = ctx
        return self._ctx

    def close(self) -> None:
        """Close the session and the engine."""
        try:
            self._session.close()
        finally:
            self._engine.dispose()

    def rollback(self) -> None:
        """Roll back after a refusal."""
        self._session.rollback()

    def _license(self, row: Any, key: str | None = None) -> JSONDict:
        used = service.seats_in_use(self._session, row.id)
        out = LicenseOut.model_validate(row, context={"seats_in_use": used}).model_dump(
            mode="json")
        if key is not None:
            out["license_key"] = key
        return out

    # -- products

    def create_product(self, product_id: str, **fields: Any) -> JSONDict:
        """Create a product (``ProductIn`` fields)."""
        return ProductOut.model_validate(service.create_product(
            self._session, product_id=product_id, actor=ACTOR, **fields)).model_dump(mode="json")

    def list_products(self) -> list[JSONDict]:
        """Every product."""
        return [ProductOut.model_validate(p).model_dump(mode="json")
                for p in service.list_products(self._session)]

    def get_product(self, product_id: str) -> JSONDict:
        """One product."""
        return ProductOut.model_validate(service.get_product(self._session, product_id)).model_dump(
            mode="json")

    def update_product(self, product_id: str, **fields: Any) -> JSONDict:
        """Change a product (``ProductPatch`` fields)."""
        return ProductOut.model_validate(service.update_product(
            self._session, product_id, actor=ACTOR, **fields)).model_dump(mode="json")

    def set_product_logo(self, product_id: str, data: bytes) -> JSONDict:
        """Store the product's logo (PNG, JPEG or WebP bytes, at most 256 KiB)."""
        row = portal_branding.set_logo(self._session, product_id, data, actor=ACTOR)
        return logo_out(row).model_dump(mode="json")

    def remove_product_logo(self, product_id: str) -> JSONDict:
        """Remove the product's logo."""
        portal_branding.remove_logo(self._session, product_id, actor=ACTOR)
        return {"ok": True}

    # -- keys

    def generate_key(self, product_id: str) -> JSONDict:
        """Generate a signing key (the first becomes active)."""
        service.get_product(self._session, product_id)  # 404 before loading the master key
        return KeyOut.model_validate(service.generate_key(self._session, self.ctx, product_id,
                                              actor=ACTOR)).model_dump(mode="json")

    def list_keys(self, product_id: str) -> list[JSONDict]:
        """The product's signing keys."""
        return [KeyOut.model_validate(k).model_dump(mode="json")
                for k in service.list_keys(self._session, product_id)]

    def rotate_key(self, product_id: str, kid: str | None = None) -> JSONDict:
        """Make a new (or the trusted ``kid``) key active; returns it."""
        service.get_product(self._session, product_id)
        key = service.rotate_key(self._session, self.ctx, product_id, kid=kid, actor=ACTOR)
        return KeyOut.model_validate(key).model_dump(mode="json")

    def retire_key(self, product_id: str, kid: str) -> JSONDict:
        """Stop trusting a key; returns it."""
        service.get_product(self._session, product_id)
        return KeyOut.model_validate(service.retire_key(self._session, self.ctx, product_id, kid,
                                            actor=ACTOR)).model_dump(mode="json")

    def public_keys(self, product_id: str) -> list[str]:
        """The ``k4.public`` keys to trust in the app, active first."""
        return service.public_keys(self._session, product_id)

    # -- licenses

    def issue_license(self, product_id: str, *, seats: int = 1, **terms: Any) -> JSONDict:
        """Issue a license (``LicenseIn`` fields); the answer holds ``license_key``."""
        expires = terms.pop("expires_at", None)
        if "expires_after_days" in terms:  # the API's name of the service's duration_days
            terms["duration_days"] = terms.pop("expires_after_days")
        if "email" in terms:  # the API's name of the service's buyer_email
            terms["buyer_email"] = terms.pop("email")
        service.get_product(self._session, product_id)
        lic, key = service.issue_license(
            self._session, self.ctx, product_id=product_id, seats=seats,
            expires_at=parse_rfc3339(expires) if expires is not None else None,
            actor=ACTOR, **terms)
        return self._license(lic, key)

    def list_licenses(self, product_id: str | None = None, **params: Any) -> list[JSONDict]:
        """Licenses, newest first (``limit``)."""
        return [self._license(lic) for lic in service.list_licenses(
            self._session, product_id=product_id, limit=params.get("limit", 100))]

    def get_license(self, license_id: str) -> JSONDict:
        """One license."""
        return self._license(service.get_license(self._session, license_id))

    def lookup_license(self, license_key: str) -> JSONDict:
        """The license of a full key; 404 ``not_found`` when none."""
        lic = service.find_license_by_key(self._session, self.ctx, license_key)
        if lic is None:
            raise not_found("license")
        return self._license(lic)

    def search_licenses(self, q: str, **params: Any) -> list[JSONDict]:
        """Licenses matching ``q`` (see ``services.search_licenses``), newest first."""
        found = service.search_licenses(self._session, self.ctx, q=q,
                                        product_id=params.get("product"),
                                        status=params.get("status"), kind=params.get("kind"))
        rows = self._session.scalars(found.query.limit(params.get("limit", 100)))
        return [self._license(lic) for lic in rows]

    def update_license(self, license_id: str, **fields: Any) -> JSONDict:
        """Set seats, ``expires_at`` (None: perpetual), features, seat mode, roll-over."""
        if "expires_at" in fields and fields["expires_at"] is not None:
            fields["expires_at"] = parse_rfc3339(fields["expires_at"])
        return self._license(service.update_license(self._session, license_id, actor=ACTOR,
                                                    **fields))

    def suspend_license(self, license_id: str) -> JSONDict:
        """Suspend a license."""
        return self._license(service.suspend_license(self._session, license_id, actor=ACTOR))

    def resume_license(self, license_id: str) -> JSONDict:
        """Resume a suspended license."""
        return self._license(service.resume_license(self._session, license_id, actor=ACTOR))

    def revoke_license(self, license_id: str) -> JSONDict:
        """Revoke a license for good."""
        return self._license(service.revoke_license(self._session, license_id, actor=ACTOR))

    def set_password(self, license_id: str, password: str | None) -> JSONDict:
        """Set (or with None remove) the activation password."""
        return self._license(service.set_license_password(self._session, license_id, password,
                                                          actor=ACTOR))

    def extend_license(self, license_id: str, *, days: int | None = None,
                       until: Any = None, allow_past: bool = False) -> JSONDict:
        """Add ``days`` to a timed license, or move its end to ``until`` (RFC 3339)."""
        end = parse_rfc3339(until) if isinstance(until, str) else until
        return self._license(service.extend_license(self._session, license_id, days=days,
                                                    until=end, actor=ACTOR,
                                                    allow_past=allow_past))

    def make_perpetual(self, license_id: str) -> JSONDict:
        """Convert a license to perpetual."""
        return self._license(service.make_perpetual(self._session, license_id, actor=ACTOR))

    def restore_license(self, license_id: str) -> JSONDict:
        """Lift the limits an erasure put on a license and its user seats."""
        return self._license(service.restore_license(self._session, license_id, actor=ACTOR))

    def cancel_subscription(self, license_id: str) -> JSONDict:
        """Cancel a subscription (the license is suspended)."""
        return self._license(service.cancel_subscription(self._session, license_id,
                                                         actor=ACTOR))

    # -- renewal codes, test codes, trials

    def make_renewal_codes(self, days: int, *, product_id: str | None = None,
                           license_id: str | None = None, count: int = 1) -> list[JSONDict]:
        """Make renewal codes, each with its ``code`` (shown only here)."""
        made = service.issue_renewal_codes(self._session, self.ctx, days=days,
                                           product_id=product_id, license_id=license_id,
                                           count=count, actor=ACTOR)
        return [RenewalCodeOut.model_validate(row, context={"code": code}).model_dump(mode="json")
                for row, code in made]

    def list_renewal_codes(self, **params: Any) -> list[JSONDict]:
        """Renewal codes (``product``, ``license_id``)."""
        rows = service.list_renewal_codes(self._session, product_id=params.get("product"),
                                          license_id=params.get("license_id"))
        return [RenewalCodeOut.model_validate(row, context={"code": None}).model_dump(mode="json")
                for row in rows]

    def issue_test_code(self, product_id: str, *, days: int = 1, **fields: Any) -> JSONDict:
        """Issue a test code; the answer holds ``license_key``."""
        lic, key = service.issue_test_code(
            self._session, self.ctx, product_id=product_id, days=days,
            features=fields.get("features"), password=fields.get("password"), actor=ACTOR)
        return self._license(lic, key)

    def list_test_codes(self, product_id: str) -> list[JSONDict]:
        """The product's test codes."""
        return [self._license(lic) for lic in service.list_test_codes(self._session,
                                                                      product_id)]

    def reset_test_code(self, license_id: str) -> JSONDict:
        """Reset a test code."""
        return self._license(service.reset_test_code(self._session, license_id, actor=ACTOR))

    def list_trials(self, product_id: str) -> list[JSONDict]:
        """The machines that used the product's trial."""
        return [TrialOut.model_validate(t).model_dump(mode="json")
                for t in service.list_trials(self._session, product_id)]

    def remove_trial(self, trial_id: str) -> JSONDict:
        """Forget a trial machine (its trial license is revoked)."""
        return TrialOut.model_validate(service.remove_trial(self._session, trial_id,
                                                actor=ACTOR)).model_dump(mode="json")

    # -- activations, seats, air-gapped activation

    def list_activations(self, license_id: str) -> list[JSONDict]:
        """The license's activations, removed ones included."""
        return [ActivationOut.model_validate(a).model_dump(mode="json")
                for a in service.list_activations(self._session, license_id)]

    def remove_activation(self, activation_id: str) -> JSONDict:
        """Remove an activation (its seat is freed)."""
        return ActivationOut.model_validate(service.remove_activation(
            self._session, activation_id, actor=ACTOR)).model_dump(mode="json")

    def leases(self, license_id: str) -> JSONDict:
        """``{"license_id", "seats", "leases"}``: the live floating leases."""
        lic = service.get_license(self._session, license_id)
        return {"license_id": lic.id, "seats": lic.seats, "leases": [
            {"activation_id": r.activation_id, "fingerprint_id": r.fingerprint_id,
             "created_at": _time(r.created_at), "renewed_at": _time(r.renewed_at),
             "expires_at": _time(r.expires_at)}
            for r in list_leases(self._session, lic.id, service.utcnow())]}

    def lockout(self, license_id: str, *, address: str | None = None) -> JSONDict:
        """Every limit that applies to a license (and to ``address``'s network)."""
        report = lockout_report(self._session, self.ctx, license_id, address=address)
        return LockoutOut.model_validate(report).model_dump(mode="json")

    def reset_lockout(self, *, license_id: str | None = None,
                      address: str | None = None) -> JSONDict:
        """Lift every limit of a license and/or a client network; what was forgotten."""
        report = reset_lockouts(self._session, self.ctx, license_id=license_id,
                                address=address, actor=ACTOR)
        return LockoutResetOut(
            removed=report.activations_forgotten, attempts_forgotten=report.attempts_forgotten,
            forgotten=report.forgotten, unlocked=report.unlocked, license_id=report.license_id,
            network=report.network, server_time=service.utcnow(),
        ).model_dump(mode="json")

    def offline_respond(self, request_text: str) -> JSONDict:
        """Answer an armored activation request as the vendor (no password needed)."""
        result = respond(self._session, self.ctx, request_text, staff=True, actor="cli")
        return OfflineActivateOut(
            response=result.response, activation_id=result.activation_id,
            license_id=result.license_id, product=result.product,
            fingerprint_id=result.fingerprint_id, server_time=result.server_time,
        ).model_dump(mode="json")

    def offline_deactivate(self, receipt_text: str) -> JSONDict:
        """Take an armored deactivation receipt."""
        result = deactivate_from_receipt(self._session, self.ctx, receipt_text)
        return OfflineDeactivateOut(
            activation_id=result.activation_id, license_id=result.license_id,
            product=result.product, deactivated_at=result.deactivated_at,
            already_deactivated=result.already_deactivated, receipt=result.receipt,
            nonce=result.nonce, server_time=result.server_time,
        ).model_dump(mode="json")

    # -- end users, audit

    def find_end_users(self, email: str) -> list[JSONDict]:
        """End users with this email (ids and dates only)."""
        return [EndUserSummary(id=u.id, created_at=u.created_at, consent_at=u.consent_at,
                               erased_at=u.erased_at).model_dump(mode="json")
                for u in service.find_end_users(self._session, self.ctx, email)]

    def export_end_user(self, end_user_id: str) -> JSONDict:
        """Everything held about one end user."""
        service.get_end_user(self._session, end_user_id)
        data = service.export_end_user(self._session, self.ctx, end_user_id)
        return EndUserExport.model_validate(data).model_dump(mode="json")

    def erase_end_user(self, end_user_id: str) -> JSONDict:
        """Erase one end user's personal data."""
        service.get_end_user(self._session, end_user_id)
        service.erase_end_user(self._session, self.ctx, end_user_id, actor=ACTOR)
        return {"ok": True, "end_user_id": end_user_id}

    def audit(self, **params: Any) -> list[JSONDict]:
        """Audit entries, newest first (``limit``, ``product``, ``license_id``)."""
        return [AuditOut.model_validate(e).model_dump(mode="json") for e in service.list_audit(
            self._session, limit=params.get("limit", 50), product_id=params.get("product"),
            license_id=params.get("license_id"))]

    # -- mail

    def list_mail_templates(self, product_id: str | None = None) -> JSONDict:
        """Every mail template and where the one in use comes from."""
        rows = mail_templates.list_templates(self._session, product_id)
        return MailTemplateList(product=product_id, templates=[
            MailTemplateSummary(**row) for row in rows]).model_dump(mode="json")

    def _template(self, template: mail_templates.MailTemplate,
                  product_id: str | None) -> JSONDict:
        return MailTemplateOut(name=template.name, product=product_id, source=template.source,
                               subject=template.subject, text=template.text,
                               html=template.html).model_dump(mode="json")

    def get_mail_template(self, name: str, product_id: str | None = None) -> JSONDict:
        """The template ``product_id`` uses."""
        return self._template(mail_templates.show_template(self._session, name, product_id),
                              product_id)

    def set_mail_template(self, name: str, *, product_id: str | None = None, subject: str,
                          text: str, html: str | None = None) -> JSONDict:
        """Save the vendor's version of a template."""
        mail_templates.set_template(self._session, name, product_id=product_id,
                                    subject=subject, text=text, html=html, actor=ACTOR)
        return self.get_mail_template(name, product_id)

    def reset_mail_template(self, name: str, product_id: str | None = None) -> JSONDict:
        """Drop the vendor's version at this level."""
        return self._template(mail_templates.reset_template(
            self._session, name, product_id=product_id, actor=ACTOR), product_id)

    def preview_mail_template(self, name: str, product_id: str | None = None,
                              context: JSONDict | None = None) -> JSONDict:
        """The template rendered with sample values."""
        rendered = mail_templates.preview_template(self._session, name, product_id=product_id,
                                                   context=context)
        return RenderedOut(subject=rendered.subject, text=rendered.text,
                           html=rendered.html).model_dump(mode="json")

    def mail_log(self, *, license_id: str | None = None, limit: int = 100) -> list[JSONDict]:
        """The sent log, newest first (decrypting the addresses needs the master key)."""
        return [MailLogEntry(**row).model_dump(mode="json") for row in emails.mail_log(
            self._session, self.ctx, license_id=license_id, limit=limit)]

    # -- stores (payment providers)

    def connect_store(self, provider: str, secret: str, *, mode: str = "live",
                      refund_action: str = "revoke") -> JSONDict:
        """Connect a payment provider's store (or replace its secret / refund action)."""
        row = stores.create_connector(self._session, self.ctx, provider=provider,
                                      secret=secret, mode=mode,
                                      refund_action=refund_action, actor=ACTOR)
        return connector_out(row, self.ctx.settings.public_url).model_dump(mode="json")

    def list_stores(self) -> list[JSONDict]:
        """The connected stores (secrets are never shown)."""
        return [connector_out(r, self.ctx.settings.public_url).model_dump(mode="json")
                for r in stores.list_connectors(self._session)]

    def disconnect_store(self, connector_id: str) -> JSONDict:
        """Disconnect a store that issued no license."""
        stores.remove_connector(self._session, connector_id, actor=ACTOR)
        return {"ok": True}

    def map_price(self, connector_id: str, price_ref: str, product_id: str,
                  **terms: Any) -> JSONDict:
        """Map a price / variant id to a license."""
        row = stores.create_mapping(self._session, connector_id, price_ref=price_ref,
                                    product_id=product_id, actor=ACTOR, **terms)
        return mapping_out(row).model_dump(mode="json")

    def list_mappings(self, connector_id: str | None = None) -> list[JSONDict]:
        """Price mappings, of one connector or all."""
        return [mapping_out(r).model_dump(mode="json")
                for r in stores.list_mappings(self._session, connector_id)]

    def unmap_price(self, mapping_id: int) -> JSONDict:
        """Remove a price mapping."""
        stores.remove_mapping(self._session, mapping_id, actor=ACTOR)
        return {"ok": True}

    # -- outbound webhooks

    def webhook_create(self, url: str, events: list[str], **fields: Any) -> JSONDict:
        """Add an endpoint: ``{"endpoint", "secret"}`` (the secret is shown this once)."""
        endpoint, secret = webhooks.create_endpoint(
            self._session, self.ctx, url=url, events=events, product_id=fields.get("product"),
            description=fields.get("description") or "",
            personal_data=bool(fields.get("personal_data")),
            enabled=fields.get("enabled", True), actor=ACTOR)
        return {"endpoint": EndpointOut.model_validate(endpoint).model_dump(mode="json"),
                "secret": secret}

    def webhook_list(self, *, product: str | None = None) -> list[JSONDict]:
        """The endpoints (never their secrets)."""
        return [EndpointOut.model_validate(e).model_dump(mode="json")
                for e in webhooks.list_endpoints(self._session, product_id=product)]

    def webhook_update(self, endpoint_id: str, **changes: Any) -> JSONDict:
        """Change an endpoint (``product`` None: every product)."""
        if "product" in changes:
            changes["product_id"] = changes.pop("product")
        endpoint = webhooks.update_endpoint(self._session, endpoint_id, changes, actor=ACTOR)
        return EndpointOut.model_validate(endpoint).model_dump(mode="json")

    def webhook_rotate_secret(self, endpoint_id: str) -> JSONDict:
        """A new signing secret: ``{"endpoint", "secret"}``."""
        endpoint, secret = webhooks.rotate_secret(self._session, self.ctx, endpoint_id,
                                                  actor=ACTOR)
        return {"endpoint": EndpointOut.model_validate(endpoint).model_dump(mode="json"),
                "secret": secret}

    def webhook_remove(self, endpoint_id: str) -> JSONDict:
        """Remove an endpoint (its queued messages are cancelled)."""
        webhooks.remove_endpoint(self._session, endpoint_id, actor=ACTOR)
        return {"ok": True}

    def webhook_test(self, endpoint_id: str) -> JSONDict:
        """Queue a ``webhook.ping`` event to an endpoint."""
        item = webhooks.send_test(self._session, endpoint_id, actor=ACTOR)
        return {"id": item.id, "status": item.status}

    def webhook_deliveries(self, **params: Any) -> list[JSONDict]:
        """The delivery log, newest first (``endpoint``, ``status``, ``limit``, ``before``)."""
        rows = webhooks.list_deliveries(
            self._session, endpoint_id=params.get("endpoint"), status=params.get("status"),
            limit=params.get("limit") or 100, before=params.get("before"))
        return [DeliveryOut.of(item, logged).model_dump(mode="json") for item, logged in rows]

    def webhook_resend(self, item_id: str) -> JSONDict:
        """Queue a delivered or failed message again, with the same webhook id."""
        item = outbox.resend(self._session, item_id, actor=ACTOR)
        return {"id": item.id, "status": item.status}

    def rekey_license(self, license_id: str, *, email: str | None = None) -> JSONDict:
        """A new key for a license: its JSON with ``license_key`` and ``key_mailed``."""
        lic, key = rekey_license(self._session, self.ctx, license_id, email=email, actor=ACTOR)
        out = self._license(lic, key)
        out["key_mailed"] = buyer_on_file(self._session, lic) is not None
        return out

    # -- staff accounts and scoped admin API keys

    def list_staff(self) -> list[JSONDict]:
        """The staff members (not removed ones), by email address."""
        return [staff_out(r).model_dump(mode="json") for r in staff.list_staff(self._session)]

    def add_staff(self, email: str, *, role: str, name: str = "",
                  password: str | None = None) -> JSONDict:
        """Add a staff member: ``{"staff", "password"}`` (a generated password, else null)."""
        chosen = password if password is not None else staff.generate_password()
        row = staff.create_staff(self._session, email=email, password=chosen, role=role,
                                 name=name, actor=ACTOR, must_change_password=password is None)
        return {"staff": staff_out(row).model_dump(mode="json"),
                "password": chosen if password is None else None}

    def set_staff_role(self, staff_id: str, role: str) -> JSONDict:
        """Change a staff member's role."""
        return staff_out(staff.set_role(self._session, staff_id, role, actor=ACTOR)).model_dump(
            mode="json")

    def reset_staff(self, staff_id: str, *, clear_totp: bool = False) -> JSONDict:
        """A new random password: ``{"staff", "password"}``."""
        row, password = staff.reset_password(self._session, staff_id, actor=ACTOR,
                                             clear_totp=clear_totp)
        return {"staff": staff_out(row).model_dump(mode="json"), "password": password}

    def remove_staff(self, staff_id: str) -> JSONDict:
        """Remove a staff member (disabled and signed out)."""
        return staff_out(staff.remove_staff(self._session, staff_id, actor=ACTOR)).model_dump(
            mode="json")

    def create_api_key(self, *, role: str, name: str) -> JSONDict:
        """A new admin API key: ``{"api_key", "key"}``."""
        row, key = issue_admin_key(self._session, self.ctx, role=role, name=name, actor=ACTOR)
        return {"api_key": AdminKeyOut.model_validate(row).model_dump(mode="json"), "key": key}

    def list_api_keys(self) -> list[JSONDict]:
        """The usable admin API keys (never the keys)."""
        return [AdminKeyOut.model_validate(r).model_dump(mode="json")
                for r in list_admin_keys(self._session)]

    def revoke_api_key(self, key_id: str) -> JSONDict:
        """Revoke an admin API key."""
        return AdminKeyOut.model_validate(revoke_admin_key(self._session, key_id, actor=ACTOR)
                                          ).model_dump(mode="json")
