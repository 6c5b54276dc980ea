"""Test certificates: a self-made CA (ECDSA P-256) and the server certificates it issues.

:class:`CA` issues certificates for names or IP addresses (expired on request);
:func:`make_tls` writes a CA and a server certificate into a folder, as the
proxy, doctor and frozen-app tests hand them to nginx, uvicorn or an app.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["CA", "Tls", "make_tls"]


class CA:
    """A self-made certificate authority (ECDSA P-256), valid from a day ago for 30 days."""

    def __init__(self, name: str = "software_dna test CA") -> None:
        now = dt.datetime.now(dt.timezone.utc)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )

    def pem(self) -> bytes:
        """The CA's certificate (PEM)."""
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, *hosts: str, expired: bool = False) -> tuple[bytes, bytes]:
        """A server certificate for ``hosts`` (DNS names or IP addresses; the first is the
        common name): ``(certificate PEM, private key PEM)``."""
        now = dt.datetime.now(dt.timezone.utc)
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        start, end = ((now - dt.timedelta(days=10), now - dt.timedelta(days=1)) if expired
                      else (now - dt.timedelta(days=1), now + dt.timedelta(days=10)))
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
            .issuer_name(self.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return (cert.public_bytes(serialization.Encoding.PEM),
                key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))


@dataclass(frozen=True)
class Tls:
    """A test CA and a server certificate it signed (PEM files)."""

    ca: Path
    certificate: Path
    key: Path


def make_tls(folder: Path, hosts: Sequence[str] = ("127.0.0.1", "localhost")) -> Tls:
    """Write a new CA and a server certificate for ``hosts`` into ``folder`` (created):
    ``ca.pem``, ``server.pem``, ``server.key`` (0600)."""
    folder.mkdir(parents=True, exist_ok=True)
    authority = CA()
    certificate, key = authority.issue(*hosts)
    tls = Tls(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    tls.ca.write_bytes(authority.pem())
    tls.certificate.write_bytes(certificate)
    tls.key.write_bytes(key)
    tls.key.chmod(0o600)
    return tls
