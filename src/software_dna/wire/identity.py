"""Machine identity rules: the component set, its validation and the one comparison.

These rules are pure (no I/O, no clock) and shared: the SDK uses them to
check a token against this machine, the server to decide every "same
machine?" question (re-activation, idempotent replay, trial look-up,
air-gapped activation and deactivation, floating check-out, validation and
re-bind, roll-over).  Writing them once is what makes both sides give the
same answer for the same pair of fingerprints.

A *component set* (fingerprint algorithm 2) maps a component name to

- a component hash: 43 characters of unpadded base64url (32 bytes, a slow
  per-product hash computed by the SDK, :mod:`software_dna.fingerprint`);
- for ``mac``, a tuple of such hashes, one per physical network address;
- ``None`` when the machine cannot read that component (it still counts
  as *different* in every comparison).

Names (:data:`NAMES`): ``machine_id`` (systemd/D-Bus id on Linux, the
platform UUID on macOS, MachineGuid on Windows), ``smbios_uuid`` (Windows
only, the firmware UUID; absent elsewhere), ``os_arch``, ``cpu`` and
``mac``.  Every set carries the :data:`REQUIRED` names; ``machine_id``,
``smbios_uuid`` and ``mac`` identify one machine (:data:`IDENTIFYING`),
``os_arch`` and ``cpu`` only a class of machines (:data:`SHARED`).

The comparison (:func:`compare`) is symmetric:

- the names compared are the union of both sides' names;
- a component is *equal* when both sides hold it and the hashes are equal
  (for ``mac``: when the two address sets share at least one address, so a
  dock or a USB adapter coming and going is not drift); missing or ``None``
  on either side counts as different;
- the machines are the same when at most ``tolerance`` components differ
  **and** at least one identifying component is equal: the OS and the CPU
  model, which many machines share, never carry a match on their own.

Algorithm 1 (0.1 SDKs: one HMAC per component, ``hostname`` included,
MACs joined into one hash) is compared by :func:`compare_legacy` only so
that existing activations keep validating until they migrate.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from typing import Final, NamedTuple, TypeAlias

__all__ = [
    "ALGORITHM",
    "HARDWARE_IDS",
    "IDENTIFYING",
    "LEGACY_ALGORITHM",
    "MAX_MACS",
    "MAX_TOLERANCE",
    "NAMES",
    "REQUIRED",
    "SHARED",
    "Comparison",
    "ComponentSet",
    "InvalidFingerprint",
    "compare",
    "compare_legacy",
    "conflicts",
    "index_terms",
    "parse_components",
    "parse_legacy_components",
    "same_machine",
    "to_json",
    "tolerance_problem",
    "unavailable",
]

#: The fingerprint algorithm these rules describe.
ALGORITHM: Final = 2
#: The 0.1 algorithm, accepted only to validate and migrate existing activations.
LEGACY_ALGORITHM: Final = 1

#: Components every set must name (the value may be None: unavailable).
REQUIRED: Final = ("machine_id", "os_arch", "cpu", "mac")
#: Components a set may add (Windows reads the firmware UUID separately).
OPTIONAL: Final = ("smbios_uuid",)
#: Every component name algorithm 2 knows, in a fixed order.
NAMES: Final = REQUIRED + OPTIONAL
#: Components that identify one machine; a match needs one of them equal.
IDENTIFYING: Final = frozenset({"machine_id", "smbios_uuid", "mac"})
#: The firmware and OS identifiers: the anchor where a MAC list, which a client can
#: pad with another machine's addresses, must not carry a match (see :func:`compare`).
HARDWARE_IDS: Final = frozenset({"machine_id", "smbios_uuid"})
#: Components shared by many machines; they never carry a match on their own.
SHARED: Final = frozenset({"os_arch", "cpu"})
#: At most this many addresses in ``mac`` (more is no real machine's set).
MAX_MACS: Final = 16
#: A product's tolerance is at most the identifying components every OS has
#: (machine id and MACs) minus one, so a match always rests on an identifying one.
MAX_TOLERANCE: Final = 1

#: One component value: a hash, a sorted tuple of MAC hashes, or None (unavailable).
Value: TypeAlias = "str | tuple[str, ...] | None"
#: A component set: name -> value.
ComponentSet: TypeAlias = "Mapping[str, str | tuple[str, ...] | None]"

_HASH = re.compile(r"[A-Za-z0-9_-]{43}")
_LEGACY_NAMES = frozenset({"machine_id", "os_arch", "mac", "hostname", "cpu"})


class InvalidFingerprint(ValueError):
    """A component set is malformed; ``str(exc)`` says why (safe to show a client)."""


# --------------------------------------------------------------------------- parsing


def _hash(value: object, where: str) -> str:
    if not isinstance(value, str) or not _HASH.fullmatch(value):
        raise InvalidFingerprint(f"{where} must be a 43-character base64url component hash.")
    return value


def parse_components(value: object) -> dict[str, str | tuple[str, ...] | None]:
    """Validate an algorithm-2 component set from JSON and return its normal form.

    Args:
        value: the decoded JSON ``components`` object: name -> hash string,
            ``null``, or (``mac``) a list of 1 to :data:`MAX_MACS` hashes.

    Returns:
        A new dict: every :data:`REQUIRED` name, ``smbios_uuid`` when given;
        ``mac`` as a sorted tuple without duplicates.

    Raises:
        InvalidFingerprint: not an object, an unknown name, a required name
            missing, a malformed hash, an empty or too long MAC list, or no
            identifying component available.
    """
    if not isinstance(value, Mapping):
        raise InvalidFingerprint("The fingerprint's components must be an object.")
    unknown = sorted(str(name) for name in value if name not in NAMES)
    if unknown:
        raise InvalidFingerprint(f"Unknown fingerprint component: {unknown[0][:40]!r}.")
    absent = [name for name in REQUIRED if name not in value]
    if absent:
        raise InvalidFingerprint(f"The fingerprint lacks the {absent[0]!r} component "
                                 "(send null when the machine cannot read it).")
    parsed: dict[str, str | tuple[str, ...] | None] = {}
    for name in NAMES:
        if name not in value:
            continue
        item = value[name]
        if item is None:
            parsed[name] = None
        elif name == "mac":
            if not isinstance(item, list | tuple) or not 1 <= len(item) <= MAX_MACS:
                raise InvalidFingerprint(
                    f"'mac' must be null or a list of 1 to {MAX_MACS} component hashes.")
            parsed[name] = tuple(sorted({_hash(h, "Each 'mac' entry") for h in item}))
        else:
            parsed[name] = _hash(item, f"{name!r}")
    if all(parsed.get(name) is None for name in IDENTIFYING):
        raise InvalidFingerprint("The fingerprint holds no identifying component "
                                 "(machine id or network card address).")
    return parsed


def parse_legacy_components(value: object) -> dict[str, str]:
    """Validate an algorithm-1 component set (0.1 SDKs) from JSON.

    Raises:
        InvalidFingerprint: not an object of known names to component hashes.
    """
    if not isinstance(value, Mapping) or not value:
        raise InvalidFingerprint("The fingerprint's components must be a non-empty object.")
    parsed: dict[str, str] = {}
    for name, item in value.items():
        if name not in _LEGACY_NAMES:
            raise InvalidFingerprint(f"Unknown fingerprint component: {str(name)[:40]!r}.")
        parsed[name] = _hash(item, f"{name!r}")
    return parsed


def to_json(components: ComponentSet) -> dict[str, object]:
    """The JSON form of a component set (``mac`` as a list); a fresh dict."""
    return {name: list(item) if isinstance(item, tuple) else item
            for name, item in components.items()}


def tolerance_problem(tolerance: object) -> str | None:
    """Why ``tolerance`` cannot be a product's setting, or None when it can."""
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        return "fingerprint_tolerance must be an integer."
    if not 0 <= tolerance <= MAX_TOLERANCE:
        return (f"fingerprint_tolerance must be 0 to {MAX_TOLERANCE}: a match must always "
                "rest on an identifying component (machine id or network card).")
    return None


# --------------------------------------------------------------------------- comparison


class Comparison(NamedTuple):
    """The outcome of :func:`compare`.

    Attributes:
        same: the two sets are the same machine under the tolerance.
        differing: names that are not equal (missing or None on either side
            included).
        conflicting: names both sides hold with different values (for
            ``mac``: disjoint address sets). A component that is only
            missing on one side is drift, not a conflict.
        identifying_equal: some identifying component (of the anchors asked
            for) is equal.
    """

    same: bool
    differing: frozenset[str]
    conflicting: frozenset[str]
    identifying_equal: bool


def _equal_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("ascii", "replace"), b.encode("ascii", "replace"))


def _equal(a: Value, b: Value) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, tuple) or isinstance(b, tuple):
        left = a if isinstance(a, tuple) else (a,)
        right = b if isinstance(b, tuple) else (b,)
        return any(_equal_hash(x, y) for x in left for y in right)
    return _equal_hash(a, b)


def compare(a: ComponentSet, b: ComponentSet, tolerance: int, *,
            anchors: frozenset[str] = IDENTIFYING) -> Comparison:
    """Compare two algorithm-2 component sets (the module docstring gives the rule).

    Symmetric: ``compare(a, b, t) == compare(b, a, t)``.

    Args:
        a, b: component sets in normal form (:func:`parse_components`).
        tolerance: how many components may differ (0 to :data:`MAX_TOLERANCE`
            for a product; any int >= 0 is accepted here).
        anchors: the components one of which must be equal for a match
            (default :data:`IDENTIFYING`). :data:`HARDWARE_IDS` where nothing
            would later catch a set padded with another machine's MAC
            addresses (trials, activations never refreshed).

    Returns:
        A :class:`Comparison`.

    Raises:
        TypeError: ``tolerance`` is not an int (bool refused).
        ValueError: ``tolerance`` is negative.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        raise TypeError(f"tolerance must be an int, not {type(tolerance).__name__}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    differing: set[str] = set()
    conflicting: set[str] = set()
    identifying_equal = False
    for name in sorted(set(a) | set(b)):
        left, right = a.get(name), b.get(name)
        if _equal(left, right):
            identifying_equal = identifying_equal or name in anchors
            continue
        differing.add(name)
        if left is not None and right is not None:
            conflicting.add(name)
    return Comparison(
        same=identifying_equal and len(differing) <= tolerance,
        differing=frozenset(differing),
        conflicting=frozenset(conflicting),
        identifying_equal=identifying_equal,
    )


def same_machine(a: ComponentSet, b: ComponentSet, tolerance: int) -> bool:
    """``compare(a, b, tolerance).same``: the one "same machine?" question."""
    return compare(a, b, tolerance).same


def conflicts(a: ComponentSet, b: ComponentSet) -> bool:
    """True when some component is present on both sides with different values.

    Alternating between two sets that conflict is the sign of two machines
    sharing one activation; a set that only lacks a component (a read that
    failed) does not conflict with the full one.
    """
    return bool(compare(a, b, 0).conflicting)


def unavailable(components: ComponentSet) -> frozenset[str]:
    """The required names whose value is None (the machine could not read them)."""
    return frozenset(name for name in REQUIRED if components.get(name) is None)


def index_terms(components: ComponentSet) -> list[tuple[str, str]]:
    """``(name, hash)`` for every identifying value: what a keyed look-up index holds.

    Every match needs an equal identifying component, so looking candidates
    up by these terms finds every set that can be the same machine.
    """
    terms: list[tuple[str, str]] = []
    for name in sorted(IDENTIFYING):
        item = components.get(name)
        if isinstance(item, tuple):
            terms.extend((name, value) for value in item)
        elif isinstance(item, str):
            terms.append((name, item))
    return terms


def compare_legacy(stored: Mapping[str, str], current: Mapping[str, str],
                   tolerance: int) -> bool:
    """Algorithm 1's match, symmetric over the union of names.

    Same rule as :func:`compare` (a missing component counts as different;
    an identifying one, ``machine_id``, ``mac`` or ``hostname``, must be
    equal), applied to 0.1 component sets.

    Raises:
        TypeError, ValueError: as :func:`compare` for a bad ``tolerance``.
    """
    if isinstance(tolerance, bool) or not isinstance(tolerance, int):
        raise TypeError(f"tolerance must be an int, not {type(tolerance).__name__}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    different = 0
    anchored = False
    for name in set(stored) | set(current):
        left, right = stored.get(name), current.get(name)
        if left is not None and right is not None and _equal_hash(left, right):
            anchored = anchored or name in ("machine_id", "mac", "hostname")
        else:
            different += 1
    return anchored and different <= tolerance
