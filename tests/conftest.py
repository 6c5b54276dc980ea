"""Shared pytest configuration.

Fixtures that start the reference server live in ``tests/fixtures_server.py``
and are loaded as a plugin, so every test module can use them.
"""

pytest_plugins = ["tests.fixtures_server"]
