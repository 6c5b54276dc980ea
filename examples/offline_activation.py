"""Air-gapped activation, walked through with files in a temporary folder.

No network anywhere: the vendor works on the license server's database with
the `software-dna` CLI (no server process), and the end user's app runs
with no server URL. Only files travel between them, as they would on a USB
stick or by email (docs/offline.md):

1. the vendor sets up a product that allows air-gapped activation (an
   explicit opt-in) and issues a license with an activation password;
2. the app, on the air-gapped machine, writes ``activation-request.txt``
   (it holds the license key, never the password);
3. the vendor runs ``software-dna offline respond`` (the vendor's staff need
   no password) and writes ``activation-response.txt``;
4. the app verifies the response with no network and stores the license;
   a later start checks it offline, months on as well (an air-gapped token
   lasts the product's ``--air-gapped-token-days``, 365 by default);
5. the app removes its license and writes ``deactivation-receipt.txt``;
   ``software-dna offline deactivate`` frees the seat.

Run it with ``python examples/offline_activation.py``. Each step prints what
happened; everything is removed at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from software_dna import LicenseClient, LicenseError

PRODUCT = "acme-lab"
PASSWORD = "correct horse battery"
CLI = [sys.executable, "-m", "software_dna.server.cli"]


def vendor(home: Path, *args: str, stdin: str | None = None) -> str:
    """One `software-dna` command on the vendor's database (direct mode, no server)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "SOFTWARE_DNA_SERVER_URL", "SOFTWARE_DNA_ADMIN_KEY")}
    env["SOFTWARE_DNA_SERVER_HOME"] = str(home)
    # The demo's key stays in its temporary folder (by default it would go to the
    # account's key folder, where a later real `server init` would find it).
    env["SOFTWARE_DNA_MASTER_KEY_FILE"] = str(home.parent / "demo-master.key")
    done = subprocess.run([*CLI, *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60, check=False)
    if done.returncode != 0:
        sys.exit(f"example failed: software-dna {' '.join(args)}\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def show(step: str, text: str) -> None:
    print(f"{step:<9} {text}", flush=True)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="software-dna-offline-") as folder:
        root = Path(folder)
        home, machine, usb = root / "vendor", root / "air-gapped-machine", root / "usb-stick"
        usb.mkdir()

        # 1. The vendor: a product that allows air-gapped activation (air-gapped
        #    activations are always "offline"), a signing key, a license.
        vendor(home, "server", "init")
        vendor(home, "products", "create", PRODUCT, "--protection", "opportunistic",
               "--features", "analysis,export", "--air-gapped")
        vendor(home, "keys", "generate", PRODUCT)
        public_keys = vendor(home, "keys", "export", PRODUCT).splitlines()
        issued = json.loads(vendor(home, "licenses", "issue", PRODUCT, "--seats", "1",
                                   "--password-stdin", "--json", stdin=PASSWORD + "\n"))
        show("vendor", f"issued license {issued['id']}: key {issued['license_key']}")

        # 2. The app on the air-gapped machine: no server URL at all.
        clock = {"offset": timedelta(0)}

        def now() -> datetime:
            return datetime.now(timezone.utc) + clock["offset"]

        def app() -> LicenseClient:  # a new start of the app
            return LicenseClient(product=PRODUCT, public_keys=public_keys, server_url=None,
                                 store_path=machine, clock=now)

        request = app().create_activation_request(issued["license_key"])
        (usb / "activation-request.txt").write_text(request)
        show("app", f"wrote activation-request.txt ({len(request.splitlines())} lines):")
        print("          " + "\n          ".join(request.splitlines()[:3]) + "\n          ...")

        # 3. The vendor answers it.
        summary = vendor(home, "offline", "respond", str(usb / "activation-request.txt"),
                         "-o", str(usb / "activation-response.txt"))
        show("vendor", summary.splitlines()[0])

        # 4. The app installs the response, with no network, and checks it at each start.
        lic = app().activate_offline((usb / "activation-response.txt").read_text())
        show("app", f"activated: features {sorted(lic.features)}, protection "
                    f"{lic.protection.value}, refresh by {lic.refresh_by}, ends {lic.expires_at}")
        clock["offset"] = timedelta(days=300)
        checked = app().check()
        show("app", f"300 days later, offline: license {checked.license_id} is valid")
        try:  # the same response cannot be used twice (its request is used up)
            app().activate_offline((usb / "activation-response.txt").read_text())
        except LicenseError as exc:
            show("app", f"the response again is refused: {exc}")

        # 5. Moving to another machine: deactivate with a signed receipt.
        receipt = app().deactivate_offline()
        (usb / "deactivation-receipt.txt").write_text(receipt)
        try:
            app().check()
        except LicenseError as exc:
            show("app", f"license removed: {type(exc).__name__}")
        show("vendor", vendor(home, "offline", "deactivate",
                              str(usb / "deactivation-receipt.txt")))
        seats = json.loads(vendor(home, "licenses", "show", issued["id"], "--json"))
        show("vendor", f"seats in use: {seats['seats_in_use']} of {seats['seats']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
