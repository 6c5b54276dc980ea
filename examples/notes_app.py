"""A small command-line app licensed with software_dna, written as a vendor would.

The vendor ships the product id, its public key(s) and the server URL inside
the app. Here they come from the environment so that the demo can point the
app at a freshly started server:

    ACME_LICENSE_SERVER   the license server URL
    ACME_PUBLIC_KEYS      comma-separated PASERK k4.public keys
    ACME_PRODUCT          the product id (default: acme-notes)
    SOFTWARE_DNA_HOME     where the license store lives (optional)

Usage:
    python examples/notes_app.py activate KEY [--password P] [--email E --name N --consent]
    python examples/notes_app.py run              # start the app: check the license offline-first
    python examples/notes_app.py refresh          # validate online now
    python examples/notes_app.py settings [KEY=VALUE ...]
    python examples/notes_app.py erase            # ask the vendor to erase my personal data
    python examples/notes_app.py deactivate
"""

from __future__ import annotations

import argparse
import os
import sys

from software_dna import License, LicenseClient, LicenseError, NotActivated


def make_client() -> LicenseClient:
    """The five lines a vendor adds: one client per product, built at start-up."""
    return LicenseClient(
        product=os.environ.get("ACME_PRODUCT", "acme-notes"),
        public_keys=os.environ["ACME_PUBLIC_KEYS"].split(","),
        server_url=os.environ.get("ACME_LICENSE_SERVER"),
        app_name="AcmeNotes",
        app_author="Acme",
    )


def describe(lic: License) -> str:
    parts = [f"mode={lic.mode.value}", f"features={','.join(sorted(lic.features)) or '-'}"]
    if lic.email:
        parts.append(f"registered to {lic.email}")
    if lic.license_expires_at:
        parts.append(f"license ends {lic.license_expires_at:%Y-%m-%d}")
    if lic.offline_grace_ends_at:
        parts.append(f"offline grace until {lic.offline_grace_ends_at:%Y-%m-%d %H:%M} UTC")
    return ", ".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="notes_app", description="Acme Notes (demo app)")
    sub = parser.add_subparsers(dest="command", required=True)
    act = sub.add_parser("activate", help="activate this computer with a license key")
    act.add_argument("key")
    act.add_argument("--password")
    act.add_argument("--email")
    act.add_argument("--name")
    act.add_argument("--consent", action="store_true",
                     help="I agree to send my email and name to Acme")
    sub.add_parser("run", help="start the app (checks the license)")
    sub.add_parser("refresh", help="validate the license online now")
    st = sub.add_parser("settings", help="show or change my synced settings")
    st.add_argument("pairs", nargs="*", metavar="KEY=VALUE")
    sub.add_parser("erase", help="erase my personal data at Acme (limited mode afterwards)")
    sub.add_parser("deactivate", help="free this computer's seat")
    args = parser.parse_args(argv)

    client = make_client()
    try:
        if args.command == "activate":
            registration = {"name": args.name} if args.name else None
            lic = client.activate(args.key, password=args.password, email=args.email,
                                  registration=registration, consent=args.consent)
            print(f"activated: {describe(lic)}")
        elif args.command == "run":
            lic = client.check()
            print(f"license ok (offline check): {describe(lic)}")
            if lic.has_feature("export"):
                print("export is available")
        elif args.command == "refresh":
            print(f"refreshed online: {describe(client.refresh())}")
        elif args.command == "settings":
            if args.pairs:
                current = client.settings
                current.update(pair.split("=", 1) for pair in args.pairs)
                client.settings = current
            print(f"settings: {client.settings}")
        elif args.command == "erase":
            print(f"personal data erased: {describe(client.request_erasure())}")
        elif args.command == "deactivate":
            client.deactivate()
            print("deactivated: this computer's seat is free")
    except NotActivated as exc:
        print(f"not activated: {exc}", file=sys.stderr)
        return 2
    except LicenseError as exc:
        print(f"license problem: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
