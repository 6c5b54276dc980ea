"""This machine's raw identifiers, and whether one of them shows up in some text.

Used by the tests that prove the SDK never sends (or writes into an
activation request) a raw machine id, host name, MAC address, CPU model,
OS user name or home folder.  Host names can be very short (CI machines
named ``vm``), so a short identifier only counts as a whole word: ``vm``
inside a base64url hash is not a leak.
"""

from __future__ import annotations

import contextlib
import getpass
import re
import socket
import uuid
from pathlib import Path

from software_dna import fingerprint as fp


def raw_identifiers() -> dict[str, str]:
    """This machine's raw identifiers, read here, in the forms they could be sent in."""
    raw = fp._gather()
    found: dict[str, str] = {}
    for name, value in raw.values.items():
        found[f"fingerprint {name}"] = value
    for index, mac in enumerate(raw.macs):
        found[f"fingerprint mac {index}"] = mac
    with contextlib.suppress(OSError):
        machine_id = Path("/etc/machine-id").read_text().strip()
        if machine_id:
            found["/etc/machine-id"] = machine_id
            with contextlib.suppress(ValueError):
                found["machine id as a UUID"] = str(uuid.UUID(machine_id))
    found["socket host name"] = socket.gethostname()
    found["fully qualified host name"] = socket.getfqdn()
    with contextlib.suppress(OSError):
        for iface in Path("/sys/class/net").iterdir():
            with contextlib.suppress(OSError):
                mac = (iface / "address").read_text().strip()
                if mac and mac != "00:00:00:00:00:00":
                    found[f"MAC of {iface.name}"] = mac
                    found[f"MAC of {iface.name}, bare"] = mac.replace(":", "")
                    found[f"MAC of {iface.name}, dashes"] = mac.replace(":", "-")
    node = uuid.getnode()
    found["uuid.getnode()"] = f"{node:012x}"
    with contextlib.suppress(Exception):
        found["OS user name"] = getpass.getuser()
    found["home folder"] = str(Path.home())
    return {k: v for k, v in found.items() if v and v not in ("localhost", "/")}


def appears(needle: str, text: str) -> bool:
    """``needle`` in ``text``, in any case; short needles only as a whole word."""
    low, hay = needle.lower(), text.lower()
    if len(low) >= 8:
        return low in hay
    return re.search(rf"(?<![a-z0-9]){re.escape(low)}(?![a-z0-9])", hay) is not None
