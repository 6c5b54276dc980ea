"""The values a collection produces: :class:`Fingerprint` and its algorithm-1 form."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from software_dna.wire import identity
from software_dna.wire.frozen import Frozen

__all__ = ["ALGORITHM", "Fingerprint", "LegacyFingerprint"]

#: The collection + normalization + hashing rules this SDK applies
#: (:data:`software_dna.wire.identity.ALGORITHM`).
ALGORITHM: Final = identity.ALGORITHM

#: Contribution of each component to :attr:`Fingerprint.quality` (sums to 1).
#: ``machine_id`` counts when either it or ``smbios_uuid`` is present: on
#: Windows the firmware UUID stands in for an unreadable MachineGuid.
_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"machine_id": 0.45, "mac": 0.25, "cpu": 0.15, "os_arch": 0.15})

_LEGACY_ID = re.compile(r"fp1\.(machine_id|mac|hostname)\.[A-Za-z0-9_-]{43}")


def _quality(components: Mapping[str, object]) -> float:
    present = {name for name, value in components.items() if value is not None}
    if "smbios_uuid" in present:
        present.add("machine_id")
    return round(sum(weight for name, weight in _WEIGHTS.items() if name in present), 4)


class LegacyFingerprint(Frozen):
    """This machine's algorithm-1 fingerprint (0.1 rules), kept only to migrate.

    A validation of an activation still bound to an algorithm-1 set sends it
    once as ``"previous"``; the server re-binds the activation to the new set
    and the next token is algorithm 2.

    Attributes:
        id: ``"fp1.<source>.<hash>"``: ``source`` is the strongest of
            ``machine_id``, ``mac``, ``hostname`` present, ``hash`` its value.
        components: read-only mapping name -> 43-character HMAC-SHA256 value
            (``machine_id``, ``os_arch``, ``mac``, ``hostname``, ``cpu``,
            present ones only).

    Raises (constructor):
        ValueError: a malformed id or component set
            (:class:`~software_dna.wire.identity.InvalidFingerprint`).
    """

    __slots__ = ("components", "id")

    def __init__(self, id: str, components: Mapping[str, str]) -> None:
        parsed = identity.parse_legacy_components(components)
        if not isinstance(id, str) or not _LEGACY_ID.fullmatch(id):
            raise identity.InvalidFingerprint("A legacy fingerprint id is fp1.<source>.<hash>.")
        self._open()
        self.id: Final[str] = id
        self.components: Final[Mapping[str, str]] = MappingProxyType(parsed)
        self._seal()

    def to_wire(self) -> dict[str, object]:
        """``{"id": str, "algorithm": 1, "components": {name: hash}}``, a fresh dict."""
        return {"id": self.id, "algorithm": identity.LEGACY_ALGORITHM,
                "components": dict(self.components)}

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, LegacyFingerprint)
        return (self.id, dict(self.components)) == (other.id, dict(other.components))

    def __hash__(self) -> int:
        return hash((self.id, tuple(sorted(self.components.items()))))

    def __repr__(self) -> str:
        return f"LegacyFingerprint(id={self.id!r}, components={dict(self.components)!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (LegacyFingerprint, (self.id, dict(self.components)))


class Fingerprint(Frozen):
    """The fingerprint of this machine for one product (algorithm 2).

    Attributes:
        algorithm: always :data:`ALGORITHM` (2).
        components: read-only mapping, every name of
            :data:`~software_dna.wire.identity.REQUIRED` (plus
            ``smbios_uuid`` on Windows) -> a 43-character base64url scrypt
            hash, for ``mac`` a sorted tuple of such hashes (one per
            address), or ``None`` when this machine cannot read it.
        missing: read-only mapping name -> human reason the component is
            unavailable (never a raw identifier). Every ``None`` component
            is listed.
        quality: 0.0 to 1.0, the summed weights of the available components
            (machine id or SMBIOS UUID 0.45, MAC 0.25, CPU 0.15, OS 0.15).
        legacy: the algorithm-1 fingerprint of this machine
            (:class:`LegacyFingerprint`), or None when it was not computed
            (built by hand, or no algorithm-1 source readable).

    Only :meth:`to_wire` (and, once, ``legacy.to_wire()``) is ever sent;
    ``missing`` and ``quality`` stay local. Immutable (assigning raises
    :class:`dataclasses.FrozenInstanceError`), compared by every attribute,
    hashable. Build one by hand with :meth:`from_components`.

    Raises (constructor):
        ValueError: ``components`` is refused by
            :func:`software_dna.wire.identity.parse_components`
            (:class:`~software_dna.wire.identity.InvalidFingerprint`: unknown
            or missing name, malformed hash, no identifying component), or
            ``missing`` names an unknown component or holds a non-str reason.
    """

    __slots__ = ("algorithm", "components", "legacy", "missing", "quality")

    def __init__(self, components: Mapping[str, object],
                 missing: Mapping[str, str] | None = None,
                 legacy: LegacyFingerprint | None = None) -> None:
        parsed = identity.parse_components(components)
        reasons = dict(missing or {})
        for name, reason in reasons.items():
            if name not in identity.NAMES or not isinstance(reason, str):
                raise identity.InvalidFingerprint(
                    "'missing' maps component names to human reasons.")
        for name, value in parsed.items():
            if value is None:
                reasons.setdefault(name, "unavailable")
        if legacy is not None and not isinstance(legacy, LegacyFingerprint):
            raise TypeError("legacy must be a LegacyFingerprint or None")
        self._open()
        self.algorithm: Final[int] = ALGORITHM
        # Read-only copies: neither the caller's dicts nor anyone holding the
        # Fingerprint can change it afterwards.
        self.components: Final[Mapping[str, str | tuple[str, ...] | None]] = (
            MappingProxyType(parsed))
        self.missing: Final[Mapping[str, str]] = MappingProxyType(
            {name: reasons[name] for name in identity.NAMES if name in reasons})
        self.quality: Final[float] = _quality(parsed)
        self.legacy: Final[LegacyFingerprint | None] = legacy
        self._seal()

    @classmethod
    def from_components(cls, components: Mapping[str, object], *,
                        missing: Mapping[str, str] | None = None,
                        legacy: LegacyFingerprint | None = None) -> Fingerprint:
        """Build a fingerprint from component hashes (vendors' own sources, tests).

        Args:
            components: name -> hash, ``None``, or for ``mac`` a list/tuple of
                hashes -- the JSON form the wire carries (``to_wire()["components"]``).
            missing: optional reasons for the ``None`` components.
            legacy: the algorithm-1 form, when the machine has one.

        Returns:
            The :class:`Fingerprint` (``mac`` normalized to a sorted tuple).

        Raises:
            ValueError: as the constructor.
        """
        return cls(components, missing, legacy)

    def to_wire(self) -> dict[str, object]:
        """The JSON-ready form sent to the license server (a fresh dict, safe to modify).

        Returns:
            ``{"algorithm": 2, "components": {name: hash | [hash, ...] | None}}``.
        """
        return {"algorithm": self.algorithm, "components": identity.to_json(self.components)}

    def _values(self) -> tuple[object, ...]:
        return (self.algorithm, dict(self.components), dict(self.missing), self.quality,
                self.legacy)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Fingerprint)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash((self.algorithm, tuple(self.components.items()),
                     tuple(self.missing.items()), self.quality, self.legacy))

    def __repr__(self) -> str:
        return (f"Fingerprint(algorithm={self.algorithm!r}, "
                f"components={dict(self.components)!r}, missing={dict(self.missing)!r}, "
                f"quality={self.quality!r}, legacy={self.legacy!r})")

    def __reduce__(self) -> tuple[object, ...]:
        return (Fingerprint, (dict(self.components), dict(self.missing), self.legacy))
