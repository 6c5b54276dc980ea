"""``python -m software_dna.server.cli``: the ``software-dna`` command."""

from software_dna.server.cli import main

raise SystemExit(main())
