"""`make demo`: the whole life of a license, on the embedded default (SQLite).

1. starts the reference license server on SQLite in a temporary folder, on a
   free 127.0.0.1 port;
2. the vendor creates a product, a signing key and a license with an
   activation password (the `software-dna` CLI, through the admin API);
3. the app (examples/notes_app.py, run as its own process each time, as an end
   user would start it) activates with the password and an email address,
   checks the license offline, refreshes it online, writes and reads a setting;
4. the vendor erases the end user; the app's next refresh shows limited mode;
5. a search of the app's (decrypted) store and of the server's database file
   finds no trace of the email address;
6. the vendor's staff get accounts for the control panel (an owner, and one
   member of each other role); the demo ends by printing the panel's address
   and the sign-in.  With ``--panel`` (``make demo PANEL=1``) the server stays
   up until Ctrl-C, so the panel can be opened in a browser.

Each step prints one line. Everything lives in a temporary folder that is
removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from software_dna import LicenseClient
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.domain.roles import Role
from software_dna.server.services.staff import create_staff
from software_dna.server.testing import LocalServer, free_port

HERE = Path(__file__).resolve().parent
PRODUCT = "acme-notes"
EMAIL = "ana.lovelace@example.com"
NAME = "Ana Lovelace"
PASSWORD = "correct horse battery"
CLI = [sys.executable, "-m", "software_dna.server.cli"]
#: The demo's staff: an owner, and one member of each other role (same throwaway password).
STAFF_DOMAIN = "acme-notes.example"
STAFF_PASSWORD = "demo panel password"

started = time.monotonic()


def say(step: str, text: str) -> None:
    print(f"[{time.monotonic() - started:5.1f}s] {step:<8} {text}", flush=True)


def run(command: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    if done.returncode != 0:
        sys.exit(f"demo failed: {' '.join(command[2:])}\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


def vendor(server: LocalServer, *args: str) -> str:
    env = dict(os.environ, SOFTWARE_DNA_SERVER_URL=server.url,
               SOFTWARE_DNA_ADMIN_KEY=server.admin_key)
    return run([*CLI, *args], env)


def add_staff(server: LocalServer) -> dict[Role, str]:
    """Staff accounts for the panel, one per role, in the server's database; their addresses."""
    engine = make_engine(server.settings, pooled=False)
    addresses = {role: f"{role.value.replace('_', '-')}@{STAFF_DOMAIN}" for role in Role}
    try:
        with make_session_factory(engine)() as session:
            for role, email in addresses.items():
                create_staff(session, email=email, password=STAFF_PASSWORD, role=role,
                             name=f"Demo {role.value.replace('_', ' ')}")
    finally:
        engine.dispose()
    return addresses


def serve_until_interrupted(server: LocalServer) -> None:
    """Keep the demo's server up until Ctrl-C (or until it stops by itself)."""
    print("The server stays up for the panel: press Ctrl-C to stop it.", flush=True)

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # A closed terminal or a `kill` stops the server too (never left running alone).
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if signum is not None:
            signal.signal(signum, interrupted)
    try:
        while server.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The whole life of a license, end to end.")
    parser.add_argument("--panel", action="store_true",
                        help="keep the server up at the end (until Ctrl-C) for the control panel")
    options = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="software-dna-demo-") as folder:
        home = Path(folder)
        # The demo's end user lives in the temporary folder too: the store
        # (SOFTWARE_DNA_HOME below) and the rollback witness, which otherwise
        # goes to the user's state folder.
        os.environ["SOFTWARE_DNA_STATE_HOME"] = str(home / "end-user-state")
        with LocalServer(home / "server") as server:
            say("server", f"license server on {server.url} (SQLite: {server.database_url})")

            vendor(server, "products", "create", PRODUCT, "--name", "Acme Notes",
                   "--features", "export,sync,cloud-backup", "--limited-features", "export",
                   "--password-required")
            vendor(server, "keys", "generate", PRODUCT)
            public_keys = vendor(server, "keys", "export", PRODUCT).split()
            issued = json.loads(vendor(server, "licenses", "issue", PRODUCT, "--seats", "2",
                                       "--password", PASSWORD, "--json"))
            key = issued["license_key"]
            say("vendor", f"product {PRODUCT}, signing key {public_keys[0][:24]}…, "
                          f"license {key} (password protected, 2 seats)")

            app_env = dict(
                os.environ,
                ACME_PRODUCT=PRODUCT,
                ACME_PUBLIC_KEYS=",".join(public_keys),
                ACME_LICENSE_SERVER=server.url,
                SOFTWARE_DNA_HOME=str(home / "end-user"),
            )
            app = [sys.executable, str(HERE / "notes_app.py")]

            say("app", run([*app, "activate", key, "--password", PASSWORD, "--email", EMAIL,
                            "--name", NAME, "--consent"], app_env))
            offline_env = dict(app_env, ACME_LICENSE_SERVER=f"http://127.0.0.1:{free_port()}")
            say("app", run([*app, "run"], offline_env).splitlines()[0]
                + " [server unreachable]")
            say("app", run([*app, "refresh"], app_env))
            say("app", run([*app, "settings", "theme=dark", "font=Iosevka"], app_env))

            found = json.loads(vendor(server, "end-users", "find", "--email", EMAIL, "--json"))
            users = found["end_users"] if isinstance(found, dict) else found
            vendor(server, "end-users", "erase", users[0]["id"], "--yes")
            say("vendor", f"erased end user {users[0]['id']} (GDPR erasure)")

            say("app", run([*app, "refresh"], app_env))
            say("app", run([*app, "run"], offline_env).splitlines()[0] + " [server unreachable]")

            client = LicenseClient(product=PRODUCT, public_keys=public_keys,
                                   store_path=home / "end-user")
            store_text = json.dumps(client._state.store.read())
            server_bytes = b"".join(p.read_bytes() for p in server.data_dir.glob("server.db*"))
            traces = [where for where, found_it in (
                ("app store", EMAIL in store_text or NAME in store_text),
                ("server database", EMAIL.encode() in server_bytes
                 or NAME.encode() in server_bytes),
            ) if found_it]
            if traces:
                say("privacy", f"FAILED: personal data still in {', '.join(traces)}")
                return 1
            say("privacy", f"no trace of {EMAIL} or {NAME!r} in the app's store "
                           "or the server's database")

            staff = add_staff(server)
            say("staff", "panel accounts: " + ", ".join(
                f"{email} ({role.value.replace('_', '-')})" for role, email in staff.items()))
            say("panel", f"control panel: {server.url}/panel/")
            say("panel", f"sign in as {staff[Role.OWNER]} with the password "
                         f"{STAFF_PASSWORD!r} (any address above, same password)")
            if options.panel:
                serve_until_interrupted(server)
            else:
                say("panel", "the server stops now: `make demo PANEL=1` keeps it up for the panel")
        say("done", "server stopped, temporary files removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
