"""``software-dna products``: create, list, show and configure products."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from software_dna.server.cli._common import (
    OFF,
    PROG,
    CliError,
    Json,
    JSONDict,
    choice,
    duration,
    feature_list,
    in_range,
    limit_or_off,
    non_negative_int,
)
from software_dna.server.cli.backend import Backend
from software_dna.server.cli.command import vendor_command
from software_dna.server.cli.output import print_line, print_listing, print_result, show_product
from software_dna.server.domain.tokens import PROTECTIONS

__all__ = ["app"]

app = typer.Typer(
    name="products", no_args_is_help=True, rich_markup_mode=None,
    short_help="create, list, show and configure products",
    help="Products and their licensing policy (refresh interval, offline grace period, "
         "fingerprint tolerance, features, limited-mode features, activation password).")

ProductArg = Annotated[str, typer.Argument(metavar="ID", help="the product id",
                                           show_default=False)]
Name = Annotated[str | None, typer.Option("--name", metavar="N", show_default=False,
                                          help="display name (default: the id)")]
Protection = Annotated[str | None, typer.Option(
    "--protection", metavar=f"[{'|'.join(PROTECTIONS)}]", parser=choice(*PROTECTIONS),
    show_default=False,
    help="offline: never needs the server; opportunistic: refreshes when it can (default); "
         "mandatory: must refresh within the grace period")]
RefreshInterval = Annotated[int | None, typer.Option(
    "--refresh-interval", metavar="SECONDS", parser=duration, show_default=False,
    help="how often the app refreshes online (seconds, or 12h, 1d, ...; default 1d)")]
Grace = Annotated[int | None, typer.Option(
    "--offline-grace-period", "--offline-grace", metavar="SECONDS", parser=duration,
    show_default=False,
    help="how long a token stays valid after its refresh time when the server cannot be "
         "reached (default 7d)")]
Tolerance = Annotated[int | None, typer.Option(
    "--fingerprint-tolerance", "--tolerance", metavar="N", parser=non_negative_int,
    show_default=False, help="how many fingerprint components may differ (0-1; default 1)")]
Features = Annotated[str | None, typer.Option(
    "--features", metavar="A,B", show_default=False,
    help="features of a license issued without its own list (comma-separated; '' for none)")]
LimitedFeatures = Annotated[str | None, typer.Option(
    "--limited-features", metavar="A,B", show_default=False,
    help="features left in limited mode, after an end user's data was erased ('' for none)")]
PasswordRequired = Annotated[bool | None, typer.Option(
    "--password-required/--no-password-required", show_default=False,
    help="every license needs an activation password")]
TrialDays = Annotated[int | None, typer.Option(
    "--trial-days", metavar="N", parser=non_negative_int, show_default=False,
    help="the app may start a trial of N days once per machine (0: no trial)")]
TestCodeLimit = Annotated[int | None, typer.Option(
    "--test-code-limit", metavar="N", parser=non_negative_int, show_default=False,
    help="test codes live at once (default 5)")]
LeaseTime = Annotated[int | None, typer.Option(
    "--lease-time", "--lease-duration", metavar="SECONDS", parser=duration, show_default=False,
    help="how long a floating lease lasts without a heartbeat (5s-1d; default 15m)")]
ReactivationLimit = Annotated[str | None, typer.Option(
    "--reactivation-limit", metavar="N|off", parser=lambda t: str(limit_or_off(t)),
    show_default=False,
    help="re-activations a license may have per period on top of its seats; past it "
         "activation is locked (default off)")]
ReactivationPeriod = Annotated[int | None, typer.Option(
    "--reactivation-period", metavar="SECONDS", parser=duration, show_default=False,
    help="the lock-out window (1h-366d; default 30d)")]
AddressLimit = Annotated[str | None, typer.Option(
    "--address-activation-limit", metavar="N|off", parser=lambda t: str(limit_or_off(t)),
    show_default=False,
    help="new activations one client address may make per period (default off)")]
RebindLimit = Annotated[str | None, typer.Option(
    "--rebind-limit", metavar="N|off", parser=lambda t: str(limit_or_off(t)),
    show_default=False,
    help="times an activation may move to a changed machine per period (default 3; "
         "off: unbounded)")]
RebindPeriod = Annotated[int | None, typer.Option(
    "--rebind-period", metavar="SECONDS", parser=duration, show_default=False,
    help="the re-bind window (1h-366d; default 30d)")]
SharingPolicy = Annotated[str | None, typer.Option(
    "--sharing-policy", metavar="flag|suspend", show_default=False,
    help="what an activation used on two computers gets: flagged, or deactivated "
         "(default flag)")]

AirGapped = Annotated[bool | None, typer.Option(
    "--air-gapped/--no-air-gapped", show_default=False,
    help="licenses may be activated from air-gapped requests (default off; a license may "
         "override it)")]
AirGappedTokenDays = Annotated[int | None, typer.Option(
    "--air-gapped-token-days", metavar="DAYS", show_default=False,
    help="days an air-gapped token lives before a new request renews it (1-3650; default "
         "365)")]
AirGappedPerpetual = Annotated[bool | None, typer.Option(
    "--air-gapped-perpetual/--no-air-gapped-perpetual", show_default=False,
    help="air-gapped tokens never end (only the license's expiry ends them; default off)")]


PaymentGraceDays = Annotated[int | None, typer.Option(
    "--payment-grace-days", metavar="DAYS", parser=non_negative_int, show_default=False,
    help="days a failed payment reported by a store is tolerated before the license is "
         "suspended (0-365; default 14)")]
ReminderDays = Annotated[str | None, typer.Option(
    "--reminder-days", metavar="7,3,1", show_default=False,
    help="days before a license's end that reminders are mailed (1-365, at most 10; '' for "
         "none; default 7,3,1)")]
VendorName = Annotated[str | None, typer.Option(
    "--vendor-name", metavar="NAME", show_default=False,
    help="your name in mails (default: the product's name; '' to clear)")]
SupportEmail = Annotated[str | None, typer.Option(
    "--support-email", metavar="ADDR", show_default=False,
    help="where buyers write with questions (Reply-To of mails; '' to clear)")]
LogoUrl = Annotated[str | None, typer.Option(
    "--logo-url", metavar="URL", show_default=False,
    help="an https:// URL of your logo, shown in HTML mails ('' to clear)")]
Colour = Annotated[str | None, typer.Option(
    "--colour", "--color", metavar="#RRGGBB", show_default=False,
    help="the accent colour of HTML mails and the license portal ('' to clear)")]
PrivacyUrl = Annotated[str | None, typer.Option(
    "--privacy-url", metavar="URL", show_default=False,
    help="an https:// URL of your privacy notice, linked from mails and the license portal "
         "('' to clear)")]
PortalReleaseLimit = Annotated[str | None, typer.Option(
    "--portal-release-limit", metavar="N|none", parser=lambda t: str(limit_or_off(t)),
    show_default=False,
    help="computers a license holder may free in the license portal per license per period "
         "(0-1000; 0: only you free them; none: no limit; default 3)")]
PortalReleaseDays = Annotated[int | None, typer.Option(
    "--portal-release-days", metavar="DAYS", parser=in_range(1, 366), show_default=False,
    help="the period of --portal-release-limit in days (1-366; default 30)")]


def _reminder_days(text: str) -> list[int]:
    days: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if not part.isdigit():
            raise CliError(f"--reminder-days takes whole numbers of days, e.g. 7,3,1; got "
                           f"{part!r}.", code=2)
        days.append(int(part))
    return days


def _branding(current: JSONDict, **options: str | None) -> JSONDict | None:
    """The branding after the options given ('' clears a value), or None when none is given."""
    if all(value is None for value in options.values()):
        return None
    merged = dict(current)
    for key, value in options.items():
        if value is None:
            continue
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _policy(**options: Any) -> JSONDict:
    """The policy options given, as the admin API's fields (an ``off`` limit is None)."""
    fields: JSONDict = {}
    for name, given in options.items():
        if given is None:
            continue
        if name in ("features", "limited_features"):
            fields[name] = feature_list(given)
        elif name in ("reactivation_limit", "address_activation_limit", "rebind_limit",
                      "portal_release_limit"):
            fields[name] = None if given == OFF else int(given)
        elif name == "reminder_days":
            fields[name] = _reminder_days(given)
        else:
            fields[name] = given
    return fields


@app.command("create", short_help="create a product")
@vendor_command
def create(backend: Backend, *, product: ProductArg, name: Name = None,
           protection: Protection = None, refresh_interval: RefreshInterval = None,
           offline_grace_period: Grace = None, fingerprint_tolerance: Tolerance = None,
           features: Features = None, limited_features: LimitedFeatures = None,
           password_required: PasswordRequired = None, trial_days: TrialDays = None,
           test_code_limit: TestCodeLimit = None, lease_duration: LeaseTime = None,
           reactivation_limit: ReactivationLimit = None,
           reactivation_period: ReactivationPeriod = None,
           address_activation_limit: AddressLimit = None,
           rebind_limit: RebindLimit = None, rebind_period: RebindPeriod = None,
           sharing_policy: SharingPolicy = None, air_gapped: AirGapped = None,
           air_gapped_token_days: AirGappedTokenDays = None,
           air_gapped_perpetual: AirGappedPerpetual = None,
           payment_grace_days: PaymentGraceDays = None, reminder_days: ReminderDays = None,
           vendor_name: VendorName = None, support_email: SupportEmail = None,
           logo_url: LogoUrl = None, colour: Colour = None, privacy_url: PrivacyUrl = None,
           portal_release_limit: PortalReleaseLimit = None,
           portal_release_days: PortalReleaseDays = None,
           as_json: Json = False) -> int:
    """Create a product. ID is what the app is built with (LicenseClient(product=ID)):
    1-64 characters a-z 0-9 . _ -"""
    fields = _policy(name=name, protection=protection, refresh_interval=refresh_interval,
                     offline_grace_period=offline_grace_period,
                     fingerprint_tolerance=fingerprint_tolerance, features=features,
                     limited_features=limited_features, password_required=password_required,
                     trial_days=trial_days, test_code_limit=test_code_limit,
                     lease_duration=lease_duration, reactivation_limit=reactivation_limit,
                     reactivation_period=reactivation_period,
                     address_activation_limit=address_activation_limit,
                     rebind_limit=rebind_limit, rebind_period=rebind_period,
                     sharing_policy=sharing_policy, air_gapped=air_gapped,
                     air_gapped_token_days=air_gapped_token_days,
                     air_gapped_perpetual=air_gapped_perpetual,
                     payment_grace_days=payment_grace_days, reminder_days=reminder_days,
                     portal_release_limit=portal_release_limit,
                     portal_release_days=portal_release_days)
    branding = _branding({}, vendor_name=vendor_name, support_email=support_email,
                         logo_url=logo_url, colour=colour, privacy_url=privacy_url)
    if branding is not None:
        fields["branding"] = branding
    made = backend.create_product(product, **fields)
    print_result(made, as_json=as_json, headline=f"Created product {made.get('id')}.",
                 show=show_product)
    if not as_json:
        print_line(f"Next: `{PROG} keys generate {made.get('id')}`.")
    return 0


@app.command("list", short_help="list the products")
@vendor_command
def list_(backend: Backend, *, as_json: Json = False) -> int:
    """List every product."""
    print_listing(
        {"products": backend.list_products()}, "products", as_json=as_json,
        empty=f"No products yet: `{PROG} products create ID --name NAME`.",
        headers=["ID", "NAME", "PROTECTION", "REFRESH", "GRACE", "TOLERANCE", "FEATURES",
                 "PASSWORD"],
        row=lambda p: [p.get("id"), p.get("name"), p.get("protection"),
                       p.get("refresh_interval"), p.get("offline_grace_period"),
                       p.get("fingerprint_tolerance"), p.get("features"),
                       "required" if p.get("password_required") else "optional"],
    )
    return 0


@app.command("show", short_help="show one product")
@vendor_command
def show(backend: Backend, *, product: ProductArg, as_json: Json = False) -> int:
    """Show a product and its policy."""
    print_result(backend.get_product(product), as_json=as_json, show=show_product)
    return 0


#: Settings that tokens do not carry (a change to them alone says nothing about tokens).
_NOT_IN_TOKENS = frozenset({"name", "payment_grace_days", "reminder_days", "branding",
                            "portal_release_limit", "portal_release_days"})


@app.command("configure", short_help="change a product's policy")
@vendor_command
def configure(backend: Backend, *, product: ProductArg, name: Name = None,
              protection: Protection = None, refresh_interval: RefreshInterval = None,
              offline_grace_period: Grace = None, fingerprint_tolerance: Tolerance = None,
              features: Features = None, limited_features: LimitedFeatures = None,
              password_required: PasswordRequired = None, trial_days: TrialDays = None,
              test_code_limit: TestCodeLimit = None, lease_duration: LeaseTime = None,
              reactivation_limit: ReactivationLimit = None,
              reactivation_period: ReactivationPeriod = None,
              address_activation_limit: AddressLimit = None,
              rebind_limit: RebindLimit = None, rebind_period: RebindPeriod = None,
              sharing_policy: SharingPolicy = None, air_gapped: AirGapped = None,
              air_gapped_token_days: AirGappedTokenDays = None,
              air_gapped_perpetual: AirGappedPerpetual = None,
              payment_grace_days: PaymentGraceDays = None, reminder_days: ReminderDays = None,
              vendor_name: VendorName = None, support_email: SupportEmail = None,
              logo_url: LogoUrl = None, colour: Colour = None, privacy_url: PrivacyUrl = None,
              portal_release_limit: PortalReleaseLimit = None,
              portal_release_days: PortalReleaseDays = None,
              as_json: Json = False) -> int:
    """Change a product's settings; options not given stay as they are. Tokens issued from
    now on use the new settings."""
    fields = _policy(name=name, protection=protection, refresh_interval=refresh_interval,
                     offline_grace_period=offline_grace_period,
                     fingerprint_tolerance=fingerprint_tolerance, features=features,
                     limited_features=limited_features, password_required=password_required,
                     trial_days=trial_days, test_code_limit=test_code_limit,
                     lease_duration=lease_duration, reactivation_limit=reactivation_limit,
                     reactivation_period=reactivation_period,
                     address_activation_limit=address_activation_limit,
                     rebind_limit=rebind_limit, rebind_period=rebind_period,
                     sharing_policy=sharing_policy, air_gapped=air_gapped,
                     air_gapped_token_days=air_gapped_token_days,
                     air_gapped_perpetual=air_gapped_perpetual,
                     payment_grace_days=payment_grace_days, reminder_days=reminder_days,
                     portal_release_limit=portal_release_limit,
                     portal_release_days=portal_release_days)
    branding_given = dict(vendor_name=vendor_name, support_email=support_email,
                          logo_url=logo_url, colour=colour, privacy_url=privacy_url)
    if any(value is not None for value in branding_given.values()):
        current = backend.get_product(product).get("branding") or {}
        fields["branding"] = _branding(current, **branding_given)
    if not fields:
        raise CliError("Nothing to change: give at least one option (see --help).", code=2)
    updated = backend.update_product(product, **fields)
    # Only the policy is in tokens; the name, mail and portal settings and branding are not.
    tokens = "; tokens issued from now on use the new settings" \
        if set(fields) - _NOT_IN_TOKENS else ""
    print_result(updated, as_json=as_json, show=show_product,
                 headline=f"Updated product {updated.get('id')} "
                          f"({', '.join(sorted(fields))}){tokens}.")
    return 0


#: Bytes of a logo file read (the server takes at most 256 KiB and refuses more).
_LOGO_READ_LIMIT = 1024 * 1024 + 1
LogoFile = Annotated[Path | None, typer.Argument(
    metavar="FILE", show_default=False, dir_okay=False,
    help="the image: PNG, JPEG or WebP, at most 256 KiB (SVG is refused)")]
RemoveLogo = Annotated[bool, typer.Option(
    "--remove", help="remove the logo instead (the portal then shows the product's name alone)")]


@app.command("logo", short_help="set or remove the logo of a product's license portal")
@vendor_command
def logo(backend: Backend, *, product: ProductArg, file: LogoFile = None,
         remove: RemoveLogo = False, as_json: Json = False) -> int:
    """Set the logo shown in the product's license portal (served by the license server
    itself at /portal/ID/logo), or remove it with --remove. The server reads the image type
    from the file's bytes, not from its name."""
    if remove == (file is not None):
        raise CliError("Give either FILE or --remove.", code=2)
    if file is None:
        answer = backend.remove_product_logo(product)
        print_result(answer, as_json=as_json, headline=f"Removed the logo of {product}.")
        return 0
    try:
        with file.open("rb") as image:
            # Enough to be refused as too large by either backend, never a whole huge file.
            data = image.read(_LOGO_READ_LIMIT)
    except OSError as exc:
        raise CliError(f"Cannot read {file}: {exc.strerror or exc}.", code=2) from None
    stored = backend.set_product_logo(product, data)
    print_result(stored, as_json=as_json,
                 headline=f"Set the logo of {product} ({stored.get('content_type')}, "
                          f"{stored.get('size')} bytes).")
    return 0
