"""software_dna — license your Python app: activate once, check offline at every start.

Typical use in a vendor's app::

    from software_dna import LicenseClient, LicenseError

    client = LicenseClient(product="acme-editor", public_keys=[PUBLIC_KEY],
                           server_url="https://license.example.com")
    try:
        license = client.check()
    except NotActivated:
        license = client.activate(input("License key: "))

Every error the SDK raises is a :class:`LicenseError` (see
:mod:`software_dna.errors` for the tree). Importing this package loads neither
``requests`` nor the server stack.
"""

from ._version import __version__
from .client import LicenseClient
from .errors import (
    ActivationError,
    ActivationLocked,
    ActivationMoved,
    ActivationReleased,
    ClockTampered,
    ConsentRequired,
    FingerprintUnavailable,
    InvalidToken,
    LeaseExpired,
    LicenseError,
    LicenseExpired,
    LicenseRevoked,
    LicenseSuspended,
    NetworkError,
    NoSeatsLeft,
    NotActivated,
    PasswordResetFailed,
    RenewalRefused,
    ServerError,
    ServerUnreachable,
    StoreCorrupted,
    StoreError,
    StoreFromAnotherMachine,
    StoreRolledBack,
    TrialUnavailable,
    UnknownLicenseKey,
    UntrustedSigningKey,
    WrongMachine,
    WrongPassword,
    WrongProduct,
)
from .license import License
from .wire.claims import Kind, Mode, Protection, SeatMode

__all__ = [
    "ActivationError",
    "ActivationLocked",
    "ActivationMoved",
    "ActivationReleased",
    "ClockTampered",
    "ConsentRequired",
    "FingerprintUnavailable",
    "InvalidToken",
    "Kind",
    "LeaseExpired",
    "License",
    "LicenseClient",
    "LicenseError",
    "LicenseExpired",
    "LicenseRevoked",
    "LicenseSuspended",
    "Mode",
    "NetworkError",
    "NoSeatsLeft",
    "NotActivated",
    "PasswordResetFailed",
    "Protection",
    "RenewalRefused",
    "SeatMode",
    "ServerError",
    "ServerUnreachable",
    "StoreCorrupted",
    "StoreError",
    "StoreFromAnotherMachine",
    "StoreRolledBack",
    "TrialUnavailable",
    "UnknownLicenseKey",
    "UntrustedSigningKey",
    "WrongMachine",
    "WrongPassword",
    "WrongProduct",
    "__version__",
]
