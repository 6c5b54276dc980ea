"""The client's local state: the store, its rollback witness, and the clock mark, in one object.

:class:`ClientState` is the only writer of the stored document
(:class:`~software_dna.client.document.StoredDocument`): every change is a
named method here, applied atomically (lock, read, change, write) and then
recorded in the rollback witness. It also keeps the in-process caches (the
document of an unchanged store file, the clock high-water mark) and the
offline checks that read the stored state: the clock, the stored refusal, the
stored license.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast

from software_dna import fingerprint as _fp
from software_dna.errors import (
    ClockTampered,
    InvalidToken,
    LicenseError,
    LicenseExpired,
    Message,
    NotActivated,
    StoreCorrupted,
    StoreFromAnotherMachine,
)
from software_dna.files import read_limited
from software_dna.i18n import N_
from software_dna.license import License
from software_dna.store import MAGIC, Store
from software_dna.wire.airgap import MAX_PENDING_REQUESTS, REQUEST_LIFETIME
from software_dna.wire.claims import Mode
from software_dna.wire.times import CLOCK_SKEW, format_rfc3339, parse_rfc3339

from .document import OfflineRequest, Status, StoredDocument
from .expiry import expired_message
from .locations import Env, find_witness, keyring_path, remember_store
from .refusals import MEANINGS, code_of, stored_error
from .rollback import UNCONFIRMED, RollbackGuard, deactivated_refusal, refusal_for
from .verifier import TokenVerifier

__all__ = ["HIGH_WATER_STEP", "ClientState", "Clock", "fresh_requests"]

_HEADER = len(MAGIC) + 1  # the store file's magic and format version

#: The clock high-water mark is written to disk when it moved by at least this.
HIGH_WATER_STEP = timedelta(minutes=5)

Clock = Callable[[], datetime]


class ClientState:
    """The license state of one product on this machine.

    Args:
        verifier: the product's :class:`TokenVerifier` (trusted keys, fingerprint).
        store_path: the store file (``.license``).
        clock: returns the current time as an aware datetime.
        machine: the machine whose key encrypts the store and the witness
            (default: this one).
        env: the machine's account: its folders hold the witness, the
            keyring and the store pointer (default :meth:`Env.current
            <software_dna.client.locations.Env.current>`).
        remember_store: record ``store_path`` in the store pointer after the
            first write (for a store found by
            :func:`~software_dna.client.locations.find_store`; not for an
            explicit path).
    """

    def __init__(self, verifier: TokenVerifier, store_path: Path, clock: Clock, *,
                 machine: _fp.Machine | None = None, env: Env | None = None,
                 remember_store: bool = False) -> None:
        self.verifier = verifier
        self.product = verifier.product
        self.store_path = store_path
        self._clock = clock
        self._store: Store | None = None
        self._key: _fp.MachineKey | None = None
        self.machine = machine or _fp.THIS_MACHINE
        product = self.product
        self._env = env if env is not None else Env.current()
        # A second file, kept elsewhere, that notices the store being rolled back.
        self.guard = RollbackGuard(product, lambda: self.machine_key().derive("witness"),
                                   legacy_key_material=lambda: self.machine.legacy_secret(product),
                                   path=find_witness(product, env=self._env))
        self._remember_store = remember_store
        #: The vendor app's version, sent with the client facts (None: not sent).
        self.app_version: str | None = None
        # The machine key's keyring: in the account's anchor folder; beside the store
        # when the anchor cannot be written (a read-only home with SOFTWARE_DNA_HOME set).
        self._keyrings = (keyring_path(product, env=self._env),
                          store_path.with_name(store_path.name + ".keyring"))
        self._witness_ok = False
        self._loaded: tuple[tuple[int, int, int], StoredDocument] | None = None
        self.high_water: datetime | None = None
        self._parsed_high_water: dict[str, datetime] = {}

    # ------------------------------------------------------------ time and the store

    def now(self) -> datetime:
        """The current time, aware UTC.

        Raises:
            ValueError: the clock returned a naive datetime.
        """
        now = self._clock()
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("clock() must return a timezone-aware datetime")
        return now.astimezone(timezone.utc)

    def machine_key(self) -> _fp.MachineKey:
        """This machine's key for the product (the keyring is created when there is none).

        Raises:
            StoreFromAnotherMachine: the keyring was made on another machine,
                or this one changed too much at once (nothing is changed).
            StoreError: the keyring cannot be read or written.
            FingerprintUnavailable: this machine cannot be identified.
        """
        if self._key is not None:  # the store, the witness and the installation id share it
            return self._key
        # A store written under a machine key (format 2) with no keyring in sight was
        # made elsewhere, or its key file moved: a new key would only set it aside.
        key = self.machine.machine_key(self.product, self._keyrings,
                                       create=not self._store_needs_its_key())
        if key is None:
            raise StoreFromAnotherMachine(Message(
                N_("The license data on this computer (%(store)s) was written under a key "
                   "file that is not here (%(keyring)s): it was made on another computer or "
                   "by another user account, or its key file was moved or deleted (for "
                   "example SOFTWARE_DNA_STATE_HOME changed). Nothing was deleted: restore the "
                   "key file, or activate the license again."),
                store=self.store_path, keyring=self._keyrings[0]), moved_to=None)
        self._key = key
        return key

    def _store_needs_its_key(self) -> bool:
        """A store file written under a machine key (format 2 or later) exists."""
        try:
            head = read_limited(self.store_path, _HEADER)
        except OSError:
            return False
        return head is not None and len(head) >= _HEADER and head.startswith(MAGIC) \
            and head[len(MAGIC)] >= 2

    def start_over(self) -> None:
        """Before a new activation: a keyring this machine cannot open is set aside.

        A machine that changed beyond the tolerance (or holds files copied
        from another machine) gets a new machine key; the old keyring, store
        and witness are moved aside, never deleted.

        Raises:
            StoreError: the keyring cannot be read or written.
            FingerprintUnavailable: this machine cannot be identified.
        """
        try:
            self.machine_key()
            return
        except StoreFromAnotherMachine:
            pass
        self.machine.machine_key(self.product, self._keyrings, create=True, start_over=True)
        self._store = None
        self._key = None
        self._loaded = None
        self.guard.set_aside()  # written under the old key: not damage, another machine's
        with contextlib.suppress(StoreCorrupted):  # the old store is moved aside
            self.store.read()

    @property
    def store(self) -> Store:
        """The encrypted store file (opened on first use, under the machine key).

        Raises:
            StoreFromAnotherMachine, StoreError, FingerprintUnavailable: as
                :meth:`machine_key`.
        """
        if self._store is None:
            product = self.product
            self._store = Store(self.store_path, product=product,
                                key_material=self.machine_key().derive("store"),
                                legacy_key_material=lambda: self.machine.legacy_secret(product))
        return self._store

    def read(self) -> StoredDocument:
        """The stored document, re-read only when the file changed (empty when none).

        Raises:
            StoreError, StoreCorrupted: the store cannot be read.
        """
        try:
            st = self.store_path.stat()
        except FileNotFoundError:
            self._loaded = None
            return {}
        except OSError:
            st = None
        ident = (st.st_mtime_ns, st.st_size, st.st_ino) if st is not None else None
        if ident is not None and self._loaded is not None and self._loaded[0] == ident:
            return self._loaded[1]
        data = cast(StoredDocument, self.store.read() or {})
        if ident is not None:
            self._loaded = (ident, data)
        return data

    def read_fresh(self) -> StoredDocument:
        """The stored document read from the file now, never from the in-process cache.

        For reads under :meth:`exclusive`: another process may have replaced the
        file within the file system's timestamp granularity, with the same size
        and a reused inode, which the cache of :meth:`read` would not notice.

        Raises:
            StoreError, StoreCorrupted: the store cannot be read.
        """
        self._loaded = None
        return self.read()

    def read_or_empty(self) -> StoredDocument:
        """:meth:`read`, or an empty document when the store is corrupt (it was moved aside)."""
        try:
            return self.read()
        except StoreCorrupted:
            return {}

    def update(self, change: Callable[[StoredDocument], None], *,
               lock_timeout: float | None = None, confirmed: bool = False) -> StoredDocument:
        """Apply ``change`` to the stored document atomically; return the new document.

        Every write gets a new generation, then the rollback witness is updated.
        ``lock_timeout``: seconds to wait for the store's lock (default: the store's).
        ``confirmed``: the write stores a token fresh from the server (only such a
        write repairs a damaged witness: :meth:`RollbackGuard.record`).

        Raises:
            StoreError: it could not be written (or locked within ``lock_timeout``).
        """
        with self.store.transaction(lock_timeout) as raw:
            data = cast(StoredDocument, raw)
            # A store the witness cannot vouch for stays so, whatever is written to it
            # locally, until the server's word: a new generation must not pass for it.
            unvouched = not confirmed and self.guard.unconfirmed(raw)
            change(data)
            if confirmed:
                raw.pop(UNCONFIRMED, None)
            elif unvouched:
                raw[UNCONFIRMED] = True
            self.guard.stamp(raw, witnessed=self._witness_ok)
            result = cast(StoredDocument, dict(data))
        self._loaded = None
        lic = self.stored_license(result)
        self._witness_ok = self.guard.record(
            result, lic.license_id if lic else None, lic.issued_at if lic else None,
            confirmed=confirmed)
        if self._witness_ok and result.get("witnessed") is not True:
            # Once per store: from now on a deleted witness is noticed too.
            with self.store.transaction() as raw:
                raw["witnessed"] = True
            result["witnessed"] = True
            self._loaded = None
        if self._remember_store:
            # Once per process: lets a later start find this store if the folders move.
            self._remember_store = False
            remember_store(self.product, self.store_path, env=self._env)
        return result

    @contextlib.contextmanager
    def exclusive(self, timeout: float) -> Iterator[None]:
        """Hold the store's lock (every process of this app on this machine) for the block.

        An online validation holds it from reading the activation secret to
        storing the answer: the secret rotates at every validation, so two
        instances of the app must never send the same stored secret while one
        of them is about to store its successor.

        Args:
            timeout: seconds to wait for another instance to finish.

        Raises:
            StoreError: the lock was not obtained within ``timeout``.
        """
        with self.store.locked(timeout):
            yield

    def clear(self) -> None:
        """Delete the stored document (the license leaves this machine)."""
        self.store.clear()
        self._loaded = None
        self.verifier.forget()

    # ------------------------------------------------------------ reading the license

    def stored_license(self, data: Mapping[str, Any]) -> License | None:
        """The stored token's license when it verifies (signature only), else None."""
        token = data.get("token")
        if not isinstance(token, str):
            return None
        try:
            return self.verifier.verify(token)
        except LicenseError:
            return None

    def check_clock(self, now: datetime, data: Mapping[str, Any]) -> None:
        """Raise :class:`ClockTampered` when ``now`` is before the high-water mark (minus skew).

        Moves the mark forward (in memory, and on disk every :data:`HIGH_WATER_STEP`).
        """
        high = self.high_water
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
        floor = self.guard.floor()  # survives the store being deleted or rolled back
        if floor is not None and (high is None or floor > high):
            high = floor
        if high is not None and now < high - CLOCK_SKEW:
            raise ClockTampered(Message(
                N_("The system clock is earlier than a time this app has already seen "
                   "(%(time)s). Set the clock to the correct time and try again."),
                time=format_rfc3339(high)))
        if high is None or now > high:
            self.high_water = now
        if high is None or now - high >= HIGH_WATER_STEP:
            # Best effort: the in-memory mark still protects this process. Not waiting
            # for another instance's online validation, which holds the lock meanwhile.
            with contextlib.suppress(LicenseError):
                self.update(lambda d: d.__setitem__("clock_high_water", format_rfc3339(now)),
                            lock_timeout=0.0)

    def raise_stored_status(self, data: Mapping[str, Any]) -> None:
        """Raise the stored refusal (revoked, suspended, removed ...), if there is one."""
        error = stored_error(data.get("status"))
        if error is not None:
            raise error

    def offline_license(self, now: datetime, data: Mapping[str, Any]) -> License:
        """The stored license, checked with no network: clock, signature, machine, time.

        Raises:
            NotActivated, ClockTampered, InvalidToken, WrongProduct, WrongMachine,
            LicenseExpired.
        """
        token = data.get("token")
        if not isinstance(token, str):
            raise NotActivated()
        self.check_clock(now, data)
        lic = self.verifier.verify(token)
        self.verifier.check_machine(lic)
        if now + CLOCK_SKEW < lic.not_before:
            raise ClockTampered(
                N_("The system clock is behind the license server's time. "
                   "Set the clock to the correct time and try again.")
            )
        if lic.license_expires_at is not None and now >= lic.license_expires_at:
            raise LicenseExpired(expired_message(lic, lic.license_expires_at))
        return lic

    def suspicion(self, data: Mapping[str, Any]) -> LicenseError | None:
        """Why the store cannot be trusted offline (rolled back, a witnessed refusal), or None."""
        stored = self.stored_license(data)
        return self.guard.suspicion(
            data, (stored.license_id, stored.activation_id, stored.issued_at) if stored else None)

    def check_not_rolled_back(self, now: datetime, lic: License) -> None:
        """Refuse an out-of-band token that would undo what this machine already saw.

        The clock must not be behind the stored or witnessed high-water mark,
        the token must not be older than one stored before, a refusal seen
        online (revoked, suspended, removed) still applies to tokens issued
        before it, and an air-gapped deactivation made here refuses every
        token of that activation and every token of the license issued before
        it (:class:`NotActivated`; recorded in the witness and in the store).
        """
        data = self.read_or_empty()
        self.check_clock(now, data)
        deactivated = self.guard.deactivation_error(lic.license_id, lic.activation_id,
                                                    lic.issued_at)
        record = data.get("offline_deactivation")
        if deactivated is None and isinstance(record, dict) \
                and record.get("license_id") == lic.license_id:
            deactivated = deactivated_refusal(
                {"at": record.get("created_at"), "iat": record.get("token_iat"),
                 "activations": [record.get("activation_id")]},
                lic.activation_id, lic.issued_at)
        if deactivated is not None:
            raise deactivated
        if self.guard.older_than_seen(lic.license_id, lic.issued_at):
            raise InvalidToken(N_("This license is older than one already installed on this "
                                  "computer. Use the newest license file you received."))
        refused = refusal_for(data.get("status"), lic.issued_at, activation_id=lic.activation_id)
        refused = refused or self.guard.status_error(
            lic.license_id, lic.issued_at, activation_id=lic.activation_id)
        if refused is not None:
            raise refused

    # ------------------------------------------------------------ writing the license

    def trust_server_time(self, lic: License) -> None:
        """A fresh token's ``iat`` is the server's signed time: reset the clock mark to it."""
        self.high_water = lic.issued_at
        self._parsed_high_water = {}
        self.guard.trust_server_time(lic.issued_at)

    def store_token(self, token: str, lic: License, *, secret: str | None = None) -> None:
        """Store a fresh token from the server (verified: ``lic``); clears a stored refusal.

        ``secret``: the rotated activation secret the answer handed out (already
        checked against the token's ``secret_digest``): stored in the same write
        as the token, the old one forgotten. None: the secret stays.

        A token in limited mode drops the personal data (and, when it was not
        limited before, the settings: the server erased them too).
        """
        self.trust_server_time(lic)

        def change(data: StoredDocument) -> None:
            before = self.stored_license(data)
            data["token"] = token
            if secret is not None:
                data["activation_secret"] = secret
            data["clock_high_water"] = format_rfc3339(lic.issued_at)
            data.pop("status", None)
            if lic.mode is Mode.LIMITED:
                data.pop("email", None)
                data.pop("registration", None)
                if before is not None and before.mode is not Mode.LIMITED:
                    # Erased: the server dropped the settings too, and an unsent
                    # edit must not bring erased data back.
                    data.pop("settings", None)
                    data.pop("settings_dirty", None)
        self.update(change, confirmed=True)

    def forget_personal_data(self) -> None:
        """Drop the end user's email, registration details and settings from the store
        (the server erased its copy)."""
        def change(data: StoredDocument) -> None:
            data.pop("email", None)
            data.pop("registration", None)
            data.pop("settings", None)
            data.pop("settings_dirty", None)
        self.update(change)

    def install_token(self, token: str, now: datetime) -> None:
        """Store a token installed out of band (already verified and checked)."""
        def change(data: StoredDocument) -> None:
            data["token"] = token
            data.pop("status", None)
            data["clock_high_water"] = format_rfc3339(max(now, self.high_water or now))
        self.update(change)

    def save_activation(self, token: str, lic: License, activation_id: str, secret: str, *,
                        offline: bool = False, high_water: datetime | None = None) -> None:
        """Make a new activation the stored license (the store is replaced).

        Args:
            token, lic: the verified token and its license.
            activation_id, secret: the activation's credentials.
            offline: activated with an air-gapped response (keeps the settings and
                the other pending requests; the clock mark is ``high_water``).
            high_water: the clock mark to store (default: the token's ``iat``).
        """
        now = self.now()
        if not offline:
            self.trust_server_time(lic)
        mark = format_rfc3339(high_water or lic.issued_at)

        def change(data: StoredDocument) -> None:
            pending = [e for e in fresh_requests(data, now) if e["nonce"] != lic.nonce]
            settings = data.get("settings")
            cast(dict[str, Any], data).clear()
            data.update({"token": token, "activation_id": activation_id,
                         "activation_secret": secret, "activated_at": format_rfc3339(now)})
            if offline:
                data["activated_offline"] = True
            data["clock_high_water"] = mark
            if offline and pending:
                data["offline_requests"] = pending
            if offline and isinstance(settings, dict):
                data["settings"] = settings
        # An air-gapped response is not the server's word on this machine's files.
        self.update(change, confirmed=not offline)
        self.verifier.remember(token, lic)

    def store_refusal(self, code: str, message: str, *, receipt: object = None) -> None:
        """Store a refusal the server signed, so that going offline cannot undo it.

        Args:
            code: the refusal's code (a stored row of the refusals table).
            message: the server's message.
            receipt: the signed receipt (its ``server_time`` dates the refusal).
        """
        status: Status = {"code": code, "message": message,
                          "seen_at": format_rfc3339(self.now())}
        server_time = self.verifier.receipt_time(receipt)
        if server_time is not None:  # the receipt's signed time, for the witness
            status["server_time"] = server_time
        known = code_of(code)
        meaning = MEANINGS.get(known) if known is not None else None

        def change(data: StoredDocument) -> None:
            owner = self.stored_license(data)
            if owner is not None:  # whose refusal it is, for the rollback witness
                status["license_id"] = owner.license_id
                status["activation_id"] = owner.activation_id
            data["status"] = cast(Status, dict(status))
            if meaning is not None and meaning.ends_activation:
                for name in ("token", "activation_id", "activation_secret"):
                    data.pop(name, None)  # type: ignore[misc]
        self.update(change)

    def store_status(self, status: Status) -> None:
        """Store a status that is not a refusal (a cancelled subscription's warning period)."""
        self.update(lambda d: d.__setitem__("status", status))

    # ------------------------------------------------------------ the other stored facts

    def idempotency_key(self, license_key: str, new_key: Callable[[], str]) -> str:
        """The idempotency key of an unfinished activation of ``license_key``, or a new one."""
        key_hash = hashlib.sha256(f"{self.product}\0{license_key}".encode()).hexdigest()
        pending = self.read_or_empty().get("pending_activation")
        if isinstance(pending, dict) and pending.get("key_hash") == key_hash:
            existing = pending.get("idempotency_key")
            if isinstance(existing, str):
                return existing
        fresh = new_key()
        self.update(lambda d: d.__setitem__(
            "pending_activation", {"key_hash": key_hash, "idempotency_key": fresh}))
        return fresh

    def installation_id(self) -> str:
        """The stored installation id, or this OS account's (:meth:`derived_installation_id`),
        stored now."""
        existing = self.read().get("installation_id")
        if isinstance(existing, str) and 16 <= len(existing) <= 64:
            return existing
        new_id = self.derived_installation_id()
        self.update(lambda d: d.__setitem__("installation_id", new_id))
        return new_id

    def derived_installation_id(self) -> str:
        """This OS account's installation id for the product.

        It tells user seats on one computer apart and carries nothing about the
        user or the machine: a keyed hash of the OS account under the machine
        key (:meth:`~software_dna.fingerprint.MachineKey.installation_id`),
        which never leaves the machine. Being derived, not drawn at random, it
        survives a damaged or deleted store, and it does not depend on where
        the store is, so moving the store keeps the seat.
        """
        account = str(os.getuid()) if hasattr(os, "getuid") else ""
        with contextlib.suppress(Exception):  # no user name (containers): the uid does
            account += "\0" + getpass.getuser()
        return self.machine_key().installation_id(account)

    def save_settings(self, document: dict[str, Any], *, dirty: bool | None) -> None:
        """Cache the end user's settings.

        Args:
            document: the settings document (a JSON object).
            dirty: True: to be sent at the next contact; False: the server has
                them; None: leave the mark as it is.
        """
        def change(data: StoredDocument) -> None:
            data["settings"] = document
            if dirty:
                data["settings_dirty"] = True
            elif dirty is not None:
                data.pop("settings_dirty", None)
        self.update(change)

    def remember_offline_request(self, nonce: str, now: datetime) -> None:
        """Remember an air-gapped request's nonce (keeping the newest fresh ones)."""
        def change(data: StoredDocument) -> None:
            pending = fresh_requests(data, now)
            pending.append({"nonce": nonce, "created_at": format_rfc3339(now)})
            data["offline_requests"] = pending[-MAX_PENDING_REQUESTS:]
        self.update(change)

    def save_offline_deactivation(self, lic: License, receipt: str, now: datetime) -> None:
        """Replace the store by the receipt of an air-gapped deactivation.

        The deactivation is written to the rollback witness first
        (:meth:`RollbackGuard.record_deactivation`), so that no token of
        the activation of ``lic`` (the stored license) nor any token of its
        license issued up to ``lic``'s is accepted on this machine again, even
        with the store restored from a backup; then the store keeps only the
        receipt (and the same record).

        Raises:
            StoreError: the store could not be written (the license stays).
        """
        self.guard.record_deactivation(lic.license_id, lic.activation_id, now, lic.issued_at)

        def change(data: StoredDocument) -> None:
            cast(dict[str, Any], data).clear()
            data["offline_deactivation"] = {
                "activation_id": lic.activation_id, "receipt": receipt,
                "created_at": format_rfc3339(now), "license_id": lic.license_id,
                "token_iat": format_rfc3339(lic.issued_at)}
        self.update(change)


def fresh_requests(data: Mapping[str, Any], now: datetime) -> list[OfflineRequest]:
    """The machine's unanswered air-gapped requests that are still fresh, oldest first."""
    kept: list[OfflineRequest] = []
    entries = data.get("offline_requests")
    for entry in entries if isinstance(entries, list) else []:
        try:
            created = parse_rfc3339(entry.get("created_at"))
        except (AttributeError, ValueError):
            continue
        if isinstance(entry.get("nonce"), str) and now - created <= REQUEST_LIFETIME:
            kept.append({"nonce": entry["nonce"], "created_at": entry["created_at"]})
    return kept
