"""The server's secrets: the master key and everything derived from it.

One 32-byte master key (a file written by ``software-dna server init``, or
an environment variable) protects every secret the database holds.  Purpose
keys are derived from it with HKDF-SHA256, one per use, so that no key is
used for two things:

========================  ======================================================
derived key               protects
========================  ======================================================
``data``                  AES-256-GCM of personal fields (email, registration,
                          settings documents)
``signing-keys``          AES-256-GCM of the Ed25519 signing keys
``license-keys``          HMAC-SHA256 of license keys (look-up without storing them)
``email-index``           HMAC-SHA256 of normalised emails (find an end user by email)
``addresses``             HMAC-SHA256 of client addresses (rate-limit counters)
``activation-secrets``    HMAC-SHA256 activation id -> activation secret
``admin-keys``            HMAC-SHA256 of admin API keys
``reset-codes``           HMAC-SHA256 of password reset codes (with the license id)
``email-confirmations``   HMAC-SHA256 of email confirmation link tokens
``bindings``              AES-256-GCM of machine component sets (machine_bindings)
``binding-index``         HMAC-SHA256 of ``product \0 name \0 component hash``
                          (binding_index: find a machine without storing its hashes)
``backups``               HMAC-SHA256 of a backup's manifest (which holds the
                          SHA-256 of its database): a restore refuses a forgery
========================  ======================================================

Ciphertexts carry the purpose and the owning row's id as associated data,
so a ciphertext copied to another row or column does not decrypt.

Passwords are hashed with scrypt (per-password random salt) and compared in
constant time.  Signing keys are decrypted once per process and cached.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import os
import secrets
import threading
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from software_dna.server.config import ConfigError, Settings, default_key_file
from software_dna.wire.paseto import SecretKey

__all__ = [
    "MASTER_KEY_BYTES",
    "DecryptionError",
    "MasterKeyLocation",
    "Vault",
    "b64url",
    "create_master_key_file",
    "hash_password",
    "IPV6_PREFIX_RANGE",
    "TRANSLATOR_PREFIXES",
    "load_master_key",
    "rate_limit_network",
    "locate_master_key",
    "unb64url",
    "verify_password",
]

MASTER_KEY_BYTES = 32
_log = logging.getLogger("software_dna.server")
_FORMAT = b"\x01"  # version byte of every ciphertext
_NONCE = 12


class DecryptionError(Exception):
    """A ciphertext does not decrypt under this master key (wrong key or tampering)."""


def b64url(data: bytes) -> str:
    """Base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes:
    """Inverse of :func:`b64url`; raises ``ValueError`` on malformed input."""
    text = text.strip()
    if not text or any(c not in _B64URL for c in text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


# --------------------------------------------------------------------------- master key


def create_master_key_file(path: Path) -> bool:
    """Create ``path`` holding a fresh random master key, mode 0600, in a folder made 0700.

    Never overwrites: returns False (and leaves the file alone) when it exists.
    A folder this creates is mode 0700; an existing one keeps its mode.
    Raises ``OSError`` when the folder cannot be written.
    """
    if not path.parent.is_dir():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(b64url(secrets.token_bytes(MASTER_KEY_BYTES)) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _parse_master_key(text: str, source: str) -> bytes:
    try:
        key = unb64url(text)
    except ValueError:
        raise ConfigError(f"The master key in {source} is not base64url text.") from None
    if len(key) != MASTER_KEY_BYTES:
        raise ConfigError(
            f"The master key in {source} must be {MASTER_KEY_BYTES} bytes, got {len(key)}."
        )
    return key


@dataclass(frozen=True)
class MasterKeyLocation:
    """Where the master key comes from (see :func:`locate_master_key`).

    Attributes:
        source: ``"environment"`` (``SOFTWARE_DNA_MASTER_KEY``; ``path`` is
            None), ``"file"`` (the configured or default key file) or
            ``"legacy"`` (``<home>/master.key``, where older versions put it:
            still used, with a warning, until it is moved).
        path: the key file, or None for the environment.
    """

    source: str
    path: Path | None

    @property
    def warning(self) -> str | None:
        """What to tell the vendor about this location, or None when it is fine."""
        if self.source != "legacy":
            return None
        return (f"The master key is in the data folder ({self.path}), so every backup of the "
                f"folder holds the key to its own secrets. Move it out (e.g. to "
                f"{default_key_file()}) or point SOFTWARE_DNA_MASTER_KEY_FILE at where you keep "
                "it, and back it up apart from the database.")


def locate_master_key(settings: Settings) -> MasterKeyLocation:
    """Where the master key of ``settings`` is read from (reads only the file system).

    ``SOFTWARE_DNA_MASTER_KEY`` first; then a configured
    ``SOFTWARE_DNA_MASTER_KEY_FILE``; then, when ``<home>/master.key`` (the
    old default) exists, that file -- it is the key of this data folder, so it
    wins over the new default location, whose file may belong to another
    server of the same account; else the default location
    (:func:`software_dna.server.config.default_key_file`), whether or not it
    exists yet.
    """
    if settings.master_key is not None:
        return MasterKeyLocation("environment", None)
    if settings.master_key_file is not None:
        return MasterKeyLocation("file", settings.master_key_file)
    legacy = settings.legacy_key_file
    if legacy.is_file():
        return MasterKeyLocation("legacy", legacy)
    return MasterKeyLocation("file", settings.key_file)


def load_master_key(settings: Settings) -> bytes:
    """The master key: ``SOFTWARE_DNA_MASTER_KEY`` if set, else the key file
    (:func:`locate_master_key`); a key at the old location in the data folder is
    used and a warning logged (logger ``software_dna.server``).

    Raises :class:`ConfigError` when neither is available or the key is malformed.
    """
    where = locate_master_key(settings)
    if where.path is None:
        assert settings.master_key is not None
        return _parse_master_key(settings.master_key.get_secret_value(),
                                 "SOFTWARE_DNA_MASTER_KEY")
    path = where.path
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        elsewhere = ("" if settings.master_key_file is not None
                     else f" (nor at the old location {settings.legacy_key_file})")
        raise ConfigError(
            f"No master key: {path} does not exist{elsewhere} and SOFTWARE_DNA_MASTER_KEY is "
            "not set. Run `software-dna server init` for a new server, or put this server's "
            "key back there (or set SOFTWARE_DNA_MASTER_KEY_FILE to where it is)."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read the master key file {path}: {exc}") from None
    key = _parse_master_key(text, str(path))
    if where.warning is not None:
        _log.warning("%s", where.warning)
    return key


# --------------------------------------------------------------------------- passwords

_SCRYPT_N = 2**15
_SCRYPT_R = 8
_SCRYPT_P = 1


def hash_password(password: str) -> str:
    """scrypt hash of ``password`` with a fresh 16-byte salt.

    Returns ``scrypt$<n>$<r>$<p>$<salt b64url>$<hash b64url>``.
    """
    salt = secrets.token_bytes(16)
    digest = Scrypt(salt=salt, length=32, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P).derive(
        password.encode("utf-8")
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64url(salt)}${b64url(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when ``password`` matches the :func:`hash_password` value ``stored``.

    Constant-time comparison; a malformed ``stored`` value never matches.
    """
    try:
        scheme, n, r, p, salt_text, digest_text = stored.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = unb64url(salt_text), unb64url(digest_text)
        n_i, r_i, p_i = int(n), int(r), int(p)
    except ValueError:
        return False
    if not (2 <= n_i <= 2**20 and 1 <= r_i <= 32 and 1 <= p_i <= 16):
        return False
    actual = Scrypt(salt=salt, length=len(expected), n=n_i, r=r_i, p=p_i).derive(
        password.encode("utf-8")
    )
    return hmac.compare_digest(actual, expected)


# --------------------------------------------------------------------------- addresses

#: The prefix lengths an IPv6 client network may be set to (``rate_limit_ipv6_prefix``).
IPV6_PREFIX_RANGE = (32, 128)
#: The one network of every client address that is not an IP address.
UNPARSED_NETWORK = "unparsed"

#: Stateless IPv4/IPv6 translators' well-known /96 prefixes: an address in one
#: is an IPv4 client written as IPv6 (its low 32 bits), so it is counted as that
#: IPv4 address.  NAT64 / SIIT-DC (RFC 6052 ``64:ff9b::/96``) and SIIT's
#: IPv4-translated addresses (RFC 2765 ``::ffff:0:0:0/96``).  A network-specific
#: NAT64 prefix is not recognised (it would need a setting naming it).
TRANSLATOR_PREFIXES = (ipaddress.IPv6Network("64:ff9b::/96"),
                       ipaddress.IPv6Network("::ffff:0:0:0/96"))


def rate_limit_network(address: str, ipv6_prefix: int = 64) -> str:
    """The network a client address is counted as by every per-address limit.

    One home or one server gets one IPv4 address but a whole IPv6 network
    (usually a /64), so an IPv6 address is counted as its ``/ipv6_prefix``
    network: changing the low bits gives no new counter.  IPv4 addresses
    written as IPv6 (IPv4-mapped ``::ffff:a.b.c.d``, 6to4 ``2002:AABB:CCDD::/48``,
    Teredo's client, and a translator's well-known prefix,
    :data:`TRANSLATOR_PREFIXES`: NAT64 ``64:ff9b::a.b.c.d`` and SIIT
    ``::ffff:0:a.b.c.d``) are the IPv4 address itself: otherwise every IPv4
    client behind a translator would share one IPv6 network's counter.

    Args:
        address: the client address as the server received it (from uvicorn,
            or from a trusted proxy's ``X-Forwarded-For``); surrounding
            whitespace and brackets and an IPv6 zone (``%eth0``) are ignored.
        ipv6_prefix: the IPv6 network's prefix length, 32 to 128.

    Returns:
        ``"a.b.c.d"`` for IPv4, ``"x:x::/N"`` for IPv6, and
        :data:`UNPARSED_NETWORK` for anything that is not an IP address
        (a Unix socket, a test client): such clients share one counter, so
        a malformed value can never mint new counters.

    Raises:
        ValueError: ``ipv6_prefix`` outside :data:`IPV6_PREFIX_RANGE`.
    """
    low, high = IPV6_PREFIX_RANGE
    if not low <= ipv6_prefix <= high:
        raise ValueError(f"the IPv6 rate-limit prefix must be {low} to {high}")
    text = address.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]  # a zone names the server's interface, not the client
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return UNPARSED_NETWORK
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and any(ip in prefix for prefix in TRANSLATOR_PREFIXES):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
        if embedded is None:
            return str(ipaddress.IPv6Network((int(ip) >> (128 - ipv6_prefix)
                                              << (128 - ipv6_prefix), ipv6_prefix)))
        ip = embedded
    return str(ip)


# --------------------------------------------------------------------------- vault


class Vault:
    """Keys derived from the master key, and the operations that use them.

    Thread-safe.  Create one per process (the app does) so that the signing
    key cache works: each signing key is decrypted once and kept in memory.
    """

    def __init__(self, master_key: bytes, *, ipv6_prefix: int = 64) -> None:
        if len(master_key) != MASTER_KEY_BYTES:
            raise ValueError(f"the master key must be {MASTER_KEY_BYTES} bytes")
        rate_limit_network("::", ipv6_prefix)  # ValueError now rather than at the first request
        self._ipv6_prefix = ipv6_prefix
        self._master = master_key
        self._keys: dict[str, bytes] = {}
        self._signing_cache: dict[str, SecretKey] = {}
        self._lock = threading.Lock()
        for purpose in (
            "data",
            "signing-keys",
            "license-keys",
            "email-index",
            "addresses",
            "activation-secrets",
            "admin-keys",
            "reset-codes",
            "email-confirmations",
            "bindings",
            "binding-index",
            "unsubscribe",
            "staff-sessions",
            "csrf",
            "staff-totp",
            "portal-sessions",
            "portal-links",
            "portal-browsers",
            "portal-keys",
            "backups",
        ):
            self._keys[purpose] = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=b"software_dna/server/v1/" + purpose.encode("ascii"),
            ).derive(master_key)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        """Load the master key named by ``settings``; raises :class:`ConfigError`."""
        return cls(load_master_key(settings), ipv6_prefix=settings.rate_limit_ipv6_prefix)

    def fingerprint(self) -> str:
        """A short, non-secret id of this master key (to tell keys apart in backups)."""
        return hmac.new(self._master, b"software_dna/server/v1/key-id", "sha256").hexdigest()[:16]

    # -- keyed hashes

    def _mac(self, purpose: str, data: str) -> str:
        return hmac.new(self._keys[purpose], data.encode("utf-8"), hashlib.sha256).hexdigest()

    def license_key_hash(self, normalized_key: str) -> str:
        """Look-up hash of a normalised license key (64 hex chars)."""
        return self._mac("license-keys", normalized_key)

    def email_index(self, email: str) -> str:
        """Look-up hash of an email (trimmed, Unicode NFC, case-folded); 64 hex chars.

        NFC: an accented address typed composed or decomposed is one address
        (ASCII addresses hash as before).
        """
        return self._mac("email-index", unicodedata.normalize("NFC", email.strip()).lower())

    def address_key(self, address: str) -> str:
        """Pseudonymous key of a client address's network for rate limiting (32 hex chars).

        Every address of one network (:func:`rate_limit_network`: an IPv4
        address, an IPv6 ``/ipv6_prefix``) has the same key, so every
        per-address limit counts the network.
        """
        return self._mac("addresses", rate_limit_network(address, self._ipv6_prefix))[:32]

    def reset_code_hash(self, license_id: str, code: str) -> str:
        """Stored form of a password reset code of ``license_id`` (64 hex chars)."""
        return self._mac("reset-codes", f"{license_id}\0{code}")

    def confirmation_token_hash(self, token: str) -> str:
        """Stored form of an email confirmation link's token (64 hex chars)."""
        return self._mac("email-confirmations", token)

    def unsubscribe_mac(self, data: str) -> bytes:
        """HMAC-SHA256 of an unsubscribe link's contents (32 bytes, key of its own)."""
        return hmac.new(self._keys["unsubscribe"], data.encode("utf-8"), hashlib.sha256).digest()

    def backup_mac(self, manifest: bytes) -> str:
        """HMAC-SHA256 (64 hex chars) of a backup's manifest, as its bytes are in the file.

        The manifest holds the SHA-256 of the backup's database, so the MAC binds
        both to this master key: whoever lacks the key cannot forge or alter a backup.
        """
        return hmac.new(self._keys["backups"], manifest, hashlib.sha256).hexdigest()

    def staff_session_hash(self, token: str) -> str:
        """Stored form of a control panel session cookie's token (64 hex chars)."""
        return self._mac("staff-sessions", token)

    def csrf_token(self, session_token: str) -> str:
        """The CSRF token of a panel session (64 hex chars): a keyed hash of its cookie's token.

        Forms carry it; a cross-site page cannot read it, and it changes with
        every session.
        """
        return self._mac("csrf", session_token)

    def portal_hash(self, purpose: str, token: str) -> str:
        """Stored form of a portal secret (64 hex chars), one key per ``purpose``.

        ``purpose``: ``sessions`` (a session cookie's token), ``links`` (a
        sign-in link's token), ``browsers`` (the cookie binding a link to the
        browser that asked for it) or ``keys`` (a license key as typed, to
        count wrong sign-ins whether or not the key exists).
        """
        return self._mac("portal-" + purpose, token)

    def seal_totp_secret(self, staff_id: str, secret: bytes) -> bytes:
        """Encrypt a staff member's TOTP secret (AES-GCM, bound to the staff id)."""
        return self._encrypt("staff-totp", secret, staff_id)

    def open_totp_secret(self, staff_id: str, sealed: bytes) -> bytes:
        """Decrypt :meth:`seal_totp_secret`'s output; raises :class:`DecryptionError`."""
        return self._decrypt("staff-totp", sealed, staff_id)

    def admin_key_hash(self, admin_key: str) -> str:
        """Stored form of an admin API key (64 hex chars)."""
        return self._mac("admin-keys", admin_key)

    def activation_secret(self, activation_id: str, generation: int = 0) -> str:
        """The activation secret of ``activation_id`` at ``generation``, derived, never stored.

        Generation 0 (the secret of every activation made before rotation) is
        ``"sas_"`` + base64url(HMAC-SHA256(activation-secrets key, id)); generation
        ``n >= 1`` is ``"sas_<n>."`` + base64url(HMAC-SHA256(key, id + NUL + n)),
        so the secret says which generation it claims and the server re-derives
        that one to check it. The server can hand any generation out again (an
        idempotent retry) without keeping it.

        Raises:
            ValueError: ``generation`` is negative.
        """
        if generation < 0:
            raise ValueError("a secret generation is not negative")
        message = activation_id if generation == 0 else f"{activation_id}\0{generation}"
        mac = hmac.new(
            self._keys["activation-secrets"], message.encode("utf-8"), hashlib.sha256
        ).digest()
        return "sas_" + b64url(mac) if generation == 0 else f"sas_{generation}.{b64url(mac)}"

    @staticmethod
    def secret_generation(secret: str) -> int | None:
        """The generation a secret claims (see :meth:`activation_secret`); None if malformed.

        Only the claim: :meth:`activation_secret` of that generation must still
        equal the secret (compared in constant time) before it means anything.
        """
        if not secret.startswith("sas_"):
            return None
        head, dot, _ = secret[4:].partition(".")
        if not dot:
            return 0
        # At most 9 digits: a generation a client cannot inflate into a huge number.
        if not (head.isascii() and head.isdigit() and 1 <= len(head) <= 9 and head[0] != "0"):
            return None
        return int(head)

    @staticmethod
    def secret_hash(secret: str) -> str:
        """SHA-256 (hex) of a high-entropy secret, as stored in the database."""
        return hashlib.sha256(secret.encode("utf-8")).hexdigest()

    @staticmethod
    def same(a: str, b: str) -> bool:
        """Constant-time string equality."""
        return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))

    # -- AES-GCM

    def _encrypt(self, purpose: str, plaintext: bytes, aad: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        ct = AESGCM(self._keys[purpose]).encrypt(nonce, plaintext, aad.encode("utf-8"))
        return _FORMAT + nonce + ct

    def _decrypt(self, purpose: str, blob: bytes, aad: str) -> bytes:
        if len(blob) < 1 + _NONCE + 16 or blob[:1] != _FORMAT:
            raise DecryptionError("malformed ciphertext")
        try:
            return AESGCM(self._keys[purpose]).decrypt(
                blob[1 : 1 + _NONCE], blob[1 + _NONCE :], aad.encode("utf-8")
            )
        except InvalidTag:
            raise DecryptionError("ciphertext does not decrypt under this master key") from None

    def encrypt_field(self, plaintext: bytes, *, aad: str) -> bytes:
        """Encrypt a personal field; ``aad`` names the row and column (e.g. ``"eu:<id>:email"``)."""
        return self._encrypt("data", plaintext, aad)

    def decrypt_field(self, blob: bytes, *, aad: str) -> bytes:
        """Decrypt :meth:`encrypt_field` output; raises :class:`DecryptionError`."""
        return self._decrypt("data", blob, aad)

    def seal_components(self, plaintext: bytes, *, binding_id: str, product_id: str) -> bytes:
        """Encrypt a binding's component set (associated data: binding id + product id)."""
        return self._encrypt("bindings", plaintext, f"binding:{binding_id}\0{product_id}")

    def open_components(self, blob: bytes, *, binding_id: str, product_id: str) -> bytes:
        """Decrypt :meth:`seal_components` output; raises :class:`DecryptionError`
        (another master key, or a ciphertext moved to another row or product)."""
        return self._decrypt("bindings", blob, f"binding:{binding_id}\0{product_id}")

    def binding_term(self, product_id: str, name: str, component_hash: str) -> str:
        """Look-up term of one identifying component of a product's machine (64 hex chars)."""
        return self._mac("binding-index", f"{product_id}\0{name}\0{component_hash}")

    # -- signing keys

    def seal_signing_key(self, kid: str, key: SecretKey) -> bytes:
        """Encrypt a signing key for storage (associated data: its kid)."""
        return self._encrypt("signing-keys", key.to_bytes(), "signing-key:" + kid)

    def signing_key(self, kid: str, sealed: bytes) -> SecretKey:
        """The signing key ``kid``, decrypted on first use and cached for the process.

        Raises :class:`DecryptionError` when ``sealed`` does not decrypt.
        """
        with self._lock:
            cached = self._signing_cache.get(kid)
        if cached is not None:
            return cached
        key = SecretKey.from_bytes(self._decrypt("signing-keys", sealed, "signing-key:" + kid))
        with self._lock:
            self._signing_cache[kid] = key
        return key

    def cached_signing_key(self, kid: str) -> SecretKey | None:
        """The signing key ``kid`` if this process decrypted it already, else None."""
        with self._lock:
            return self._signing_cache.get(kid)

    def forget_signing_key(self, kid: str) -> None:
        """Drop a cached signing key (after it was retired)."""
        with self._lock:
            self._signing_cache.pop(kid, None)
