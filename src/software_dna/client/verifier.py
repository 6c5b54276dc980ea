"""What the client's trusted keys verify: license tokens, receipts, and this machine.

:class:`TokenVerifier` holds the product, its trusted public keys and the
machine's fingerprint source. It verifies tokens (remembering the last one,
so that a ``check()`` at every start does one signature check), compares a
license's fingerprint with this machine's, and checks a fresh token or a
signed refusal against the nonce of the request it answers.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable, Mapping

from software_dna import fingerprint as _fp
from software_dna.errors import InvalidToken, Message, ServerError, WrongMachine, WrongProduct
from software_dna.i18n import N_
from software_dna.license import License, verify_token
from software_dna.wire import errors as wire_errors
from software_dna.wire import identity
from software_dna.wire.claims import loads_strict, secret_digest, verify_receipt
from software_dna.wire.paseto import PublicKey, untrusted_footer

__all__ = ["TokenVerifier", "rotated_secret", "untrusted_kid_message"]

#: A well-formed PASERK ``k4.pid`` (BLAKE2b-264: 44 base64url characters).
_PID = re.compile(r"k4\.pid\.[A-Za-z0-9_-]{44}")


def untrusted_kid_message(token: object, keys: Mapping[str, PublicKey]) -> str | None:
    """The message for a token signed by a key this app does not trust, else None.

    Only the footer's ``kid`` is read (public, unauthenticated: it is named,
    never acted on). A token whose kid is trusted, or malformed, gets None:
    its failure stays opaque (signature failures are no oracle).
    """
    if not isinstance(token, str):
        return None
    try:
        footer = loads_strict(untrusted_footer(token))
    except ValueError:  # wire InvalidToken included
        return None
    kid = footer.get("kid") if isinstance(footer, dict) else None
    if not isinstance(kid, str) or _PID.fullmatch(kid) is None or kid in keys:
        return None
    return Message(N_("This license is signed with the key %(kid)s, which this app does not "
                      "trust. The vendor must ship an update of the app with its new public "
                      "key; until then, install that update or contact the vendor."), kid=kid)


class TokenVerifier:
    """Verifies tokens and receipts for one product on this machine.

    Args:
        product: the product id.
        keys: trusted keys by PASERK ``k4.pid``.
        fingerprint: returns this machine's fingerprint for a product id.
    """

    def __init__(self, product: str, keys: Mapping[str, PublicKey],
                 fingerprint: Callable[[str], _fp.Fingerprint]) -> None:
        self.product = product
        self._keys = dict(keys)
        self._fingerprint_source = fingerprint
        self._verified: tuple[str, License] | None = None
        self._machine_ok: tuple[License, _fp.Fingerprint] | None = None

    @property
    def trusted_key_ids(self) -> list[str]:
        """The ``k4.pid`` ids of the trusted keys, sorted (sent as ``trusted_keys``)."""
        return sorted(self._keys)

    def _verify_token(self, token: object) -> License:
        """:func:`verify_token` whose :class:`InvalidToken` names a kid this app does not trust."""
        try:
            return verify_token(token, self._keys, self.product)
        except InvalidToken as exc:
            message = untrusted_kid_message(token, self._keys)
            if message is None:
                raise
            raise InvalidToken(message) from exc

    def fingerprint(self) -> _fp.Fingerprint:
        """This machine's fingerprint for the product.

        Raises:
            FingerprintUnavailable: the machine cannot be identified.
        """
        return self._fingerprint_source(self.product)

    def verify(self, token: str) -> License:
        """The license of ``token`` (kid, signature, product checked; cached for the last token).

        Raises:
            InvalidToken, WrongProduct: see :func:`software_dna.license.verify_token`;
                a token signed by a key this app does not trust names its kid.
        """
        cached = self._verified
        if cached is not None and cached[0] == token:
            return cached[1]
        lic = self._verify_token(token)
        self._verified = (token, lic)
        return lic

    def remember(self, token: str, lic: License) -> None:
        """``lic`` is the verified license of ``token`` (skips the next signature check)."""
        self._verified = (token, lic)

    def forget(self) -> None:
        """Drop the cached token and machine match (the license left this machine)."""
        self._verified = None
        self._machine_ok = None

    def check_machine(self, lic: License) -> None:
        """Raise :class:`WrongMachine` unless ``lic`` is bound to this machine.

        The one comparison the server applies too: an algorithm-2 token's set
        against this machine's (:func:`software_dna.wire.identity.compare`); a
        0.1 token's algorithm-1 set against this machine's algorithm-1 form
        (:func:`~software_dna.wire.identity.compare_legacy`), until the next
        validation re-binds the activation to algorithm 2.

        Raises:
            WrongMachine: not this machine (or no algorithm-1 form to compare).
            FingerprintUnavailable: this machine cannot be identified.
        """
        current = self.fingerprint()
        known = self._machine_ok
        if known is not None and known[0] is lic and known[1] is current:
            return  # this very license already matched this very fingerprint
        if not _same_machine(lic, current):
            raise WrongMachine(
                N_("This license is bound to another computer. Activate it on this "
                   "computer with your license key (you may need to deactivate it on the "
                   "other one first).")
            )
        self._machine_ok = (lic, current)

    def request_fingerprint(self, stored_token: object = None) -> dict[str, object]:
        """The fingerprint fields of a request body: ``{"fingerprint": <to_wire()>}``.

        While ``stored_token`` (the activation's current token) is bound to an
        algorithm-1 set, ``"previous"`` carries this machine's algorithm-1 form
        too, so that the server can re-bind the activation to the new set
        (migration from 0.1); the next token is algorithm 2 and it stops.

        Args:
            stored_token: the stored token string, or None (activations,
                trials, air-gapped requests: no previous set to migrate).

        Raises:
            FingerprintUnavailable: the machine cannot be identified.
        """
        current = self.fingerprint()
        body: dict[str, object] = {"fingerprint": current.to_wire()}
        if isinstance(stored_token, str) and current.legacy is not None:
            try:
                algorithm = self.verify(stored_token).fingerprint_algorithm
            except (InvalidToken, WrongProduct):
                return body  # a token we cannot read tells nothing to migrate
            if algorithm == identity.LEGACY_ALGORITHM:
                body["previous"] = current.legacy.to_wire()
        return body

    def accept(self, token: object, nonce: str) -> License:
        """Verify a token the server just sent: signature, product, nonce, machine.

        Raises:
            ServerError: no token in the answer.
            InvalidToken: not answering ``nonce`` (replayed?), or not valid.
            WrongProduct, WrongMachine: not for this product or machine.
        """
        if not isinstance(token, str):
            raise ServerError(N_("The license server's answer holds no license token."))
        lic = self._verify_token(token)
        if not hmac.compare_digest(lic.nonce, nonce):
            raise InvalidToken(N_("The server's answer does not match this request (replayed?)."))
        self.check_machine(lic)
        return lic

    def receipt_ok(self, receipt: object, nonce: str, activation_id: str | None, *,
                   result: str) -> bool:
        """True when ``receipt`` is the server's signed answer to ``nonce`` (for the
        activation) saying ``result``: a refusal's code, or ``"deactivated"``.

        The signed ``result`` must match what the answer claims, so a real receipt
        for one refusal (a suspension) cannot be relabelled as another (a removal).
        """
        try:
            claims = verify_receipt(receipt, self._keys, self.product)
        except wire_errors.InvalidToken:
            return False
        return (hmac.compare_digest(str(claims.get("nonce")), nonce)
                and (activation_id is None or claims.get("activation_id") == activation_id)
                and claims.get("result") == result)

    def receipt_time(self, receipt: object) -> str | None:
        """The signed ``server_time`` of a valid receipt (RFC 3339), else None."""
        try:
            return str(verify_receipt(receipt, self._keys, self.product)["server_time"])
        except wire_errors.InvalidToken:
            return None


def _same_machine(lic: License, current: _fp.Fingerprint) -> bool:
    """Is ``current`` the machine ``lic`` is bound to (under the token's tolerance)?"""
    if lic.fingerprint_algorithm == identity.ALGORITHM:
        return identity.same_machine(lic.fingerprint, current.components, lic.tolerance)
    legacy = current.legacy
    if legacy is None:
        return False
    stored = {name: value for name, value in lic.fingerprint.items() if isinstance(value, str)}
    return identity.compare_legacy(stored, legacy.components, lic.tolerance)


def rotated_secret(lic: License, secret: object) -> str | None:
    """The activation secret an answer hands out, once its token vouches for it.

    Args:
        lic: the answer's verified token.
        secret: the answer's ``activation_secret`` (anything: it is not trusted yet).

    Returns:
        The new secret; None when neither the answer nor its token has one (a
        server from before secret rotation: the stored secret stays).

    Raises:
        InvalidToken: the secret is missing, extra or does not match the
        token's ``secret_digest`` (the answer was altered; the old secret is kept).
    """
    if lic.secret_digest is None and secret is None:
        return None
    if (lic.secret_digest is None or not isinstance(secret, str) or not secret
            or not hmac.compare_digest(secret_digest(secret), lic.secret_digest)):
        raise InvalidToken(N_("The server's answer does not vouch for the activation secret "
                              "it holds; the answer was not used."))
    return secret
