"""The client SDK: :class:`LicenseClient` and the objects it is built from.

Layers, each importing only those before it: ``transport`` (the network
seam) -> ``refusals`` (every error code's meaning) -> ``server`` (the
network object), ``verifier`` (trusted keys), ``rollback``, ``document``
-> ``state`` (the local state object) -> ``expiry``, ``lease`` ->
``validation`` -> the features (``checkout``, ``settings``, ``passwords``,
``airgap``, ``activation``, ``terms``, ``periodic``) -> ``facade``
(:class:`LicenseClient`).
"""

from .facade import LicenseClient

__all__ = ["LicenseClient"]
