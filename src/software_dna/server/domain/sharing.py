"""The words of sharing detection (services/sharing.py), shared with schemas and the CLI."""

from __future__ import annotations

__all__ = [
    "ALTERNATING_MACHINES",
    "COPIED_SECRET",
    "DEACTIVATED_BY_SHARING",
    "FLAG",
    "SHARING_POLICIES",
    "SUSPEND",
]

#: ``shared_reason``: a secret older than the accepted ones was presented.
COPIED_SECRET = "copied_secret"  # noqa: S105 - a reason code, not a secret
#: ``shared_reason``: the bound machine went A -> B -> A between conflicting sets.
ALTERNATING_MACHINES = "alternating_machines"
#: ``sharing_policy``: only mark the activation (the default).
FLAG = "flag"
#: ``sharing_policy``: mark the activation and deactivate it.
SUSPEND = "suspend"
SHARING_POLICIES = (FLAG, SUSPEND)
#: ``deactivated_by`` of an activation the ``suspend`` policy deactivated.
DEACTIVATED_BY_SHARING = "sharing"
