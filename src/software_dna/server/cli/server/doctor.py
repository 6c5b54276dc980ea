"""``software-dna server doctor``: check what a production server needs, one line per check.

The checks are :func:`software_dna.server.doctor.diagnose`; this command reads the
settings the way ``server run`` does, prints each finding (``ok``, ``warning``,
``problem``) and exits 1 when a problem was found.
"""

from __future__ import annotations

from typing import Annotated

import typer

from software_dna.server.cli._common import positive_int
from software_dna.server.cli.server._base import DatabaseUrl, Home, app, one_line, settings_of

__all__ = ["doctor"]


@app.command("doctor", short_help="check the set-up a production server needs")
def doctor(
    *, home: Home = None, database_url: DatabaseUrl = None,
    url: Annotated[str | None, typer.Option(
        "--url", metavar="URL", show_default=False,
        help="address to probe for /v1/health (default: $SOFTWARE_DNA_PUBLIC_URL)")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", metavar="N", parser=positive_int,
        help="the --workers that `server run` gets")] = 1,
    forwarded_allow_ips: Annotated[str | None, typer.Option(
        "--forwarded-allow-ips", metavar="IPS", show_default=False,
        help="the --forwarded-allow-ips that `server run` gets")] = None,
    ca_file: Annotated[str | None, typer.Option(
        "--ca-file", metavar="PEM", show_default=False,
        help="CA bundle to verify --url with (a private CA; default: the public CAs)")] = None,
) -> int:
    """Check the set-up a production server needs: the public URL and TLS in front of it,
    the proxy trust, the master key file (outside the data folder, mode 0600, its folder
    closed), the data folder, the database (reachable, schema current, its clock), workers
    against SQLite and the CPUs, SMTP when configured (connect and greet; no mail is sent)
    and the metrics token. Prints one line per check and what to do about each warning or
    problem; never prints a secret. Exit status 1 when a problem was found."""
    def run() -> int:
        # Lazy: the checks load the database layer, only for this command.
        from software_dna.server.doctor import Level, diagnose

        settings = settings_of(home, database_url)
        findings = diagnose(settings, url=url, workers=workers,
                            forwarded_allow_ips=forwarded_allow_ips, ca_file=ca_file)
        for finding in findings:
            print(finding.line())
        problems = sum(f.level is Level.PROBLEM for f in findings)
        warnings = sum(f.level is Level.WARNING for f in findings)
        print(f"{problems} problem(s), {warnings} warning(s).")
        return 1 if problems else 0
    return one_line(run, database_url)
