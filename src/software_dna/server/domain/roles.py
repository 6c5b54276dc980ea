"""Staff roles and what each may do: the one permission matrix.

The control panel (staff accounts) and the admin API (scoped keys) ask the
same question, :func:`allows`, with a :class:`Role` the server holds (a staff
row's role, an admin key's role) and a :class:`Permission` the route names.
Nothing the browser or the API client sends chooses the role.

The roles follow the commercial service's sub-users:

- ``owner``: everything, including staff accounts and admin API keys.
- ``admin``: everything but staff accounts and admin API keys.  Only these two
  run commerce (stores, webhooks, mail templates, branding): each of those can
  issue licenses or send keys and buyers' data out of the server.
- ``support``: licenses, end users (their personal data), lock-outs,
  air-gapped answers; no products, no signing keys, no test codes.
- ``developer``: products, signing keys, test codes and trials; licenses
  and activations without personal data; no end users, no commerce.
- ``read_only``: reads everything but personal data; changes nothing.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "allows", "role_names"]


class Role(str, Enum):
    """A staff member's or an admin API key's role."""

    OWNER = "owner"
    ADMIN = "admin"
    SUPPORT = "support"
    DEVELOPER = "developer"
    READ_ONLY = "read_only"


class Permission(str, Enum):
    """One kind of action; a route or a panel page needs exactly one."""

    #: See the dashboard, products, licenses, activations, the audit log (no personal data).
    READ = "read"
    #: Create and configure products and their settings.
    PRODUCTS = "products"
    #: What sells and sends: store connectors and price mappings (they issue licenses),
    #: outbound webhooks and mail templates (they carry keys and buyers' data out),
    #: the mails' branding (its support address receives buyers' replies).
    COMMERCE = "commerce"
    #: Generate, rotate, retire signing keys.
    KEYS = "keys"
    #: Issue, change, suspend, resume, revoke licenses; seats, expiry, passwords,
    #: renewal codes; remove activations; CSV import.
    LICENSES = "licenses"
    #: Test codes and trials (developers' tools).
    TEST_CODES = "test_codes"
    #: Lift lock-outs and rate limits.
    LOCKOUTS = "lockouts"
    #: Answer air-gapped activation requests.
    OFFLINE = "offline"
    #: See end users' personal data (decrypted; every view is audited), export it.
    PERSONAL_DATA = "personal_data"
    #: Erase an end user's personal data; restore full mode after an erasure.
    ERASE = "erase"
    #: Staff accounts and admin API keys.
    STAFF = "staff"


_ALL = frozenset(Permission)

#: The matrix: what each role may do.
ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: _ALL,
    Role.ADMIN: _ALL - {Permission.STAFF},
    Role.SUPPORT: frozenset({Permission.READ, Permission.LICENSES, Permission.LOCKOUTS,
                             Permission.OFFLINE, Permission.PERSONAL_DATA, Permission.ERASE}),
    Role.DEVELOPER: frozenset({Permission.READ, Permission.PRODUCTS, Permission.KEYS,
                               Permission.TEST_CODES}),
    Role.READ_ONLY: frozenset({Permission.READ}),
}


def allows(role: Role | str, permission: Permission) -> bool:
    """True when ``role`` may do ``permission``; an unknown role may do nothing."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False


def role_names() -> list[str]:
    """The role names, most powerful first (for forms and ``--role`` choices)."""
    return [role.value for role in Role]
