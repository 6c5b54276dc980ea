"""The reference license server of software_dna (install with the ``server`` extra).

- :mod:`software_dna.server.app` -- the FastAPI app (``create_app``)
- :mod:`software_dna.server.services` -- the business logic, used by the app and the CLI
- :mod:`software_dna.server.domain` -- the pure rules (refusals, terms, seats, token facts)
- :mod:`software_dna.server.api` -- the HTTP routes per noun and what they share
- :mod:`software_dna.server.adminclient` -- :class:`AdminClient`, the HTTP client of
  the admin API
- :mod:`software_dna.server.testing` -- :class:`LocalServer`, the server in a
  subprocess for tests and demos
- :mod:`software_dna.server.cli` -- the ``software-dna`` command

See docs/server.md.
"""
