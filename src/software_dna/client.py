"""`LicenseClient`: what a vendor's app calls — activate, check, refresh, ...

The client is offline-first. :meth:`LicenseClient.check` verifies the stored
token with no network: kid, signature, product, machine, time and the clock
high-water mark. Only when the token's ``refresh_by`` time has passed does it
try the server, with a short deadline; if the server cannot be reached the
license stays valid until the offline grace period ends (``exp``).

Everything the SDK raises is a :class:`~software_dna.errors.LicenseError`.
"""

from __future__ import annotations

import contextlib
import hmac
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _protocol, _seats, _terms
from . import fingerprint as _fp
from ._rollback import RollbackGuard, refusal_for
from .errors import (
    ClockTampered,
    InvalidToken,
    LicenseError,
    LicenseExpired,
    NetworkError,
    NotActivated,
    ServerError,
    StoreCorrupted,
    WrongMachine,
    WrongProduct,
)
from .license import License, verify_token
from .store import Store, default_store_dir, store_path_for
from .wire import errors as wire_errors
from .wire.claims import Mode, Protection, verify_receipt
from .wire.paseto import InvalidKey, PublicKey
from .wire.times import CLOCK_SKEW, format_rfc3339, parse_rfc3339

if TYPE_CHECKING:
    from ._http import Transport
    from .checker import PeriodicCheck

__all__ = ["LicenseClient"]

#: Total seconds check() may spend on the server when a refresh is due.
CHECK_DEADLINE = 5.0
#: After a failed refresh, check() does not try the server again for this long.
RETRY_AFTER_FAILURE = timedelta(minutes=2)
#: The clock high-water mark is written to disk when it moved by at least this.
HIGH_WATER_STEP = timedelta(minutes=5)

Clock = Callable[[], datetime]

def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LicenseClient:
    """The license of one product on this machine.

    Args:
        product: the product id, as configured on the license server.
        public_keys: trusted PASERK ``k4.public`` strings (the vendor's
            signing keys, newest and older ones during a rotation). A token's
            footer ``kid`` picks one; a token signed by any other key is refused.
        server_url: the license server, e.g. ``"https://license.example.com"``.
            ``None`` for a purely offline client (tokens installed with
            :meth:`install_token`).
        app_name, app_author: name the store folder (platformdirs' user data
            dir); default: the product id.
        store_path: a folder (or ``.license`` file) for the store, overriding
            ``SOFTWARE_DNA_HOME`` and the default.
        clock: returns the current time as an aware datetime (tests inject it).
        timeout: seconds one online operation may take in total (retries included).
        connect_timeout: seconds to establish a connection.
        ca_bundle: a PEM CA bundle to pin for TLS (environment variables cannot
            override it).
        proxies: explicit proxies, e.g. ``{"https": "http://proxy:3128"}``;
            default: the environment's.
        fingerprint: returns this machine's :class:`~software_dna.fingerprint.Fingerprint`
            for a product; default :func:`software_dna.fingerprint.collect`.
            Meant for special environments and tests.

    Raises:
        ValueError: no trusted key, a malformed key, or a malformed URL.
    """

    def __init__(
        self,
        *,
        product: str,
        public_keys: Iterable[str],
        server_url: str | None = None,
        app_name: str | None = None,
        app_author: str | None = None,
        store_path: str | Path | None = None,
        clock: Clock | None = None,
        timeout: float = 15.0,
        connect_timeout: float = 5.0,
        ca_bundle: str | None = None,
        proxies: Mapping[str, str] | None = None,
        fingerprint: Callable[[str], _fp.Fingerprint] | None = None,
    ) -> None:
        if not product or not isinstance(product, str):
            raise ValueError("product must be a non-empty string")
        keys: dict[str, PublicKey] = {}
        for text in [public_keys] if isinstance(public_keys, str) else public_keys:
            try:
                key = PublicKey.from_paserk(text)
            except InvalidKey as exc:
                raise ValueError(f"not a PASERK k4.public key: {text!r}") from exc
            keys[key.pid] = key
        if not keys:
            raise ValueError("public_keys must name at least one k4.public key")
        self.product = product
        self._keys = keys
        self._clock: Clock = clock or _utcnow
        self._fingerprint_source = fingerprint or _fp.collect
        self.server_url = server_url
        self._timeout = timeout
        self._transport_args: dict[str, Any] = {
            "connect_timeout": connect_timeout, "ca_bundle": ca_bundle, "proxies": proxies,
        }
        self._transport: Transport | None = None
        if server_url is not None:
            self._make_transport()  # validates the URL now, imports nothing heavy
        if store_path is not None:
            path = Path(store_path)
            path = path if path.suffix == ".license" else store_path_for(product, path)
        else:
            path = store_path_for(product, default_store_dir(app_name or product, app_author))
        self._store_path = path
        self._store: Store | None = None
        # The rollback witness: a second file elsewhere (see _rollback.py).
        self._guard = RollbackGuard(product, lambda: _fp.machine_secret(product))
        self._witness_ok = False
        self._lock = threading.RLock()
        # In-process caches: the last verified token and the store file's identity.
        self._verified: tuple[str, License] | None = None
        self._loaded: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._high_water: datetime | None = None
        self._parsed_high_water: dict[str, datetime] = {}
        self._machine_ok: tuple[License, _fp.Fingerprint] | None = None
        self._last_failed_refresh: float | None = None
        self._lease = _seats.LeaseKeeper(self)  # floating lease wanted? (_seats.py)
        self._with_days: tuple[License, int, License] | None = None

    # ------------------------------------------------------------ plumbing

    def _make_transport(self) -> Transport:
        if self._transport is None:
            if self.server_url is None:
                raise NetworkError("No license server is configured for this app.")
            from ._http import Transport

            self._transport = Transport(
                self.server_url, deadline=self._timeout, **self._transport_args
            )
        return self._transport

    def _now(self) -> datetime:
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("clock() must return a timezone-aware datetime")
        return now.astimezone(timezone.utc)

    def _fingerprint(self) -> _fp.Fingerprint:
        return self._fingerprint_source(self.product)

    def _get_store(self) -> Store:
        if self._store is None:
            self._store = Store(
                self._store_path, product=self.product,
                key_material=_fp.machine_secret(self.product),
            )
        return self._store

    @property
    def store_path(self) -> Path:
        """The store file of this product on this machine."""
        return self._store_path

    def _read(self) -> dict[str, Any]:
        """The store's document, re-read only when the file changed."""
        try:
            st = self._store_path.stat()
        except FileNotFoundError:
            self._loaded = None
            return {}
        except OSError:
            st = None
        ident = (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None
        if ident is not None and self._loaded is not None and self._loaded[0] == ident:
            return self._loaded[1]
        data = self._get_store().read() or {}
        if ident is not None:
            self._loaded = (ident, data)
        return data

    def _update(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Apply ``change`` to the stored document atomically; return the new document.

        Every write gets a new generation, then the rollback witness is updated.
        """
        with self._get_store().transaction() as data:
            change(data)
            self._guard.stamp(data, witnessed=self._witness_ok)
            result = dict(data)
        self._loaded = None
        lic = self._stored_license(result)
        self._witness_ok = self._guard.record(
            result, lic.license_id if lic else None, lic.issued_at if lic else None)
        if self._witness_ok and result.get("witnessed") is not True:
            # Once per store: from now on a deleted witness is noticed too.
            with self._get_store().transaction() as data:
                data["witnessed"] = True
            result["witnessed"] = True
            self._loaded = None
        return result

    def _stored_license(self, data: Mapping[str, Any]) -> License | None:
        """The stored token's license when it verifies (signature only), else None."""
        token = data.get("token")
        if not isinstance(token, str):
            return None
        try:
            return self._verify(token)
        except LicenseError:
            return None

    # ------------------------------------------------------------ offline checks

    def _verify(self, token: str) -> License:
        cached = self._verified
        if cached is not None and cached[0] == token:
            return cached[1]
        lic = verify_token(token, self._keys, self.product)
        self._verified = (token, lic)
        return lic

    def _check_machine(self, lic: License) -> None:
        current = self._fingerprint()
        known = self._machine_ok
        if known is not None and known[0] is lic and known[1] is current:
            return  # this very license already matched this very fingerprint
        if not _fp.match(lic.fingerprint, current.components, lic.tolerance):
            raise WrongMachine(
                "This license is bound to another computer. Activate it on this "
                "computer with your license key (you may need to deactivate it on the "
                "other one first)."
            )
        self._machine_ok = (lic, current)

    def _check_clock(self, now: datetime, data: Mapping[str, Any]) -> None:
        high = self._high_water
        stored = data.get("clock_high_water")
        if isinstance(stored, str):
            stored_time = self._parsed_high_water.get(stored)
            if stored_time is None:
                try:
                    stored_time = parse_rfc3339(stored)
                except ValueError:
                    stored_time = None
                else:
                    self._parsed_high_water = {stored: stored_time}
            if stored_time is not None and (high is None or stored_time > high):
                high = stored_time
        floor = self._guard.floor()  # survives the store being deleted or rolled back
        if floor is not None and (high is None or floor > high):
            high = floor
        if high is not None and now < high - CLOCK_SKEW:
            raise ClockTampered(
                "The system clock is earlier than a time this app has already seen "
                f"({format_rfc3339(high)}). Set the clock to the correct time and try again."
            )
        if high is None or now > high:
            self._high_water = now
        if high is None or now - high >= HIGH_WATER_STEP:
            # Best effort: the in-memory mark still protects this process.
            with contextlib.suppress(LicenseError):
                self._update(lambda d: d.__setitem__("clock_high_water", format_rfc3339(now)))

    def _raise_stored_status(self, data: Mapping[str, Any]) -> None:
        status = data.get("status")
        if not isinstance(status, dict):
            return
        code = status.get("code")
        message = status.get("message") or "The license cannot be used."
        error = _protocol.REFUSALS.get(code) if isinstance(code, str) else None
        if error is not None:
            raise error(str(message))

    def _offline_license(self, now: datetime, data: Mapping[str, Any]) -> License:
        token = data.get("token")
        if not isinstance(token, str):
            raise NotActivated()
        self._check_clock(now, data)
        lic = self._verify(token)
        self._check_machine(lic)
        if now + CLOCK_SKEW < lic.not_before:
            raise ClockTampered(
                "The system clock is behind the license server's time. "
                "Set the clock to the correct time and try again."
            )
        if lic.license_expires_at is not None and now >= lic.license_expires_at:
            raise LicenseExpired(_terms.expired_message(lic, lic.license_expires_at))
        return lic

    # ------------------------------------------------------------ public API

    def check(self) -> License:
        """Check the license at start-up; offline unless a refresh is due.

        Verifies the stored token (kid, signature, product, this machine, time,
        the clock high-water mark). When ``refresh_by`` has passed it tries the
        server within a short deadline (:data:`CHECK_DEADLINE`); if the server
        cannot be reached the license stays valid until the offline grace
        period ends, and :attr:`License.offline_grace_ends_at` says when.

        Returns:
            The valid :class:`License`.

        Raises:
            NotActivated: nothing stored (call :meth:`activate`).
            InvalidToken, WrongProduct, WrongMachine, ClockTampered: the stored
                license cannot be trusted here.
            LicenseExpired: the license ended, or the grace period ended
                without reaching the server.
            LicenseRevoked, LicenseSuspended: seen online earlier, or now.
            ActivationMoved: roll-over gave this seat to another computer
                (a :class:`NotActivated`; seen online earlier, or now).
            LeaseExpired: a floating license holds no live lease (call
                :meth:`checkout`); NoSeatsLeft: its lease lapsed and every
                floating seat is taken (``retry_after``).
            StoreError, StoreCorrupted: the store cannot be read (a corrupt
                file is moved aside; the next run starts clean).
        """
        with self._lock:
            return self._check(force_online=False)

    def refresh(self) -> License:
        """Validate online now and store the fresh token.

        Raises:
            ServerUnreachable: the server could not be reached in time (the
                stored license is unchanged and :meth:`check` still works).
            LicenseRevoked, LicenseSuspended, LicenseExpired, WrongMachine,
            NotActivated: the server's refusal (stored, so going offline does
                not undo it).
            ServerError: an unusable answer.
        """
        with self._lock:
            return self._check(force_online=True)

    def _check(self, *, force_online: bool) -> License:
        now = self._now()
        data = self._read()
        status = data.get("status")
        # A store older than its witness (rolled back) needs the server's word.
        stored = self._stored_license(data)
        suspect = self._guard.suspicion(
            data, (stored.license_id, stored.activation_id, stored.issued_at) if stored else None,
            _protocol.REFUSALS)
        due = force_online or status is not None or suspect is not None
        lic: License | None = None
        if status is None and suspect is None:
            try:
                lic = self._offline_license(now, data)
            except ClockTampered as exc:
                if self.server_url is None:
                    raise
                # The clock may have run ahead earlier (the mark is too high) or be
                # set back now: the server's signed time tells which.
                suspect = exc
            else:
                due = due or (
                    lic.protection is not Protection.OFFLINE
                    and lic.refresh_by is not None and now >= lic.refresh_by
                )
            due = due or suspect is not None
        elif not isinstance(data.get("token"), str):
            self._raise_stored_status(data)
            raise NotActivated()
        # Without the server the app would stop: then try it whatever the back-off says.
        must = force_online or suspect is not None or (
            lic is not None and lic.expires_at is not None and now >= lic.expires_at
        )
        if lic is not None and self._lease.wanted and _seats.lease_error(lic, now) is not None:
            due = must = True  # the floating lease ended: take it again (_seats.py)
        if due and self.server_url is not None and (must or self._may_try_server()):
            try:
                deadline = None if force_online else min(CHECK_DEADLINE, self._timeout)
                return self._validate_online(data, deadline=deadline)
            except (NetworkError, ServerError, InvalidToken, WrongProduct) as exc:
                # An unusable answer (garbage, a forged or foreign token) is a failed
                # refresh like a dead network: the stored license still counts.
                self._last_failed_refresh = time.monotonic()
                if suspect is not None:
                    raise suspect from exc
                if force_online:
                    raise
        if suspect is not None:
            raise suspect
        if lic is None:
            self._raise_stored_status(data)
            lic = self._offline_license(now, data)
            until = _terms.cancel_window_end(data.get("status"), now)
            if until is not None:  # a cancelled subscription in its warning period
                return _terms.cancelled_license(self._apply_grace(now, lic), until)
        return self._apply_grace(now, lic)

    def _may_try_server(self) -> bool:
        failed = self._last_failed_refresh
        return failed is None or time.monotonic() - failed >= RETRY_AFTER_FAILURE.total_seconds()

    def _apply_grace(self, now: datetime, lic: License) -> License:
        lease_ended = _seats.lease_error(lic, now)  # a floating license needs its lease
        if lease_ended is not None:
            raise lease_ended
        if lic.license_expires_at is not None and now >= lic.license_expires_at:
            raise LicenseExpired(_terms.expired_message(lic, lic.license_expires_at))
        if lic.expires_at is not None and now >= lic.expires_at:
            raise LicenseExpired(
                "The license server must be reached to keep using this license: the offline "
                f"grace period ended on {format_rfc3339(lic.expires_at)}. Connect to the "
                "internet and try again."
            )
        if lic.refresh_by is not None and now >= lic.refresh_by:
            lic = lic.with_grace(lic.expires_at)
        days = lic.whole_days_left(now)
        if days is None:
            return lic
        cached = self._with_days
        if cached is not None and cached[0] is lic and cached[1] == days:
            return cached[2]  # the same license on the same day: no new object
        dated = lic._replace(days_left=days)
        self._with_days = (lic, days, dated)
        return dated

    # ------------------------------------------------------------ online

    def _accept_token(self, token: object, nonce: str) -> License:
        """Verify a token the server just sent: signature, product, nonce, machine."""
        if not isinstance(token, str):
            raise ServerError("The license server's answer holds no license token.")
        lic = verify_token(token, self._keys, self.product)
        if not hmac.compare_digest(lic.nonce, nonce):
            raise InvalidToken("The server's answer does not match this request (replayed?).")
        self._check_machine(lic)
        return lic

    def _receipt_ok(self, receipt: object, nonce: str, activation_id: str | None) -> bool:
        try:
            claims = verify_receipt(receipt, self._keys, self.product)
        except wire_errors.InvalidToken:
            return False
        return hmac.compare_digest(str(claims.get("nonce")), nonce) and (
            activation_id is None or claims.get("activation_id") == activation_id
        )

    def _validate_online(self, data: Mapping[str, Any], *, deadline: float | None,
                         route: str | None = None) -> License:
        activation_id, secret = _protocol.credentials(data)
        nonce = _protocol.nonce()
        route = route or self._lease.route()  # validate, or checkout/checkin (_seats.py)
        answer = self._make_transport().request(
            "POST", f"/v1/activations/{activation_id}/{route}",
            json_body={"fingerprint": self._fingerprint().to_wire(), "nonce": nonce},
            bearer=secret, retry=True, deadline=deadline,
        )
        if answer.status == 200:
            lic = self._accept_token(answer.body.get("token"), nonce)
            self._store_token(answer.body["token"], lic)
            self._last_failed_refresh = None
            return self._apply_grace(self._now(), lic)
        code, message = _protocol.error_of(answer)
        if code == _terms.CANCELLED and self._receipt_ok(
            _protocol.error_field(answer, "receipt"), nonce, activation_id
        ):
            return self._cancelled(data, message)
        refusal = _protocol.REFUSALS.get(code)
        if refusal is not None and self._receipt_ok(
            _protocol.error_field(answer, "receipt"), nonce, activation_id
        ):
            self._store_refusal(code, message, receipt=_protocol.error_field(answer, "receipt"))
            raise refusal(message)
        if refusal is not None:
            # Our server signs every refusal; an unsigned one is not its word.
            raise ServerError(f"The license server's refusal was not signed: {message}")
        seat_refusal = _seats.seat_error(self, answer, code, message)
        if seat_refusal is not None:  # no_seats_left (floating lease) and the like
            raise seat_refusal
        if code == "wrong_machine":
            raise WrongMachine(message)
        if code == "unauthorized":
            raise NotActivated("The license server does not recognise this activation. "
                               "Activate again with your license key.")
        raise ServerError(f"The license server refused the check: {message}")

    def _cancelled(self, data: Mapping[str, Any], message: str) -> License:
        """The server said the subscription was cancelled: run out the warning period."""
        now = self._now()
        lic = self._offline_license(now, data)
        status = _terms.cancel_status(lic, message, now)
        self._update(lambda d: d.__setitem__("status", status))
        self._last_failed_refresh = time.monotonic()  # ask again now and then, not every check
        until = _terms.cancel_window_end(status, now)  # LicenseSuspended when none is left
        assert until is not None
        return _terms.cancelled_license(self._apply_grace(now, lic), until)

    def _trust_server_time(self, lic: License) -> None:
        """A fresh token's ``iat`` is the server's signed time: reset the clock mark to it."""
        self._high_water = lic.issued_at
        self._parsed_high_water = {}
        self._guard.trust_server_time(lic.issued_at)

    def _store_token(self, token: str, lic: License) -> None:
        self._trust_server_time(lic)

        def change(data: dict[str, Any]) -> None:
            before = self._stored_license(data)
            data["token"] = token
            data["clock_high_water"] = format_rfc3339(lic.issued_at)
            data.pop("status", None)
            if lic.mode is Mode.LIMITED:
                for personal in ("email", "registration"):
                    data.pop(personal, None)
                if before is not None and before.mode is not Mode.LIMITED:
                    # Erased: the server dropped the settings too, and an unsent
                    # edit must not bring erased data back.
                    for cached in ("settings", "settings_dirty"):
                        data.pop(cached, None)
        self._update(change)

    def _store_refusal(self, code: str, message: str, *, receipt: object = None) -> None:
        seen = format_rfc3339(self._now())
        status: dict[str, Any] = {"code": code, "message": message, "seen_at": seen}
        with contextlib.suppress(wire_errors.InvalidToken):  # the receipt's signed time
            status["server_time"] = verify_receipt(receipt, self._keys, self.product)[
                "server_time"]

        def change(data: dict[str, Any]) -> None:
            owner = self._stored_license(data)
            if owner is not None:  # whose refusal it is, for the rollback witness
                status.update(license_id=owner.license_id, activation_id=owner.activation_id)
            data["status"] = dict(status)
            if code in ("activation_removed", "activation_moved"):
                for name in ("token", "activation_id", "activation_secret"):
                    data.pop(name, None)
        self._update(change)

    def activate(
        self,
        license_key: str,
        *,
        password: str | None = None,
        email: str | None = None,
        registration: Mapping[str, str] | None = None,
        consent: bool = False,
    ) -> License:
        """Activate this machine with a license key (first run).

        Only the fingerprint's component hashes leave the machine. Personal
        data (``email``, ``registration``) is sent only when given, and only
        with ``consent=True``.

        Args:
            license_key: the key, e.g. ``"ABCD-EFGH-JKLM-NPQR"``.
            password: the activation password, if the license has one.
            email: the end user's email address (optional).
            registration: registration details such as ``{"name": ..., "company": ...}``
                (optional; string values).
            consent: the end user agreed to send the personal data above.

        Returns:
            The activated :class:`License`.

        Raises:
            ConsentRequired: personal data given without ``consent=True``.
            UnknownLicenseKey, WrongPassword, NoSeatsLeft, ActivationLocked:
                the server's refusal, with a message for the end user.
            LicenseRevoked, LicenseSuspended, LicenseExpired: the license
                cannot be activated.
            ServerUnreachable: no answer in time (retrying later reuses the
                same idempotency key, so no second seat is taken).
            InvalidToken, WrongMachine, ServerError: an unusable answer.
            FingerprintUnavailable: this machine cannot be identified.
        """
        return _protocol.activate(self, license_key, password=password, email=email,
                                  registration=registration, consent=consent)

    def install_token(self, token: str) -> License:
        """Verify a license token obtained out of band and store it.

        Used by offline activation and tests. The token must be signed by a
        trusted key, for this product and this machine.

        Raises:
            InvalidToken, WrongProduct, WrongMachine: the token is not for here.
            LicenseExpired: it has already expired.
            StoreError: it could not be stored.
        """
        with self._lock:
            now = self._now()
            lic = self._verify(token)
            self._check_machine(lic)
            self._check_not_rolled_back(now, lic)
            if lic.license_expires_at is not None and now >= lic.license_expires_at:
                raise LicenseExpired("This license has already expired.")
            if lic.expires_at is not None and now >= lic.expires_at:
                raise LicenseExpired("This license token has already expired.")

            def save(data: dict[str, Any]) -> None:
                data["token"] = token
                data.pop("status", None)
                data["clock_high_water"] = format_rfc3339(
                    max(now, self._high_water or now)
                )
            self._update(save)
            return self._apply_grace(now, lic)  # days_left, and the grace if already due

    def _check_not_rolled_back(self, now: datetime, lic: License) -> None:
        """Refuse an out-of-band token that would undo what this machine already saw.

        The clock must not be behind the stored or witnessed high-water mark,
        the token must not be older than one stored before, and a refusal
        seen online (revoked, suspended, removed) still applies to tokens
        issued before it.
        """
        try:
            data = self._read()
        except StoreCorrupted:
            data = {}
        self._check_clock(now, data)
        if self._guard.older_than_seen(lic.license_id, lic.issued_at):
            raise InvalidToken("This license is older than one already installed on this "
                               "computer. Use the newest license file you received.")
        refused = refusal_for(data.get("status"), lic.issued_at, _protocol.REFUSALS,
                              activation_id=lic.activation_id)
        refused = refused or self._guard.status_error(
            lic.license_id, lic.issued_at, _protocol.REFUSALS, activation_id=lic.activation_id)
        if refused is not None:
            raise refused

    # ------------------------------------------------------------ air-gapped

    def create_activation_request(
        self,
        license_key: str,
        *,
        password: str | None = None,
        email: str | None = None,
        registration: Mapping[str, str] | None = None,
        consent: bool = False,
    ) -> str:
        """An activation request for a machine that cannot reach the server (docs/offline.md).

        Arguments as for :meth:`activate`. The returned text block (about a
        dozen lines) holds the product, the license key and password, the
        fingerprint's component hashes, a fresh nonce and the creation time
        (UTC); personal data only when given, and only with ``consent=True``.
        The nonce is remembered in the store for 30 days
        (:data:`software_dna.wire.airgap.REQUEST_LIFETIME`; at most 16 pending).

        Raises:
            UnknownLicenseKey: an empty key.
            ConsentRequired: personal data without ``consent=True``.
            ActivationError: the request would be over its size limit (12 KiB of
                JSON: the registration details are too long).
            FingerprintUnavailable, StoreError.
        """
        from . import _airgap as offline

        license_key = _protocol.check_activation_input(license_key, email, registration, consent)
        with self._lock:
            return offline.create_activation_request(
                self, license_key, password=password, email=email,
                registration=registration, consent=consent)

    def activate_offline(self, response_text: str) -> License:
        """Verify an activation response (no network needed) and store its license.

        Checks the signature (trusted keys), the product, this machine, that
        it answers a request this machine made and has not used yet, and that
        the request is at most 30 days old.

        Args:
            response_text: the response block (text around it is ignored).

        Returns:
            The activated :class:`License` (protection ``offline``).

        Raises:
            InvalidToken: damaged, forged, or answering an unknown, used or stale request.
            WrongProduct, WrongMachine: made for another product or computer.
            ClockTampered: this computer's clock is behind the response's time.
            LicenseExpired: the license has already ended.
            StoreError: it could not be stored.
        """
        from . import _airgap as offline

        with self._lock:
            return offline.activate_offline(self, response_text)

    def deactivate_offline(self) -> str:
        """Remove the license from this machine and return a signed deactivation receipt.

        The end user sends the receipt to the vendor (or posts it from a
        connected machine); the server then frees the seat. Calling it again
        returns the same receipt until the next activation.

        Raises:
            NotActivated: nothing to deactivate.
            StoreError: the store could not be changed (the license stays).
        """
        from . import _airgap as offline

        with self._lock:
            receipt = offline.deactivate_offline(self)
            self._verified = None
            self._machine_ok = None
            return receipt

    def deactivate(self) -> None:
        """Free this machine's seat on the server and clear the local store.

        Raises:
            NotActivated: nothing to deactivate.
            ServerUnreachable: the server could not be reached (nothing changed).
            ServerError: the server refused.
        """
        with self._lock:
            data = self._read()
            activation_id, secret = _protocol.credentials(
                data, "This machine has no activation to deactivate."
            )
            nonce = _protocol.nonce()
            answer = self._make_transport().request(
                "POST", f"/v1/activations/{activation_id}/deactivate",
                json_body={"nonce": nonce}, bearer=secret, retry=True,
            )
            if answer.status == 200:
                if not self._receipt_ok(answer.body.get("receipt"), nonce, activation_id):
                    raise InvalidToken("The server's deactivation receipt is not valid.")
            else:
                code, message = _protocol.error_of(answer)
                if code not in ("activation_removed", "activation_moved", "unauthorized"):
                    raise ServerError(f"The license server refused to deactivate: {message}")
            self._lease.drop()
            self._get_store().clear()
            self._loaded = None
            self._verified = None

    # ------------------------------------------------------------ seats (_seats.py)

    def checkout(self) -> License:
        """Check out a floating seat for this machine (online), or renew the one it holds.

        A floating license works only while this machine holds a lease; the
        lease lasts the product's lease time (see :attr:`License.lease_expires_at`)
        and the periodic check renews it while the app runs. Call
        :meth:`checkin` (or :meth:`close`) when the app no longer needs the
        seat; process exit returns it too, where possible. On a license that
        is not floating this is the same as :meth:`refresh`.

        Returns:
            The :class:`License`, with ``lease_expires_at`` set for a floating one.

        Raises:
            NoSeatsLeft: every floating seat is leased; ``retry_after`` says when
                the earliest lease ends (UTC).
            NotActivated, ActivationMoved: no activation on this machine (any more).
            LicenseRevoked, LicenseSuspended, LicenseExpired, WrongMachine: refused.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        return _seats.checkout(self)

    def checkin(self) -> None:
        """Return this machine's floating seat (online); the license stops working here.

        Afterwards :meth:`check` raises :class:`LeaseExpired` until the next
        :meth:`checkout`. Nothing happens on a license that is not floating.

        Raises:
            NotActivated: no activation on this machine.
            ServerUnreachable, ServerError, NetworkError: the seat could not be
                returned now (it frees itself when the lease lapses).
        """
        _seats.checkin(self)

    def request_password_reset(self, license_key: str) -> datetime:
        """Ask the server to email a password reset code for this license key.

        The code goes to the email address(es) the end user gave when
        activating (with consent); it works once, for a short time. Then call
        :meth:`reset_password`. No activation on this machine is needed.

        Args:
            license_key: the license key, e.g. ``"ABCD-EFGH-JKLM-NPQR"``.

        Returns:
            When the code stops working (timezone-aware UTC).

        Raises:
            PasswordResetFailed: no email address is on file (the vendor must
                reset the password), the license has no password, or the
                server cannot send email.
            UnknownLicenseKey: no such key for this product.
            ActivationLocked: too many requests; ``retry_after`` says when.
            LicenseRevoked: the license was revoked.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        return _seats.request_password_reset(self, license_key)

    def reset_password(self, license_key: str, code: str, new_password: str) -> None:
        """Set a new activation password with the code from the reset email.

        Args:
            license_key: the license key.
            code: the reset code, e.g. ``"K7QF-3MZP-WX2R"`` (case, spaces and
                dashes do not matter).
            new_password: the new activation password (1-256 characters).

        Raises:
            PasswordResetFailed: the code is wrong, already used or expired
                (ask for a new one), or the new password is empty or too long.
            UnknownLicenseKey: no such key for this product.
            ActivationLocked: too many attempts; ``retry_after`` says when.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        _seats.reset_password(self, license_key, code, new_password)

    # ------------------------------------------------------------ trials, renewal (_terms.py)

    def start_trial(self) -> License:
        """Start this machine's trial of the product (online), once per machine.

        The server gives a time-limited license of kind ``trial`` for this
        machine only. A machine that already had its trial -- also after the
        store was deleted or the app reinstalled -- gets its running trial
        back, or :class:`TrialUnavailable` once it ended. While a trial is
        stored and valid, this returns it without contacting the server.
        Activating a license key later replaces the trial and keeps the end
        user's settings (docs/trials.md).

        Returns:
            The trial :class:`License` (``kind`` ``Kind.TRIAL``, ``days_left``).

        Raises:
            TrialUnavailable: the product offers no trial, this machine had its
                trial, or this machine already holds a license.
            ActivationLocked: too many attempts from this address.
            ServerUnreachable, ServerError, NetworkError: no usable answer (no
                server configured: NetworkError).
            FingerprintUnavailable: this machine cannot be identified.
        """
        return _terms.start_trial(self)

    def renew(self, code: str) -> License:
        """Enter a renewal code: it adds days to this machine's license (online).

        Works on an expired license too. The fresh token with the new
        ``license_expires_at`` is stored at once; the app's other machines get
        it at their next refresh. Retrying after a lost answer adds nothing twice.

        Args:
            code: the renewal code, e.g. ``"RENEW-7KQ2-XPNM-4R9T-HCWZ"`` (case
                and spaces do not matter).

        Returns:
            The renewed :class:`License`.

        Raises:
            RenewalRefused: unknown or used code, a code for another license,
                or a perpetual license.
            NotActivated: no activation on this machine.
            LicenseRevoked, LicenseSuspended: the license cannot be renewed.
            ActivationLocked: too many attempts.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        return _terms.renew(self, code)

    def request_erasure(self) -> License:
        """Ask the server to erase the end user's personal data (GDPR erasure).

        Afterwards the server holds no email or registration details, the local
        store drops its copy, and the license keeps working in limited mode.

        Returns:
            The new, limited :class:`License`.

        Raises:
            NotActivated, ServerUnreachable, ServerError, InvalidToken.
        """
        with self._lock:
            data = self._read()
            activation_id, secret = _protocol.credentials(data)
            nonce = _protocol.nonce()
            answer = self._make_transport().request(
                "POST", f"/v1/activations/{activation_id}/erasure",
                json_body={"nonce": nonce}, bearer=secret, retry=True,
            )
            if answer.status != 200:
                _, message = _protocol.error_of(answer)
                raise ServerError(f"The license server refused the erasure request: {message}")
            lic = self._accept_token(answer.body.get("token"), nonce)
            self._store_token(answer.body["token"], lic)
            return lic

    # ------------------------------------------------------------ settings

    @property
    def settings(self) -> dict[str, Any]:
        """The end user's settings document, from the server (cached for offline reads).

        Reading tries the server within a short deadline and falls back to the
        cached copy. Assigning a ``dict`` stores it locally at once and sends it
        to the server; if the server cannot be reached, it is sent at the next
        successful read or assignment.

        Raises:
            NotActivated: no activation on this machine.
            ServerError: the server refused the document (e.g. too large).
        """
        with self._lock:
            data = self._read()
            if data.get("settings_dirty"):
                try:
                    return self._push_settings(data.get("settings") or {})
                except NetworkError:
                    return dict(data.get("settings") or {})
            try:
                answer = self._settings_request("GET", None)
            except NetworkError:
                return dict(data.get("settings") or {})
            document = answer.get("settings")
            if not isinstance(document, dict):
                raise ServerError("The server's settings document is not an object.")
            self._update(lambda d: d.__setitem__("settings", document))
            return dict(document)

    @settings.setter
    def settings(self, document: Mapping[str, Any]) -> None:
        if not isinstance(document, Mapping):
            raise TypeError("settings must be a mapping (a JSON object)")
        document = dict(document)

        def mark(data: dict[str, Any]) -> None:
            data["settings"] = document
            data["settings_dirty"] = True
        with self._lock:
            self._update(mark)
            with contextlib.suppress(NetworkError):  # else sent at the next contact
                self._push_settings(document)

    def _push_settings(self, document: Mapping[str, Any]) -> dict[str, Any]:
        answer = self._settings_request("PUT", {"settings": dict(document)})
        stored = answer.get("settings")
        result = dict(stored) if isinstance(stored, dict) else dict(document)

        def clean(data: dict[str, Any]) -> None:
            data["settings"] = result
            data.pop("settings_dirty", None)
        self._update(clean)
        return result

    def _settings_request(self, method: str, body: Mapping[str, Any] | None) -> Mapping[str, Any]:
        data = self._read()
        activation_id, secret = _protocol.credentials(data)
        answer = self._make_transport().request(
            method, f"/v1/activations/{activation_id}/settings", json_body=body,
            bearer=secret, retry=True, deadline=min(CHECK_DEADLINE, self._timeout),
        )
        if answer.status != 200:
            _, message = _protocol.error_of(answer)
            raise ServerError(f"The license server refused the settings: {message}")
        return answer.body

    # ------------------------------------------------------------ background

    def start_periodic_check(
        self,
        interval: float,
        *,
        on_change: Callable[[License | None, License | None], None] | None = None,
        on_error: Callable[[LicenseError], None] | None = None,
        jitter: float = 0.1,
        max_backoff: float | None = None,
    ) -> PeriodicCheck:
        """Refresh the license in a daemon thread every ``interval`` seconds.

        See :class:`software_dna.checker.PeriodicCheck` for the arguments.
        Returns the running handle; call ``stop()`` or use it as a context manager.
        """
        from .checker import PeriodicCheck

        handle = PeriodicCheck(
            self, interval, on_change=on_change, on_error=on_error,
            jitter=jitter, max_backoff=max_backoff,
        )
        handle.start()
        return handle

    def close(self) -> None:
        """Return a checked-out floating lease (best effort) and release the HTTP connections.

        Never raises. The client stays usable.
        """
        if self._lease.wanted:
            self._lease.at_exit()  # check in within a few seconds; never raises
        if self._transport is not None:
            self._transport.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LicenseClient(product={self.product!r}, server_url={self.server_url!r})"
