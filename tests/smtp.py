"""A real SMTP server on 127.0.0.1 for tests (aiosmtpd), keeping every mail it receives.

::
    with Mailbox() as box:              # plain SMTP on 127.0.0.1:box.port
        ...                             # the server sends mail there
        mail = box.wait_for(1)[0]       # an email.message.EmailMessage

``Mailbox(tls_context=ctx, require_starttls=True)`` offers (and insists on)
STARTTLS with that server context; :func:`self_signed` makes a certificate
for 127.0.0.1 and writes its PEM where a client can trust it.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
import ssl
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from software_dna.server.testing import free_port

#: An email confirmation link in a mail's text (docs/security.md, email confirmation).
LINK_RE = re.compile(r"(\S+/v1/email-confirmations/([A-Za-z0-9_-]+))")


def mailed_link(message: EmailMessage) -> str:
    """The email confirmation link in ``message`` (AssertionError if there is none)."""
    body = message.get_body(("plain",))
    assert body is not None
    found = LINK_RE.search(body.get_content())
    assert found, body.get_content()
    return found[1]


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        message = message_from_bytes(raw, policy=policy.default)
        assert isinstance(message, EmailMessage)
        with self.box.lock:
            self.box.messages.append(message)
            self.box.recipients.append(list(envelope.rcpt_tos))
            self.box.raw.append(bytes(raw))
        return "250 Message accepted for delivery"


class Mailbox:
    """An aiosmtpd server in a thread; ``messages`` holds what it received (thread-safe)."""

    def __init__(self, **smtp_options: Any) -> None:
        self.port = free_port()
        self.lock = threading.Lock()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.raw: list[bytes] = []
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      **smtp_options)

    def __enter__(self) -> Mailbox:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """The first ``count`` messages, waiting up to ``timeout`` seconds for them."""
        ends = time.monotonic() + timeout
        while time.monotonic() < ends:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages[:count])
            time.sleep(0.02)
        raise AssertionError(f"expected {count} mail(s), got {len(self.messages)}")


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1, and its PEM."""

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = folder / "smtp-cert.pem"
    key_path = folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path
