"""`LicenseClient`: what a vendor's app calls — activate, check, refresh, ...

A thin facade. It builds the client's two objects -- its local state
(:class:`~software_dna.client.state.ClientState`: the store, the rollback
witness, the trusted keys) and its network
(:class:`~software_dna.client.server.ServerAPI` over a
:class:`~software_dna.client.transport.Transport`) -- and one small class per
feature that receives them: the license check
(:class:`~software_dna.client.validation.Validation`), activation, floating
seats, trials and renewal, the air-gapped flow, settings, password reset and
the periodic check. Each public method delegates to one of them.

Everything the SDK raises is a :class:`~software_dna.errors.LicenseError`:
each public method is wrapped by :func:`~software_dna.client.boundary.guard`,
the last net under the translations the layers below make (docs/security.md,
"The SDK's boundary"). In a frozen app (``sys.frozen``, or Nuitka's
``__compiled__``) the constructor loads
the store's file locking, the network stack and the TLS trust at once
(:func:`~software_dna.files.load_locking`, :meth:`ServerAPI.prepare`), so
that removing the app's unpacked folder while it runs breaks nothing later;
a normal ``import software_dna`` stays light.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar
from urllib.parse import quote

from software_dna import fingerprint as _fp
from software_dna.errors import LicenseError, LicenseExpired, NetworkError, localize
from software_dna.files import load_locking
from software_dna.i18n import N_, normalize, translation
from software_dna.license import License
from software_dna.store import store_path_for
from software_dna.wire.claims import Protection
from software_dna.wire.paseto import InvalidKey, PublicKey

from .activation import Activation, check_activation_input, check_label
from .airgap import AirGap
from .boundary import guard
from .checkout import Checkout
from .expiry import expired_air_gapped
from .lease import LeaseKeeper
from .locations import Env, find_store
from .passwords import PasswordReset
from .periodic import PeriodicCheck
from .server import ServerAPI, check_app_version
from .settings import SettingsSync
from .state import ClientState, Clock
from .terms import Terms
from .transport import Transport
from .validation import Validation
from .verifier import TokenVerifier

__all__ = ["LicenseClient"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _frozen() -> bool:
    """True in a frozen app: PyInstaller, cx_Freeze, py2exe, ... set ``sys.frozen``;
    Nuitka sets none but gives each module it compiled a ``__compiled__`` global."""
    return bool(getattr(sys, "frozen", False)) or "__compiled__" in globals()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LicenseClient:
    """The license of one product on this machine.

    Args:
        product: the product id, as configured on the license server.
        public_keys: trusted PASERK ``k4.public`` strings (the vendor's
            signing keys, newest and older ones during a rotation). A token's
            footer ``kid`` picks one; a token signed by any other key is refused.
        server_url: the license server, e.g. ``"https://license.example.com"``;
            ``http://`` only for one on this computer (see ``allow_insecure_http``).
            ``None`` for a purely offline client (tokens installed with
            :meth:`install_token`).
        app_name, app_author: name the store folder (platformdirs' user data
            dir); default: the product id. A store an earlier layout left in
            another folder is found and moved there (see
            :mod:`software_dna.client.locations`).
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
            for a product; default :func:`software_dna.fingerprint.collect` with
            its disk cache in the store's folder.
            Meant for special environments and tests.
        transport: a :class:`~software_dna.client.transport.Transport` that
            carries the requests instead of the built-in HTTP one (for tests
            and advanced use: an in-process server, a refusing "offline"
            transport). ``server_url`` may then be omitted (it is only shown
            in ``repr``); each request gets a ``deadline`` (``timeout``, or
            the shorter one of a check), and the HTTP options
            (``connect_timeout``, ``ca_bundle``, ``proxies``) do not apply.
        machine: the machine this client runs on: its fingerprint, its
            machine key and where its account keeps files. Default: this
            one. Tests pass a :class:`software_dna.testing.SimulatedMachine`
            (docs/testing.md); it is never chosen through the environment.
        allow_insecure_http: accept a plain ``http://`` ``server_url`` on
            another computer. Off by default: without TLS anyone on the
            network reads the license key and password and can answer for the
            server. ``http://localhost`` (and other loopback hosts) needs no flag.
        app_version: your app's version, e.g. ``"1.4.2"`` (1 to 32 printable
            characters). Sent with the client facts at activation, trial start,
            air-gapped request and online validation, so the vendor's panel
            shows which versions are in use. Default: not sent.
        language: the language of the messages the SDK raises to the app (its
            exceptions' texts, the server's refusals included), as a tag such as
            ``"de"`` or ``"de-CH"``; see :data:`software_dna.i18n.LANGUAGES` for
            the shipped ones. None (the default) or a language not shipped:
            English. The operating system's locale is not read: the app passes
            the language its own interface uses. Argument errors (``ValueError``,
            ``TypeError``) are for the developer and stay in English.

    Raises:
        ValueError: no trusted key, a malformed key, a malformed URL, a plain
            ``http://`` URL to another computer without ``allow_insecure_http``,
            or an ``app_version`` that is not 1 to 32 printable characters.
        TypeError: ``transport`` is not a Transport, or ``language`` is not a string.
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
        transport: Transport | None = None,
        machine: _fp.Machine | None = None,
        allow_insecure_http: bool = False,
        app_version: str | None = None,
        language: str | None = None,
    ) -> None:
        app_version = check_app_version(app_version)
        if language is not None and not isinstance(language, str):
            raise TypeError("language must be a language tag such as 'de', or None")
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
        if transport is not None and not isinstance(transport, Transport):
            raise TypeError("transport must be a software_dna.client.transport.Transport")
        self.product = product
        self.server_url = server_url
        #: The shipped language of the SDK's messages (``"en"`` unless another was asked
        #: for and is shipped).
        self.language = normalize(language) or "en"
        self._catalogue = translation(self.language)
        host = machine or _fp.THIS_MACHINE
        # Where the account's files are: this process's environment, or a simulated machine's.
        env = Env(machine.environ, machine.home, machine.platform) if machine is not None \
            else Env.current()
        if store_path is not None:
            path = Path(store_path)
            path = path if path.suffix == ".license" else store_path_for(product, path)
        else:  # SOFTWARE_DNA_HOME, else the platform folder (a store left elsewhere is moved)
            path = find_store(product, app_name or product, app_author, env=env)
        self._server = ServerAPI(server_url, transport=transport, timeout=timeout,
                                 connect_timeout=connect_timeout, ca_bundle=ca_bundle,
                                 proxies=proxies, allow_insecure_http=allow_insecure_http)
        # The component hashes are slow on purpose: keep them beside the store,
        # so that only the first process on this machine computes them.
        if machine is not None and not isinstance(machine, _fp.Machine):
            raise TypeError("machine must be a software_dna.fingerprint.Machine "
                            "(software_dna.testing.SimulatedMachine in tests)")
        verifier = TokenVerifier(product, keys, fingerprint or (
            lambda name: host.fingerprint(name, cache_dir=path.parent)))
        self._state = ClientState(verifier, path, clock or _utcnow, machine=host, env=env,
                                  remember_store=store_path is None)
        self._state.app_version = app_version
        self._lock = threading.RLock()
        self._lease = LeaseKeeper()
        self._validation = Validation(self._state, self._server, self._lease)
        self._settings = SettingsSync(self._state, self._server)
        self._activation = Activation(self._state, self._server, validation=self._validation,
                                      settings=self._settings, lease=self._lease,
                                      lock=self._lock)
        self._checkout = Checkout(self._state, self._validation, self._lease, self._lock)
        self._terms = Terms(self._state, self._server, self._validation, self._lock)
        self._airgap = AirGap(self._state)
        self._passwords = PasswordReset(self._state, self._server)
        if _frozen():
            load_locking()  # the store's lock, for the first write
            self._server.prepare()

    @property
    def store_path(self) -> Path:
        """The store file of this product on this machine."""
        return self._state.store_path

    def portal_url(self) -> str:
        """The address of the license portal of this product, for a "Manage my license…" link.

        In the portal (a web page of the license server) the license holder
        signs in with the license key and activation password, or with a link
        mailed to the address given at activation, and sees the license (its
        term, seats and which computers use them, by the labels the app set),
        frees a computer's seat (that computer's app then raises
        :class:`~software_dna.errors.ActivationReleased`) and changes the
        activation password. Open it in the end user's browser; the app never
        signs in for them.

        Returns:
            ``<server_url>/portal/<product>/`` (the product id quoted for a URL),
            with ``?lang=<language>`` when the client has a language other than
            English (otherwise the portal follows the browser's language).
            Computed here: nothing is sent.

        Raises:
            NetworkError: no ``server_url`` was given (a purely offline client
                has no portal).
        """
        if not self.server_url:
            raise NetworkError(N_("No license server is configured for this app, so it "
                                  "has no license portal."))
        url = f"{self.server_url.rstrip('/')}/portal/{quote(self.product, safe='')}/"
        return url if self.language == "en" else f"{url}?lang={self.language}"

    # ------------------------------------------------------------ checks

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
            ActivationReleased: the license holder freed this computer's seat
                in the license portal (a :class:`NotActivated`; seen online
                earlier, or now).
            LeaseExpired: a floating license holds no live lease (call
                :meth:`checkout`); NoSeatsLeft: its lease lapsed and every
                floating seat is taken (``retry_after``).
            StoreError, StoreCorrupted: the store cannot be read (a corrupt
                file is moved aside; the next run starts clean).
            FingerprintUnavailable: this machine cannot be identified.

        A server that cannot be reached, answers with something unusable
        (garbage, a forged or foreign token, an unsigned refusal) or says "too
        many requests, later" (``activation_locked``, ``rate_limited``) is a
        failed refresh: the stored license keeps working within its grace
        period (:meth:`refresh` raises those errors).
        """
        with self._lock:
            return self._validation.check(force_online=False)

    def refresh(self) -> License:
        """Validate online now and store the fresh token.

        Raises:
            ServerUnreachable: the server could not be reached in time (the
                stored license is unchanged and :meth:`check` still works);
                also when the app's network components cannot be loaded.
            LicenseRevoked, LicenseSuspended, LicenseExpired, WrongMachine,
            NotActivated, ActivationMoved, ActivationReleased: the server's
                refusal (stored, so going offline does not undo it).
            NoSeatsLeft, LeaseExpired: a floating license's lease could not be renewed.
            ActivationLocked: too many attempts; ``retry_after`` says when.
            UntrustedSigningKey: the app trusts none of the product's signing
                keys (the message names the one to ship); a ServerError too.
            ServerError, InvalidToken, WrongProduct: an unusable answer (the
                stored license is unchanged).
            ClockTampered: the clock is behind the server's signed time.
            StoreError: the fresh license could not be stored (read-only
                folder, full disk), or the store cannot be read.
            FingerprintUnavailable: this machine cannot be identified.
        """
        with self._lock:
            return self._validation.check(force_online=True)

    # ------------------------------------------------------------ activation

    def activate(
        self,
        license_key: str,
        *,
        password: str | None = None,
        email: str | None = None,
        registration: Mapping[str, str] | None = None,
        consent: bool = False,
        label: str | None = None,
    ) -> License:
        """Activate this machine with a license key (first run).

        Only the fingerprint's component hashes leave the machine. Personal
        data (``email``, ``registration``, ``label``) is sent only when given,
        and only with ``consent=True``.

        Args:
            license_key: the key, e.g. ``"ABCD-EFGH-JKLM-NPQR"``.
            password: the activation password, if the license has one.
            email: the end user's email address (optional).
            registration: registration details such as ``{"name": ..., "company": ...}``
                (optional; string values).
            consent: the end user agreed to send the personal data above.
            label: a name for this computer that the end user chose or accepted,
                e.g. ``"Anna's laptop"`` (1 to 64 printable characters), shown
                to the license holder in the license portal beside this seat.
                Personal data: stored encrypted, erased with the end user's
                data. The SDK never fills it in (not from the host name or any
                other identifier); activating again with a label replaces it.

        Returns:
            The activated :class:`License`.

        Raises:
            ConsentRequired: personal data (``email``, ``registration``,
                ``label``) given without ``consent=True``.
            ActivationError: a ``label`` that is empty, longer than 64
                characters or holds control characters.
            UnknownLicenseKey, WrongPassword, NoSeatsLeft, ActivationLocked:
                the server's refusal, with a message for the end user.
            UntrustedSigningKey: the app trusts none of the product's signing
                keys (built with another product's public key, or only retired
                ones): refused before any seat is taken; the message names the
                key to ship.
            ActivationError: another refusal of the server (the subclass names it).
            LicenseRevoked, LicenseSuspended, LicenseExpired: the license
                cannot be activated.
            NotActivated: the server refused a replay of a removed activation.
            ServerUnreachable: no answer in time (retrying later reuses the
                same idempotency key, so no second seat is taken).
            NetworkError: no server is configured.
            InvalidToken, WrongProduct, WrongMachine, ServerError: an unusable answer.
            ClockTampered: the clock is behind a time this SDK already saw.
            StoreError: the license could not be stored.
            FingerprintUnavailable: this machine cannot be identified.
        """
        return self._activation.activate(license_key, password=password, email=email,
                                         registration=registration, consent=consent,
                                         label=check_label(label, consent))

    def install_token(self, token: str) -> License:
        """Verify a license token obtained out of band and store it.

        Used by offline activation and tests. The token must be signed by a
        trusted key, for this product and this machine, and must not undo what
        this machine saw (an older token, a refusal, an air-gapped deactivation).

        Raises:
            InvalidToken, WrongProduct, WrongMachine: the token is not for here.
            NotActivated: an air-gapped deactivation on this machine gave up this
                token (its activation, or a token issued before it).
            ClockTampered: this computer's clock is behind a time already seen.
            LicenseExpired: it has already expired.
            StoreError: it could not be stored.
        """
        state = self._state
        with self._lock:
            now = state.now()
            lic = state.verifier.verify(token)
            state.verifier.check_machine(lic)
            state.start_over()  # a machine key this machine cannot open is set aside
            state.check_not_rolled_back(now, lic)
            if lic.license_expires_at is not None and now >= lic.license_expires_at:
                raise LicenseExpired(N_("This license has already expired."))
            if lic.expires_at is not None and now >= lic.expires_at:
                raise LicenseExpired(expired_air_gapped(lic.expires_at)
                                     if lic.protection is Protection.OFFLINE
                                     else "This license token has already expired.")
            state.install_token(token, now)
            return self._validation.apply_grace(now, lic)  # days_left, and the grace if due

    def deactivate(self) -> None:
        """Free this machine's seat on the server and clear the local store.

        Raises:
            NotActivated: nothing to deactivate.
            ServerUnreachable: the server could not be reached (nothing changed).
            NetworkError: no server is configured.
            ServerError: the server refused.
            InvalidToken: the answer's receipt is not the server's (nothing changed).
            StoreError: the store could not be read or cleared.
        """
        with self._lock:
            self._activation.deactivate()

    def request_erasure(self) -> License:
        """Ask the server to erase the end user's personal data (GDPR erasure).

        Afterwards the server holds no email or registration details, the local
        store drops its copy, and the license keeps working in limited mode.

        Returns:
            The new, limited :class:`License`.

        Raises:
            NotActivated: no activation on this machine (or the server removed it).
            LicenseRevoked, LicenseSuspended, LicenseExpired: the data was erased,
                and the license cannot be used (the server's signed refusal).
            ServerUnreachable, NetworkError, ServerError: no usable answer.
            InvalidToken, WrongProduct, WrongMachine: the answer's token is not for here.
            ActivationLocked: too many attempts; ``retry_after`` says when.
            ClockTampered: the clock is behind a time this SDK already saw.
            StoreError: the store could not be read or written.
            FingerprintUnavailable: this machine cannot be identified.
        """
        with self._lock:
            return self._activation.request_erasure()

    # ------------------------------------------------------------ air-gapped

    def create_activation_request(
        self,
        license_key: str,
        *,
        password: str | None = None,
        email: str | None = None,
        registration: Mapping[str, str] | None = None,
        consent: bool = False,
        label: str | None = None,
    ) -> str:
        """An activation request for a machine that cannot reach the server (docs/offline.md).

        Arguments as for :meth:`activate` (``label`` included), except ``password``. The returned
        text block (about a dozen lines) holds the product, the license key
        (readable: treat the block like the key), the fingerprint's component
        hashes, a fresh nonce and the creation time (UTC); personal data only
        when given, and only with ``consent=True``. It never holds the
        activation password: end users mail these blocks around. The password
        is typed where the request is answered (beside the block on
        ``POST /v1/offline/activations``; the vendor's staff need none).
        ``password`` is accepted for compatibility and ignored, with a
        :class:`DeprecationWarning`. The nonce is remembered in the store for
        30 days (:data:`software_dna.wire.airgap.REQUEST_LIFETIME`; at most 16
        pending).

        Raises:
            UnknownLicenseKey: an empty key.
            ConsentRequired: personal data without ``consent=True``.
            ActivationError: the request would be over its size limit (12 KiB of
                JSON: the registration details are too long), or a ``label`` that
                is not 1 to 64 readable characters.
            FingerprintUnavailable, StoreError.
        """
        license_key = check_activation_input(license_key, email, registration, consent)
        label = check_label(label, consent)
        if password is not None:
            warnings.warn(
                "create_activation_request(password=...) is ignored: the request block never "
                "holds the activation password. It is typed where the request is answered.",
                DeprecationWarning, stacklevel=2)
        with self._lock:
            return self._airgap.create_request(license_key, email=email,
                                               registration=registration, consent=consent,
                                               label=label)

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
        with self._lock:
            return self._airgap.activate(response_text)

    def deactivate_offline(self) -> str:
        """Remove the license from this machine and return a signed deactivation receipt.

        The end user sends the receipt to the vendor (or posts it from a
        connected machine); the server then frees the seat. Calling it again
        returns the same receipt until the next activation. The deactivation
        is recorded in the rollback witness: afterwards no token of this
        activation, and no token of the license issued before now, is
        accepted on this machine (:meth:`install_token`,
        :meth:`activate_offline`, :meth:`check` raise :class:`NotActivated`),
        even with the store restored from a backup.

        Raises:
            NotActivated: nothing to deactivate.
            StoreError: the store could not be changed (the license stays).
        """
        with self._lock:
            return self._airgap.deactivate()

    # ------------------------------------------------------------ floating seats

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
            NotActivated, ActivationMoved, ActivationReleased: no activation on this
                machine (any more).
            LicenseRevoked, LicenseSuspended, LicenseExpired, LeaseExpired,
            WrongMachine: refused.
            ActivationLocked: too many attempts; ``retry_after`` says when.
            UntrustedSigningKey: the app trusts none of the product's signing keys.
            ServerUnreachable, ServerError, NetworkError, InvalidToken,
            WrongProduct: no usable answer.
            ClockTampered: the clock is behind the server's signed time.
            StoreError: the store could not be read or written.
            FingerprintUnavailable: this machine cannot be identified.
        """
        return self._checkout.checkout()

    def checkin(self) -> None:
        """Return this machine's floating seat (online); the license stops working here.

        Afterwards :meth:`check` raises :class:`LeaseExpired` until the next
        :meth:`checkout`. Nothing happens on a license that is not floating.

        Raises:
            NotActivated: no activation on this machine (or the server removed it).
            ServerUnreachable, ServerError, NetworkError, InvalidToken,
            WrongProduct: the seat could not be returned now (it frees itself
                when the lease lapses).
            LicenseRevoked, LicenseSuspended, LicenseExpired, WrongMachine,
            NoSeatsLeft: the server's refusal.
            ActivationLocked: too many attempts; ``retry_after`` says when.
            UntrustedSigningKey: the app trusts none of the product's signing keys.
            ClockTampered: the clock is behind the server's signed time.
            StoreError: the store could not be read or written.
            FingerprintUnavailable: this machine cannot be identified.
        """
        self._checkout.checkin()

    # ------------------------------------------------------------ password reset

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
            ActivationError: another refusal of the server (the subclass names it).
            LicenseRevoked: the license was revoked.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        return self._passwords.request(license_key)

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
            ActivationError: another refusal of the server (the subclass names it).
            LicenseRevoked: the license was revoked.
            ServerUnreachable, ServerError, NetworkError: no usable answer.
        """
        self._passwords.confirm(license_key, code, new_password)

    # ------------------------------------------------------------ trials, renewal

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
            UntrustedSigningKey: the app trusts none of the product's signing
                keys: refused before the machine's trial is used.
            ActivationError: another refusal of the server (the subclass names it).
            LicenseRevoked, LicenseSuspended, LicenseExpired: the trial cannot be used.
            ServerUnreachable, ServerError, NetworkError: no usable answer (no
                server configured: NetworkError).
            InvalidToken, WrongProduct, WrongMachine: the answer's token is not for here.
            ClockTampered: the clock is behind a time this SDK already saw.
            StoreError: the trial could not be stored, or the store cannot be read.
            FingerprintUnavailable: this machine cannot be identified.
        """
        return self._terms.start_trial()

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
            NotActivated: no activation on this machine (or the server removed it).
            LicenseRevoked, LicenseSuspended, LicenseExpired: the license cannot
                be renewed (the server's signed refusal).
            ActivationLocked: too many attempts.
            ActivationError: another refusal of the server (the subclass names it).
            ServerUnreachable, ServerError, NetworkError: no usable answer.
            InvalidToken, WrongProduct, WrongMachine: the answer's token is not for here.
            ClockTampered: the clock is behind a time this SDK already saw.
            StoreError: the renewed license could not be stored.
            FingerprintUnavailable: this machine cannot be identified.
        """
        return self._terms.renew(code)

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
            StoreError: the store cannot be read, or the document not stored.
        """
        with self._lock:
            return self._settings.read()

    @settings.setter
    def settings(self, document: Mapping[str, Any]) -> None:
        with self._lock:
            self._settings.write(document)

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

        See :class:`software_dna.client.periodic.PeriodicCheck` for the arguments.
        Returns the running handle; call ``stop()`` or use it as a context manager.
        """
        handle = PeriodicCheck(
            self, interval, on_change=on_change, on_error=on_error,
            jitter=jitter, max_backoff=max_backoff, checkout=self._checkout,
            clock=self._state.now,
        )
        handle.start()
        return handle

    def close(self) -> None:
        """Return a checked-out floating lease (best effort) and release the HTTP connections.

        Never raises. The client stays usable.
        """
        if self._lease.wanted:
            self._lease.at_exit()  # check in within a few seconds; never raises
        self._server.close()

    def __enter__(self) -> LicenseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LicenseClient(product={self.product!r}, server_url={self.server_url!r})"


def _in_language(method: Callable[Concatenate[LicenseClient, _P], _R]
                 ) -> Callable[Concatenate[LicenseClient, _P], _R]:
    """``method`` raising its :class:`LicenseError` in the client's language (``language=``)."""

    @functools.wraps(method)
    def speaking(client: LicenseClient, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(client, *args, **kwargs)
        except LicenseError as exc:
            localize(exc, client._catalogue)
            raise

    return speaking


#: The public methods behind the boundary (every one but ``close``, which never raises).
_GUARDED = (
    "check", "refresh", "activate", "install_token", "deactivate", "request_erasure",
    "create_activation_request", "activate_offline", "deactivate_offline", "checkout",
    "checkin", "request_password_reset", "reset_password", "start_trial", "renew",
)
for _name in _GUARDED:
    setattr(LicenseClient, _name, _in_language(guard(getattr(LicenseClient, _name))))
LicenseClient.portal_url = _in_language(  # type: ignore[method-assign,assignment]
    LicenseClient.portal_url)
# Its arguments are checked first (ValueError, as documented).
LicenseClient.start_periodic_check = _in_language(guard(  # type: ignore[method-assign,assignment]
    LicenseClient.start_periodic_check, passthrough=(ValueError,)))
_property = vars(LicenseClient)["settings"]
assert isinstance(_property, property) and _property.fget is not None \
    and _property.fset is not None
LicenseClient.settings = property(  # type: ignore[method-assign,assignment]
    _in_language(guard(_property.fget)), _in_language(guard(_property.fset)),
    doc=_property.__doc__)
del _name, _property
