"""One table of "same machine?" cases, fed to the rules, the SDK and the server.

Each case is a pair of algorithm-2 component sets, a tolerance and the
answer. tests/test_identity.py checks the pure rules against it; the SDK's
check() and the server's validation are fed the same table
(tests/test_identity_paths.py), so both sides give one answer.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from software_dna.wire.identity import ComponentSet


def h(label: str) -> str:
    """A well-formed component hash standing for ``label`` (43 base64url characters)."""
    return base64.urlsafe_b64encode(hashlib.sha256(label.encode()).digest()).rstrip(b"=").decode()


def machine(name: str, *, macs: tuple[str, ...] | None = None, cpu: str = "cpu-x",
            os_arch: str = "linux/x86_64", smbios: str | None = None,
            machine_id: str | None = "") -> dict[str, str | tuple[str, ...] | None]:
    """The component set of a simulated machine ``name`` (hashes of readable labels)."""
    mid = h(f"mid-{name}") if machine_id == "" else (None if machine_id is None
                                                       else h(machine_id))
    mac_values = (f"mac-{name}",) if macs is None else macs
    components: dict[str, str | tuple[str, ...] | None] = {
        "machine_id": mid,
        "os_arch": h(os_arch),
        "cpu": h(cpu),
        "mac": tuple(sorted(h(m) for m in mac_values)) if mac_values else None,
    }
    if smbios is not None:
        components["smbios_uuid"] = h(smbios)
    return components


def drift(components: ComponentSet,
          **changes: str | tuple[str, ...] | None) -> dict[str, str | tuple[str, ...] | None]:
    """A copy of ``components`` with some values replaced (hash labels, tuples or None)."""
    out: dict[str, str | tuple[str, ...] | None] = dict(components)
    for name, value in changes.items():
        if isinstance(value, str):
            out[name] = h(value)
        elif isinstance(value, tuple):
            out[name] = tuple(sorted(h(v) for v in value))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class Case:
    """``compare(a, b, tolerance).same`` must be ``same``."""

    name: str
    a: ComponentSet
    b: ComponentSet
    tolerance: int
    same: bool


A = machine("a")
B = machine("b")
DOCKED = machine("a", macs=("mac-a", "mac-dock"))
WIN = machine("w", smbios="smbios-w", os_arch="windows/amd64")

CASES: tuple[Case, ...] = (
    Case("identical", A, A, 0, True),
    Case("identical, tolerance 1", A, A, 1, True),
    Case("two machines", A, B, 1, False),
    Case("machine id regenerated (tolerance 1)", A, drift(A, machine_id="mid-new"), 1, True),
    Case("machine id regenerated (tolerance 0)", A, drift(A, machine_id="mid-new"), 0, False),
    Case("machine id unreadable (tolerance 1)", A, drift(A, machine_id=None), 1, True),
    Case("dock added: shares an address", A, DOCKED, 0, True),
    Case("dock gone: shares an address", DOCKED, A, 0, True),
    Case("network card replaced (tolerance 1)", A, drift(A, mac=("mac-new",)), 1, True),
    Case("cloned VM: same machine id, new MAC", A, drift(A, mac=("mac-clone",)), 1, True),
    Case("CPU upgraded (tolerance 1)", A, drift(A, cpu="cpu-y"), 1, True),
    Case("CPU upgraded (tolerance 0)", A, drift(A, cpu="cpu-y"), 0, False),
    Case("machine id and MAC both changed", A, drift(A, machine_id="m2", mac=("n2",)), 1, False),
    Case("only OS and CPU equal never match", A,
         drift(A, machine_id=None, mac=None), 5, False),
    Case("machine id and CPU changed", A, drift(A, machine_id="m2", cpu="c2"), 1, False),
    Case("Windows: MachineGuid unreadable, SMBIOS UUID equal", WIN,
         drift(WIN, machine_id=None), 1, True),
    Case("Windows: SMBIOS UUID missing on one side", WIN,
         {k: v for k, v in WIN.items() if k != "smbios_uuid"}, 1, True),
    Case("Windows: SMBIOS UUID missing on one side (tolerance 0)", WIN,
         {k: v for k, v in WIN.items() if k != "smbios_uuid"}, 0, False),
    Case("Windows: MachineGuid and SMBIOS UUID both changed", WIN,
         drift(WIN, machine_id="g2", smbios_uuid="s2"), 1, False),
    Case("same hardware class, other machine", machine("c", cpu="same"),
         machine("d", cpu="same"), 1, False),
    Case("MAC unavailable on both sides (tolerance 0)", drift(A, mac=None),
         drift(A, mac=None), 0, False),
    Case("MAC unavailable on both sides (tolerance 1)", drift(A, mac=None),
         drift(A, mac=None), 1, True),
)
