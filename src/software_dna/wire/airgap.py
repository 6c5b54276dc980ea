"""Air-gapped activation: the armored activation request, response and deactivation receipt.

A machine that never goes online activates with two text blocks that the end
user carries by hand (a file, a USB stick, an email):

1. :meth:`LicenseClient.create_activation_request` writes an *activation
   request*: the product, the license key, the fingerprint's component
   hashes, a fresh nonce and the creation time. It holds no secret: the
   activation password (when the license has one) is never in it, because
   end users mail these blocks around. The license key is in it, readable.
2. The vendor (``software-dna offline respond REQUEST_FILE``: staff need no
   password), or the end user on another, connected machine (``POST
   /v1/offline/activations``, with the password typed there, beside the
   block), turns it into an *activation response*: the signed license token
   (protection ``offline``, ending ``air_gapped_token_days`` after it was
   issued unless the product allows perpetual air-gapped tokens) and the
   activation's id and secret.
3. :meth:`LicenseClient.activate_offline` verifies the response with no
   network at all: signature, product, this machine, the echoed nonce of a
   request this machine made and has not used yet, and freshness (the
   request is at most :data:`REQUEST_LIFETIME`, 30 days, old).
4. :meth:`LicenseClient.deactivate_offline` removes the license and returns a
   signed *deactivation receipt*; the vendor (``software-dna offline
   deactivate RECEIPT_FILE``, or ``POST /v1/offline/deactivations``) frees the
   seat with it.

Text format (the same for the three blocks)::

    -----BEGIN SOFTWARE_DNA ACTIVATION REQUEST-----
    <base64url (RFC 4648 section 5, no padding) of compact UTF-8 JSON,
     wrapped at 64 characters>
    =<checksum: base64url of the first 6 bytes of SHA-256 of the JSON>
    -----END SOFTWARE_DNA ACTIVATION REQUEST-----

Parsing is strict: exactly one block of the expected kind (text around it,
such as an email body, is ignored, and so is whitespace at the ends of
lines), only base64url characters in canonical form, a matching checksum
(which catches a block damaged in transit, not a forger: the signatures do
that), a size limit per kind, and a JSON object with exactly the expected
fields (duplicate keys refused).

Versions: requests are version :data:`REQUEST_VERSION` (2), which has no
``password`` field; version 1 requests (written by earlier SDKs) are still read, and
the password one may carry is dropped by :func:`parse_request` (never used:
a password that travelled in a mailed block proves nothing). Responses and
receipts are version :data:`FORMAT_VERSION` (1).

Signatures reuse the license layer: the response carries an ordinary license
token (:func:`software_dna.wire.claims.verify_token_claims`); the deactivation receipt
is a receipt (:func:`software_dna.wire.claims.sign_receipt`) signed with a
per-activation Ed25519 key derived (HKDF-SHA256) from the activation secret,
so only this machine and the license server can make it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from software_dna.wire.claims import sign_receipt, verify_receipt
from software_dna.wire.errors import InvalidToken
from software_dna.wire.paseto import SecretKey
from software_dna.wire.strict_json import loads_object
from software_dna.wire.times import format_rfc3339, parse_rfc3339

__all__ = [
    "FORMAT_VERSION",
    "REQUEST_VERSION",
    "MAX_PENDING_REQUESTS",
    "REQUEST_LIFETIME",
    "ActivationRequestDoc",
    "ActivationResponseDoc",
    "ArmorError",
    "DeactivationReceiptDoc",
    "armor",
    "build_deactivation_receipt",
    "build_request",
    "build_response",
    "deactivation_key",
    "dearmor",
    "parse_deactivation_receipt",
    "parse_request",
    "parse_response",
    "verify_deactivation_receipt",
]

#: Version of the response and receipt documents (the ``v`` field).
FORMAT_VERSION = 1
#: Version of the activation request documents: 2 has no ``password`` field.
REQUEST_VERSION = 2
#: The request versions read (1: older SDKs; its password is dropped).
_REQUEST_VERSIONS = (1, 2)
#: How long a request stays usable, on the machine that made it: a response
#: to a request older than this is refused, and the server refuses to answer
#: such a request. 30 days leave time for the mail and the vendor.
REQUEST_LIFETIME = timedelta(days=30)
#: Most unanswered requests a machine remembers (the oldest is dropped).
MAX_PENDING_REQUESTS = 16
#: Characters per base64url line.
LINE_LENGTH = 64

REQUEST = "ACTIVATION REQUEST"
RESPONSE = "ACTIVATION RESPONSE"
RECEIPT = "DEACTIVATION RECEIPT"
_TYPES = {REQUEST: "activation_request", RESPONSE: "activation_response",
          RECEIPT: "deactivation_receipt"}
#: Largest JSON document per kind (bytes); the armored text may be a third
#: longer plus line breaks and surrounding text.
_MAX_JSON = {REQUEST: 12 * 1024, RESPONSE: 40 * 1024, RECEIPT: 4 * 1024}
_MAX_TEXT = {kind: size * 2 + 4096 for kind, size in _MAX_JSON.items()}
_PREFIX = "SOFTWARE_DNA "
_MARKER = re.compile(r"^-----(BEGIN|END) SOFTWARE_DNA ([A-Z ]{1,40})-----$")
_B64URL = re.compile(r"^[A-Za-z0-9_-]+$")
_CHECKSUM_BYTES = 6
_KDF_INFO = b"software_dna offline deactivation key v1"


class ArmorError(ValueError):
    """A block that is not a well-formed request, response or receipt.

    The message is written for the person who pasted the block.
    """


# --------------------------------------------------------------------------- armor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    """Canonical base64url without padding, else None."""
    if len(text) % 4 == 1 or not _B64URL.match(text):
        return None
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


def _checksum(payload: bytes) -> str:
    return _b64(hashlib.sha256(payload).digest()[:_CHECKSUM_BYTES])


_NOUNS = {REQUEST: "activation request", RESPONSE: "activation response",
          RECEIPT: "deactivation receipt"}


def _what(kind: str) -> str:
    """The kind with its article, e.g. ``"an activation request"``."""
    noun = _noun(kind)
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _noun(kind: str) -> str:
    """The kind's name, e.g. ``"activation request"``."""
    return _NOUNS.get(kind, "software_dna block")


def armor(kind: str, document: Mapping[str, Any]) -> str:
    """Armor a JSON object as a text block of ``kind``.

    Args:
        kind: :data:`REQUEST`, :data:`RESPONSE` or :data:`RECEIPT`.
        document: a JSON-ready mapping (its ``type`` and ``v`` are set by the callers).

    Returns:
        The block, header to footer, ending with a newline.

    Raises:
        ValueError: an unknown kind, a document that is not JSON or is too large.
    """
    if kind not in _TYPES:
        raise ValueError(f"unknown block kind {kind!r}")
    payload = json.dumps(dict(document), separators=(",", ":"), ensure_ascii=False,
                         allow_nan=False).encode("utf-8")
    if len(payload) > _MAX_JSON[kind]:
        raise ValueError(f"{_what(kind)} would be over {_MAX_JSON[kind]} bytes")
    body = _b64(payload)
    lines = [body[i:i + LINE_LENGTH] for i in range(0, len(body), LINE_LENGTH)]
    return "\n".join([f"-----BEGIN {_PREFIX}{kind}-----", *lines, "=" + _checksum(payload),
                      f"-----END {_PREFIX}{kind}-----"]) + "\n"


def dearmor(text: object, kind: str) -> dict[str, Any]:
    """Find the one block of ``kind`` in ``text`` and return its JSON object.

    Args:
        text: the pasted text (``str``); text before and after the block is ignored.
        kind: :data:`REQUEST`, :data:`RESPONSE` or :data:`RECEIPT`.

    Returns:
        The decoded document; its ``type`` and ``v`` fields are checked.

    Raises:
        ArmorError: not a ``str``, too long, no block or several, another kind
            of block, a damaged block (characters, checksum), not a JSON
            object, or another ``type`` / version.
    """
    what = _what(kind)
    if not isinstance(text, str):
        raise ArmorError(f"Expected {what} as text.")
    if len(text) > _MAX_TEXT[kind]:
        raise ArmorError(f"This is too long to be {what}.")
    lines = [line.strip() for line in text.splitlines()]
    begins = [i for i, line in enumerate(lines) if line == f"-----BEGIN {_PREFIX}{kind}-----"]
    if not begins:
        others = [m[2] for m in map(_MARKER.match, lines) if m is not None and m[1] == "BEGIN"]
        if others and others[0] in _TYPES:
            raise ArmorError(f"This is {_what(others[0])}, not {what}.")
        raise ArmorError(f"No {_noun(kind)} found: copy the whole block, from its -----BEGIN line "
                         "to its -----END line.")
    if len(begins) > 1:
        raise ArmorError(f"The text holds several blocks: give exactly one {what}.")
    start = begins[0]
    try:
        end = lines.index(f"-----END {_PREFIX}{kind}-----", start + 1)
    except ValueError:
        raise ArmorError(f"The {_NOUNS[kind]} is cut off: its -----END line is "
                         "missing.") from None
    body = lines[start + 1:end]
    damaged = ArmorError(f"This {_NOUNS[kind]} is damaged: copy it again, unchanged.")
    if len(body) < 2 or not body[-1].startswith("="):
        raise damaged
    data_lines, checksum = body[:-1], body[-1][1:]
    if any(not line or len(line) > 76 for line in data_lines):
        raise damaged
    payload = _unb64("".join(data_lines))
    if payload is None or len(payload) > _MAX_JSON[kind]:
        raise damaged
    if not hmac.compare_digest(checksum, _checksum(payload)):
        raise damaged
    try:
        document = loads_object(payload, max_size=_MAX_JSON[kind])
        # JSON escapes can smuggle lone surrogates ("\ud800"): not text, refused.
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        raise damaged from None
    if document.get("type") != _TYPES[kind]:
        raise damaged
    version = document.get("v")
    versions = _REQUEST_VERSIONS if kind == REQUEST else (FORMAT_VERSION,)
    if not isinstance(version, int) or isinstance(version, bool) or version not in versions:
        raise ArmorError(f"This {_NOUNS[kind]} has a format version this software does "
                         "not read: update the software.")
    return document


def _fields(document: Mapping[str, Any], required: Sequence[str],
            optional: Sequence[str] = ()) -> None:
    keys = set(document) - {"type", "v"}
    missing = [k for k in required if k not in keys]
    unknown = sorted(keys - set(required) - set(optional))
    if missing or unknown:
        problem = f"missing {missing[0]!r}" if missing else f"unknown field {unknown[0]!r}"
        raise ArmorError(f"The block is not valid ({problem}).")


def _str(document: Mapping[str, Any], name: str, max_len: int = 256) -> str:
    value = document.get(name)
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise ArmorError(f"The block is not valid ({name!r} must be a string).")
    return value


def _time(document: Mapping[str, Any], name: str) -> datetime:
    try:
        return parse_rfc3339(document.get(name))
    except ValueError:
        raise ArmorError(f"The block is not valid ({name!r} must be an RFC 3339 time).") from None


# --------------------------------------------------------------------------- documents


class ActivationRequestDoc(NamedTuple):
    """A parsed activation request (shapes checked; the server validates the values).

    ``fingerprint`` is the wire form ``{"id", "algorithm", "components"}``;
    ``created_at`` is aware UTC (the requesting machine's clock); ``version``
    the document's ``v`` (1 or 2); ``trusted_keys`` the ``k4.pid`` ids the app
    trusts (None from SDKs before they were sent). No password: see the module docstring.
    """

    product: str
    license_key: str
    fingerprint: Mapping[str, Any]
    nonce: str
    created_at: datetime
    consent: bool
    email: str | None
    registration: Mapping[str, Any] | None
    client: Mapping[str, Any]
    version: int = REQUEST_VERSION
    trusted_keys: tuple[str, ...] | None = None
    installation_id: str | None = None
    #: The computer's name the end user chose (personal data: needs ``consent``).
    label: str | None = None


class ActivationResponseDoc(NamedTuple):
    """A parsed activation response; ``token`` is verified by the client, not here."""

    product: str
    activation_id: str
    activation_secret: str
    token: str
    nonce: str
    server_time: datetime


class DeactivationReceiptDoc(NamedTuple):
    """A parsed deactivation receipt; ``receipt`` (a ``v4.public`` token) is not verified yet."""

    product: str
    activation_id: str
    receipt: str


def build_request(*, product: str, license_key: str, fingerprint: Mapping[str, Any],
                  nonce: str, created_at: datetime, consent: bool = False,
                  email: str | None = None,
                  registration: Mapping[str, str] | None = None,
                  client: Mapping[str, str] | None = None,
                  trusted_keys: Sequence[str] | None = None,
                  installation_id: str | None = None, label: str | None = None) -> str:
    """The armored activation request, version 2 (see the module docstring).

    Optional fields only when given; there is no password field. ``trusted_keys``:
    the ``k4.pid`` ids of the keys the app trusts (the server signs with one of
    them, or refuses before taking a seat). ``installation_id``: the OS account's
    installation id (tells user seats on one computer apart). ``label``: the
    computer's name the end user chose (personal data, like ``email``). ``created_at``
    must be aware (sent as RFC 3339 UTC). Raises ``ValueError`` for a naive
    time or a request over the size limit.
    """
    document: dict[str, Any] = {
        "type": _TYPES[REQUEST], "v": REQUEST_VERSION, "product": product,
        "license_key": license_key, "fingerprint": dict(fingerprint), "nonce": nonce,
        "created_at": format_rfc3339(created_at), "consent": bool(consent),
    }
    for name, value in (("email", email),
                        ("registration", None if registration is None else dict(registration)),
                        ("client", None if client is None else dict(client)),
                        ("trusted_keys", None if trusted_keys is None else list(trusted_keys)),
                        ("installation_id", installation_id), ("label", label)):
        if value is not None:
            document[name] = value
    return armor(REQUEST, document)


def parse_request(text: object) -> ActivationRequestDoc:
    """Parse an armored activation request (server side).

    A version 1 request may carry a ``password`` field (a string): it is
    dropped, never returned. A version 2 request with one is refused.

    Raises:
        ArmorError: see :func:`dearmor`, plus missing / unknown fields and wrong types.
    """
    doc = dearmor(text, REQUEST)
    version = int(doc["v"])
    optional = ("email", "registration", "client", "trusted_keys", "installation_id",
                "label") + (
        ("password",) if version == 1 else ())
    _fields(doc, ("product", "license_key", "fingerprint", "nonce", "created_at", "consent"),
            optional)
    if "password" in doc:
        _str(doc, "password")  # the shape is checked as before; the value is not kept
    fingerprint, consent = doc["fingerprint"], doc["consent"]
    registration, client = doc.get("registration"), doc.get("client", {})
    if not isinstance(fingerprint, dict) or not isinstance(consent, bool) or not (
        registration is None or isinstance(registration, dict)) or not isinstance(client, dict):
        raise ArmorError("The block is not valid (a field has the wrong type).")
    email, trusted = doc.get("email"), doc.get("trusted_keys")
    if trusted is not None and not (isinstance(trusted, list)
                                    and all(isinstance(kid, str) for kid in trusted)):
        raise ArmorError("The block is not valid (a field has the wrong type).")
    return ActivationRequestDoc(
        product=_str(doc, "product"), license_key=_str(doc, "license_key"),
        fingerprint=fingerprint, nonce=_str(doc, "nonce"), created_at=_time(doc, "created_at"),
        consent=consent,
        email=None if email is None else _str(doc, "email"),
        registration=registration, client=client, version=version,
        trusted_keys=None if trusted is None else tuple(trusted),
        installation_id=None if doc.get("installation_id") is None
        else _str(doc, "installation_id"),
        label=None if doc.get("label") is None else _str(doc, "label"),
    )


def build_response(*, product: str, activation_id: str, activation_secret: str, token: str,
                   nonce: str, server_time: datetime) -> str:
    """The armored activation response (server side)."""
    return armor(RESPONSE, {
        "type": _TYPES[RESPONSE], "v": FORMAT_VERSION, "product": product,
        "activation_id": activation_id, "activation_secret": activation_secret,
        "token": token, "nonce": nonce, "server_time": format_rfc3339(server_time),
    })


def parse_response(text: object) -> ActivationResponseDoc:
    """Parse an armored activation response (client side); the token is not verified here.

    Raises:
        ArmorError: see :func:`dearmor`, plus missing / unknown fields and wrong types.
    """
    doc = dearmor(text, RESPONSE)
    _fields(doc, ("product", "activation_id", "activation_secret", "token", "nonce",
                  "server_time"))
    return ActivationResponseDoc(
        product=_str(doc, "product"), activation_id=_str(doc, "activation_id"),
        activation_secret=_str(doc, "activation_secret"),
        token=_str(doc, "token", max_len=_MAX_JSON[RESPONSE]), nonce=_str(doc, "nonce"),
        server_time=_time(doc, "server_time"),
    )


def deactivation_key(activation_secret: str, *, product: str, activation_id: str) -> SecretKey:
    """The Ed25519 key that signs this activation's deactivation receipt.

    HKDF-SHA256 of the activation secret (the info string names the purpose,
    the product and the activation); the server derives the same key from
    its copy of the secret. Nothing else is ever signed with it.
    """
    info = b"\0".join([_KDF_INFO, product.encode("utf-8"), activation_id.encode("utf-8")])
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(
        activation_secret.encode("utf-8"))
    return SecretKey(Ed25519PrivateKey.from_private_bytes(seed))


def build_deactivation_receipt(*, product: str, activation_id: str, activation_secret: str,
                               nonce: str, now: datetime) -> str:
    """The armored deactivation receipt: a receipt (``result: "deactivated"``) signed
    with :func:`deactivation_key`; ``now`` (aware) is the machine's time."""
    key = deactivation_key(activation_secret, product=product, activation_id=activation_id)
    receipt = sign_receipt(key, product=product, activation_id=activation_id,
                           result="deactivated", nonce=nonce, server_time=now)
    return armor(RECEIPT, {"type": _TYPES[RECEIPT], "v": FORMAT_VERSION, "product": product,
                           "activation_id": activation_id, "receipt": receipt})


def parse_deactivation_receipt(text: object) -> DeactivationReceiptDoc:
    """Parse an armored deactivation receipt (server side); not verified yet.

    Raises:
        ArmorError: see :func:`dearmor`, plus missing / unknown fields and wrong types.
    """
    doc = dearmor(text, RECEIPT)
    _fields(doc, ("product", "activation_id", "receipt"))
    return DeactivationReceiptDoc(product=_str(doc, "product"),
                                  activation_id=_str(doc, "activation_id"),
                                  receipt=_str(doc, "receipt", max_len=_MAX_JSON[RECEIPT]))


def verify_deactivation_receipt(doc: DeactivationReceiptDoc,
                                activation_secret: str) -> dict[str, Any]:
    """Verify the receipt's signature against the activation's secret (server side).

    Returns:
        The receipt's claims (``activation_id``, ``result``, ``nonce``, ``server_time``: the
        machine's time, RFC 3339).

    Raises:
        InvalidToken: a bad signature, another activation, or not a deactivation.
        WrongProduct: signed for another product.
    """
    key = deactivation_key(activation_secret, product=doc.product,
                           activation_id=doc.activation_id).public_key
    claims = verify_receipt(doc.receipt, {key.pid: key}, doc.product)
    if claims.get("activation_id") != doc.activation_id or claims.get("result") != "deactivated":
        raise InvalidToken("This is not a deactivation receipt of that activation.")
    return claims
