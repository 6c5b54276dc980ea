"""Project tooling run from the source tree (not part of the distribution)."""
