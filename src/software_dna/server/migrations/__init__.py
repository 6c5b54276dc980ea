"""Alembic migrations of the license server (run via ``software-dna server migrate``)."""
