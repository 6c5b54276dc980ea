"""The byte scan the request-body middleware runs before any body is parsed.

The rule itself lives in :mod:`software_dna.server.domain.json_shape`, so that
the settings service holds a stored document to the very same limits (a
document the scan would refuse is never stored, so it never fails to
serialise later).  See there for the limits and the invariant.
"""

from __future__ import annotations

from software_dna.server.domain.json_shape import (
    MAX_CONTAINERS,
    MAX_DEPTH,
    MAX_MEMBERS,
    refusal,
)

__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "MAX_MEMBERS", "refusal"]
