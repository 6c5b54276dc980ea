"""Rollback protection: a second, independent witness of the license's newest state.

The local store (:mod:`software_dna.store`) is one file. Someone who keeps a
copy of it can put the copy back later (a *rollback*) to undo what happened
since: a revocation, the switch to limited mode after an erasure, or the
clock high-water mark that catches a clock set back. The store's encryption
does not help: the old copy is a genuine file. So the SDK keeps a *witness*,
a second small file in another platformdirs location (the user's *state*
folder, not the app's data folder), encrypted and authenticated like the
store (AES-256-GCM under a machine-bound key: it cannot be read, edited or
forged without the key), one per product:

``stores``
    store id -> the highest *generation* written. Every store write
    increases the store's generation (the store keeps its random
    ``store_id`` and ``generation``); a store whose generation is lower than
    its witnessed one has been replaced by an older copy of itself.
``licenses``
    license id -> ``max_iat`` (the newest token issue time ever stored:
    ``iat`` is signed by the server, so nobody can forge a later one) and
    ``status`` (the last revocation / suspension / removal seen online, with
    the signed ``server_time`` of its receipt). A refusal applies to every
    token of that license issued up to its time, even after the store was
    deleted and an old token reinstalled; a token older than ``max_iat`` is
    refused by ``install_token``.
``floor``
    the latest of the clock high-water mark and every ``max_iat``: the clock
    may not be set earlier than this (minus the clock skew), even after the
    store was deleted.

The store records ``witnessed: true`` once a witness write succeeded, so
deleting the witness to hide a rollback is noticed too. Whenever the store
is behind its witness, the client must reach the license server (the
authority) before the license works again; if it cannot,
:class:`~software_dna.errors.StoreRolledBack` is raised (or the witnessed
refusal, when one applies). A witness that cannot be written (read-only
folder, full disk) is skipped silently: it never stops a license that is
otherwise fine. What this does not stop -- an attacker who rolls back *every*
file and the clock -- is stated in ``docs/security.md``.

Where: the anchor folder of :mod:`software_dna.client.locations`
(``$SOFTWARE_DNA_STATE_HOME`` when set); the file is
``<sha256(product id)[:32]>.witness``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from software_dna.errors import LicenseError, StoreError, StoreRolledBack
from software_dna.store import Store
from software_dna.wire.codes import Code
from software_dna.wire.times import format_rfc3339, parse_rfc3339

from .locations import find_witness
from .refusals import stored_error

__all__ = ["ROLLED_BACK", "RollbackGuard", "refusal_for"]

#: Most stores / licenses remembered per product (the oldest are dropped).
_MAX_ENTRIES = 256

#: Message of a detected rollback (the end user's next step: go online once).
ROLLED_BACK = (
    "The license files on this computer were replaced by an older copy, or one of them "
    "was deleted, so the license must be confirmed by the license server. Connect to the "
    "internet and start the application again."
)


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_rfc3339(value)
    except ValueError:
        return None


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _later(old: object, new: datetime | None) -> str | None:
    """The later of a stored RFC 3339 string and ``new``, as a string."""
    before = _time(old)
    if new is not None and (before is None or new > before):
        return format_rfc3339(new)
    return old if isinstance(old, str) else None


def _dict(doc: dict[str, Any], name: str) -> dict[str, Any]:
    value = doc.get(name)
    if not isinstance(value, dict):
        value = doc[name] = {}
    return value


def _trim(entries: dict[str, Any], key: Callable[[Any], Any]) -> None:
    if len(entries) > _MAX_ENTRIES:
        for name in sorted(entries, key=lambda k: key(entries[k]))[: len(entries) - _MAX_ENTRIES]:
            del entries[name]


def _applies(status: Mapping[str, Any], token_iat: datetime | None,
             activation_id: str | None) -> bool:
    """Whether a stored status still holds for a token issued at ``token_iat``."""
    removed = status.get("activation_id")
    if (status.get("code") == Code.ACTIVATION_REMOVED and activation_id is not None
            and isinstance(removed, str) and removed != activation_id):
        return False
    seen = _time(status.get("server_time")) or _time(status.get("seen_at"))
    return not (token_iat is not None and seen is not None and token_iat > seen)


def refusal_for(status: object, token_iat: datetime | None, *,
                activation_id: str | None = None) -> LicenseError | None:
    """A stored refusal as an exception, if it applies to a token issued at ``token_iat``.

    Args:
        status: a stored status ``{"code", "message", "seen_at", "server_time"?,
            "activation_id"?}`` or None.
        token_iat: the token's ``iat`` (aware UTC); None: the refusal always applies.
        activation_id: the token's activation; a removal (``activation_removed``)
            of another activation of the same license does not apply to it.

    Returns:
        The exception to raise (a stored refusal of
        :data:`~software_dna.client.refusals.MEANINGS`), or None. A refusal
        applies to every token issued up to its signed ``server_time``
        (``seen_at`` when there is none); a token issued later shows that the
        server answered otherwise since.
    """
    error = stored_error(status)
    if error is None or not isinstance(status, Mapping):
        return None
    return error if _applies(status, token_iat, activation_id) else None


class RollbackGuard:
    """The witness of one product's stores, and the rules comparing store and witness.

    Args:
        product: the product id (bound into the witness's key and associated data).
        key_material: returns the machine-bound key material (called once, lazily).
        path: the witness file (default
            :func:`~software_dna.client.locations.find_witness`, resolved lazily).

    The witness's own I/O is best effort: an unreadable witness is moved
    aside and treated as missing, an unwritable one is skipped.
    """

    def __init__(self, product: str, key_material: Callable[[], bytes],
                 *, path: Path | None = None,
                 legacy_key_material: Callable[[], bytes | None] | None = None) -> None:
        self.product = product
        self._path = path
        self._key_material = key_material
        self._legacy_key_material = legacy_key_material
        self._store: Store | None = None
        self._cache: tuple[tuple[int, int, int], dict[str, Any]] | None = None
        self._floor: tuple[dict[str, Any], datetime | None] | None = None

    @property
    def path(self) -> Path:
        """The witness file."""
        if self._path is None:
            self._path = find_witness(self.product)
        return self._path

    # ------------------------------------------------------------ I/O

    def _witness(self) -> Store:
        if self._store is None:
            self._store = Store(self.path, product=self.product + "\0witness",
                                key_material=self._key_material(),
                                legacy_key_material=self._legacy_key_material)
        return self._store

    def forget_key(self) -> None:
        """The machine key changed (a new activation started over): open the file anew."""
        self._store = None
        self._cache = None

    def read(self) -> dict[str, Any] | None:
        """The witness document, or None when there is none (or it is unreadable).

        Re-read only when the file changed (size, mtime, inode).
        """
        try:
            st = self.path.stat()
        except OSError:
            self._cache = None
            return None
        ident = (st.st_mtime_ns, st.st_size, st.st_ino)
        if self._cache is not None and self._cache[0] == ident:
            return self._cache[1]
        try:
            doc = self._witness().read()
        except StoreError:  # corrupt (moved aside) or unreadable: as if missing
            doc = None
        self._cache = (ident, doc) if doc is not None else None
        return doc

    def _license(self, license_id: str) -> dict[str, Any]:
        doc = self.read() or {}
        entry = _dict(dict(doc), "licenses").get(license_id)
        return entry if isinstance(entry, dict) else {}

    # ------------------------------------------------------------ writing

    def stamp(self, data: dict[str, Any], *, witnessed: bool) -> None:
        """Give a store document about to be written its id and next generation.

        The new generation is above both the store's and the witness's, so a
        store brought up to date online after a rollback is current again.

        Args:
            data: the store document (changed in place).
            witnessed: the last witness write succeeded (then ``witnessed`` is set).
        """
        store_id = data.get("store_id")
        if not isinstance(store_id, str):
            import secrets  # lazy: only when the store is written

            store_id = data["store_id"] = secrets.token_urlsafe(12)
        stores = (self.read() or {}).get("stores")
        seen = _int(stores.get(store_id)) if isinstance(stores, dict) else 0
        data["generation"] = max(_int(data.get("generation")), seen) + 1
        if witnessed:
            data["witnessed"] = True

    def record(self, data: Mapping[str, Any], license_id: str | None,
               token_iat: datetime | None) -> bool:
        """Merge a just-written store document into the witness.

        Merging only moves forward (highest generation, newest ``iat`` and
        high-water mark), so writers in several processes cannot undo each
        other. A stored refusal is recorded for its license; it is dropped
        only once a token issued after it was stored.

        Args:
            data: the store document as written.
            license_id, token_iat: the stored token's license and ``iat``
                (None when there is no valid token).

        Returns:
            False when the witness could not be written.
        """
        store_id = data.get("store_id")
        generation = _int(data.get("generation"))
        status = data.get("status")
        if license_id is None and isinstance(status, dict):
            owner = status.get("license_id")
            license_id = owner if isinstance(owner, str) else None
        high = _time(data.get("clock_high_water"))

        def change(doc: dict[str, Any]) -> None:
            if isinstance(store_id, str):
                stores = _dict(doc, "stores")
                stores[store_id] = max(_int(stores.get(store_id)), generation)
                _trim(stores, _int)
            floor = _later(doc.get("floor"), high)
            if license_id is not None:
                licenses = _dict(doc, "licenses")
                entry = licenses.get(license_id)
                entry = licenses[license_id] = dict(entry) if isinstance(entry, dict) else {}
                max_iat = _later(entry.get("max_iat"), token_iat)
                if max_iat is not None:
                    entry["max_iat"] = max_iat
                    floor = _later(floor, _time(max_iat))
                if isinstance(status, dict):
                    entry["status"] = dict(status)
                else:
                    entry.pop("status", None)  # the store dropped it: a newer token came
                _trim(licenses, lambda e: str(e.get("max_iat", "")))
            if floor is not None:
                doc["floor"] = floor

        return self._change(change)

    def _change(self, change: Callable[[dict[str, Any]], None]) -> bool:
        """Apply ``change`` to the witness document; False when it could not be written."""
        try:
            with self._witness().transaction() as doc:
                change(doc)
        except (StoreError, OSError, ValueError, TypeError):
            return False
        self._cache = None
        return True

    def trust_server_time(self, server_time: datetime) -> None:
        """Reset the clock part of the floor to a time the server signed.

        The floor only ever moves forward from local clocks; a clock that ran
        ahead once (a dead battery, a wrong date corrected later) would lock
        the app out for the whole gap. A fresh token's ``iat`` is the server's
        signed time: the floor becomes the later of it and every license's
        newest ``iat`` (which no local clock can forge). Best effort.
        """
        def change(doc: dict[str, Any]) -> None:
            floor: str | None = format_rfc3339(server_time)
            licenses = doc.get("licenses")
            if isinstance(licenses, dict):
                for entry in licenses.values():
                    if isinstance(entry, dict):
                        floor = _later(floor, _time(entry.get("max_iat")))
            if floor is not None:
                doc["floor"] = floor

        self._change(change)

    # ------------------------------------------------------------ the rules

    def floor(self) -> datetime | None:
        """The earliest time the clock may show (minus the skew), per the witness.

        Returns:
            The later of the witnessed clock high-water mark and the newest
            token ``iat`` of any license (aware UTC), or None without a witness.
        """
        doc = self.read()
        if doc is None:
            return None
        cached = self._floor
        if cached is not None and cached[0] is doc:
            return cached[1]
        floor = _time(doc.get("floor"))
        self._floor = (doc, floor)
        return floor

    def status_error(self, license_id: str, token_iat: datetime | None, *,
                     activation_id: str | None = None) -> LicenseError | None:
        """The witnessed refusal of ``license_id`` that applies to a token issued then."""
        return refusal_for(self._license(license_id).get("status"), token_iat,
                           activation_id=activation_id)

    def older_than_seen(self, license_id: str, token_iat: datetime) -> bool:
        """True when a token of ``license_id`` issued at ``token_iat`` is older than one stored."""
        max_iat = _time(self._license(license_id).get("max_iat"))
        return max_iat is not None and token_iat < max_iat

    def suspicion(self, data: Mapping[str, Any],
                  token: tuple[str, str, datetime] | None) -> LicenseError | None:
        """Whether the store cannot be trusted offline; the error if the server is not reached.

        Args:
            data: the store document just read.
            token: its token's ``(license id, activation id, iat)``; None: no valid token.

        Returns:
            None when the store is at least as new as its witness and no
            witnessed refusal applies to its token; else the witnessed
            refusal, or :class:`~software_dna.errors.StoreRolledBack`.
        """
        if not data:
            return None
        doc = self.read()
        if doc is None:
            if data.get("witnessed") is True and isinstance(data.get("token"), str):
                return StoreRolledBack(ROLLED_BACK)  # the witness was deleted
            return None
        if token is not None:
            refused = self.status_error(token[0], token[2], activation_id=token[1])
            if refused is not None:
                return refused
        stores = doc.get("stores")
        store_id = data.get("store_id")
        if (isinstance(stores, dict) and isinstance(store_id, str)
                and _int(data.get("generation")) < _int(stores.get(store_id))):
            return StoreRolledBack(ROLLED_BACK)
        return None
