"""``software-dna server``: set up and run the license server.

    software-dna server init      create the data folder, the master key (kept outside it) and
                                  an admin API key
    software-dna server migrate   upgrade the database schema
    software-dna server run       serve the HTTP API (and an outbox worker thread)
    software-dna server worker    deliver the outbox (webhooks, e-mails), run scheduled jobs
    software-dna server doctor    check the set-up a production server needs
    software-dna server backup    write a backup of the database (never the master key)
    software-dna server restore   restore one, re-applying later erasures and revocations

One module per concern registers its commands on the group (:mod:`._base`); this
package imports them so that ``app`` carries every command.
"""

from __future__ import annotations

from software_dna.server.cli.server import backup, doctor, serve, setup
from software_dna.server.cli.server._base import app

__all__ = ["app", "backup", "doctor", "serve", "setup"]
