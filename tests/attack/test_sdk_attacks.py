"""Attack review: the SDK's side (plain http only for loopback)."""

from __future__ import annotations

from pathlib import Path

import pytest

from software_dna import LicenseClient

KEYS = ["k4.public.20FJ0v-EI26jIoub0oKIRBQ6RrwkzJPTfjhy3I9uKuQ"]


@pytest.mark.parametrize("url", ["http://licenses.localhost:8000", "http://localhost.:8000"])
def test_plain_http_to_a_name_the_resolver_sends_to_dns_is_refused(
        url: str, tmp_path: Path) -> None:
    """`http://` is accepted only for loopback. `*.localhost` and the absolute name
    `localhost.` are not in /etc/hosts: glibc's resolver (without systemd-resolved) asks DNS
    for them, so whoever answers DNS on the end user's network (a hotel Wi-Fi, a rogue DHCP)
    receives the license key and activation password in clear. docs/api.md names only
    localhost, 127.0.0.1 and ::1."""
    with pytest.raises(ValueError, match="https"):
        LicenseClient(product="p", public_keys=KEYS, server_url=url, store_path=tmp_path)
