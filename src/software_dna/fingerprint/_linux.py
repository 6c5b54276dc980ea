"""Linux readers: a few files under a root directory, never a subprocess.

Every function takes the file-system ``root`` (``/`` in production, a
temporary directory in tests).
"""

from __future__ import annotations

import os
from pathlib import Path

from software_dna.fingerprint._common import (
    MissingError,
    format_mac,
    normalize_id,
    placeholder_reason,
    read_text,
    usable_mac,
)

__all__ = ["cpu", "display", "in_container", "machine_id", "macs"]


def display(root: Path, path: Path) -> str:
    """A path as the user knows it (relative to ``root``)."""
    try:
        return "/" + path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


# --- machine id


def machine_id(root: Path) -> str:
    """The systemd/D-Bus machine id, in py-machineid's order, without a subprocess.

    py-machineid reads ``/var/lib/dbus/machine-id`` then ``/etc/machine-id``
    (normally the same file); only when both are absent does it shell out to
    derive a Docker container id, which changes with every new container and
    so is deliberately not used here.

    Raises:
        MissingError: neither file holds a usable id (the reason names the
            files and, in a container, says to mount the host's id).
    """
    reasons: list[str] = []
    for relative in ("var/lib/dbus/machine-id", "etc/machine-id"):
        path = root / relative
        try:
            value = normalize_id(read_text(path))
        except FileNotFoundError:
            reasons.append(f"no {display(root, path)}")
            continue
        except OSError as exc:
            reasons.append(f"{display(root, path)} could not be read ({exc.strerror or exc})")
            continue
        except UnicodeError:
            reasons.append(f"{display(root, path)} is not text")
            continue
        problem = placeholder_reason(value)
        if problem is None:
            return value
        reasons.append(f"{display(root, path)} {problem}")
    reason = "; ".join(reasons)
    if in_container(root):
        reason += (
            " (this looks like a container: mount the host's /etc/machine-id read-only "
            "to keep the activation when the container is re-created)"
        )
    raise MissingError(reason)


def in_container(root: Path) -> bool:
    """True inside Docker or Podman (their marker files)."""
    return (root / ".dockerenv").exists() or (root / "run/.containerenv").exists()


# --- MAC addresses

#: Interface name prefixes that are always virtual (containers, VMs, VPNs, bridges).
_VIRTUAL_PREFIXES: tuple[str, ...] = (
    "lo", "docker", "veth", "br-", "virbr", "vnet", "vboxnet", "vmnet", "tun", "tap",
    "utun", "wg", "zt", "tailscale", "ifb", "dummy",
)

_ARPHRD_ETHER = "1"  # /sys/class/net/<if>/type for Ethernet and Wi-Fi
_ADDR_RANDOM = "1"  # addr_assign_type: NET_ADDR_RANDOM
_ADDR_SET = "3"  # addr_assign_type: NET_ADDR_SET (changed from user space)


def _parse_mac(text: str) -> bytes | None:
    parts = text.strip().lower().split(":")
    if len(parts) != 6 or any(len(p) != 2 for p in parts):
        return None
    try:
        return bytes(int(p, 16) for p in parts)
    except ValueError:
        return None


def _usable(mac: bytes, assign_type: str | None) -> bool:
    if assign_type == _ADDR_RANDOM:
        return False
    # Locally administered *and* set from user space: MAC randomisation
    # (NetworkManager, systemd-networkd, macchanger). Locally administered
    # addresses assigned by the driver are kept: that is how hypervisors and
    # clouds give VMs their stable NIC addresses.
    return usable_mac(mac, random_ok=assign_type != _ADDR_SET)


def _read_optional(path: Path) -> str | None:
    try:
        return read_text(path).strip()
    except (OSError, UnicodeError):
        return None


def macs(root: Path) -> tuple[list[str], list[str]]:
    """Addresses of the physical interfaces under ``/sys/class/net``.

    Returns:
        ``(fixed, removable)``: sorted normalized addresses of built-in
        cards, and of USB ones (docks, dongles). Either may be empty.

    Raises:
        MissingError: ``/sys/class/net`` cannot be listed.
    """
    net = root / "sys/class/net"
    try:
        names = sorted(os.listdir(net))
    except OSError as exc:
        raise MissingError(
            f"{display(root, net)} is not available ({exc.strerror or exc})") from exc
    fixed: set[str] = set()
    removable: set[str] = set()
    for name in names:
        if name.startswith(_VIRTUAL_PREFIXES):
            continue
        iface = net / name
        try:
            if not (iface / "device").exists():  # no bus device behind it: virtual
                continue
            if (iface / "bridge").exists():
                continue
            if _read_optional(iface / "type") not in (None, _ARPHRD_ETHER):
                continue
            mac = _parse_mac(read_text(iface / "address"))
            if mac is None or not _usable(mac, _read_optional(iface / "addr_assign_type")):
                continue
            subsystem = iface / "device" / "subsystem"
            bus = os.path.basename(os.readlink(subsystem)) if subsystem.is_symlink() else ""
        except (OSError, UnicodeError):
            continue
        (removable if bus == "usb" else fixed).add(format_mac(mac))
    return sorted(fixed), sorted(removable)


# --- CPU model

#: /proc/cpuinfo keys naming the CPU model, by preference (x86; old ARM; MIPS; ARM; PowerPC).
_CPUINFO_KEYS: tuple[str, ...] = ("model name", "Hardware", "cpu model", "Processor", "cpu")


def cpu(root: Path) -> str:
    """The CPU model named in ``/proc/cpuinfo`` (not normalized).

    Raises:
        MissingError: no ``/proc/cpuinfo`` or no model in it.
        OSError, UnicodeError: it cannot be read.
    """
    path = root / "proc/cpuinfo"
    found: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                key, sep, value = line.partition(":")
                if not sep:
                    continue
                key = key.strip()
                value = value.strip()
                # x86's "processor" is the CPU index; only a name counts.
                if not value or value.isdigit() or key in found:
                    continue
                found[key] = value
                if key == "model name":  # x86: first block has it, stop early
                    break
    except FileNotFoundError as exc:
        raise MissingError(f"no {display(root, path)}") from exc
    for key in _CPUINFO_KEYS:
        if key in found:
            return found[key]
    implementer = found.get("CPU implementer")
    part = found.get("CPU part")
    if implementer and part:  # arm64: no model name, but a stable (vendor, part) pair
        return f"arm implementer {implementer} part {part}"
    raise MissingError(f"{display(root, path)} names no CPU model")
