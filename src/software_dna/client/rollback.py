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
``licenses[id]["deactivated"]``
    an air-gapped deactivation made on this machine: ``at`` (the machine's
    time of the latest one, shown to the end user), ``iat`` (the newest
    ``iat`` of a token given up: the server's signed time, so no clock on
    this machine moves it) and ``activations`` (the ids given up, newest
    last). Afterwards no token of those activations, and no token of the
    license issued at or before ``iat``, is accepted on this machine again
    (:meth:`RollbackGuard.deactivation_error`): the deactivation receipt frees
    the seat on the server, so an old token put back would be a seat used
    twice.

The store records ``witnessed: true`` once a witness write succeeded, so
deleting the witness to hide a rollback is noticed too. Whenever the store
is behind its witness, the client must reach the license server (the
authority) before the license works again; if it cannot,
:class:`~software_dna.errors.StoreRolledBack` is raised (or the witnessed
refusal, when one applies). A witness that cannot be written (read-only
folder, full disk) is skipped silently: it never stops a license that is
otherwise fine. What this does not stop -- an attacker who rolls back *every*
file and the clock -- is stated in ``docs/security.md``.

Two copies, three states
------------------------
Every write keeps the copy it replaces as ``<witness>.prev``: under the
witness's lock the current copy is renamed to ``.prev``, then the new one is
written atomically, so a crash at any point leaves a readable copy. Reading
takes the current copy, else the previous one (one write older: a store
ahead of it is normal, a store *behind* it was rolled back, and a store
*level* with it may have been put back by exactly that one write, so it is
treated as unconfirmed, below). :meth:`RollbackGuard.state` tells:

* *readable* -- the rules above apply;
* *missing* -- neither copy exists: a store that says ``witnessed`` and holds a
  token needs the server (:class:`~software_dna.errors.StoreRolledBack` offline);
* *damaged* -- a copy exists and none can be read (a power loss, a disk
  error). The files are left where they are and never rebuilt from the local
  store (that would launder a rollback): :meth:`RollbackGuard.unconfirmed`
  makes ``check()`` ask the server. A fresh token from it (a ``confirmed``
  :meth:`RollbackGuard.record`) rewrites the witness from scratch, the
  damaged copies moved aside to ``<name>.damaged-<UTC time>-<hex>``. Without
  the server the license works until the token's ``refresh_by`` (else its
  ``exp``, else the license's expiry; none of them: it keeps working), then
  ``StoreRolledBack`` with :data:`WITNESS_DAMAGED`.

Where: the anchor folder of :mod:`software_dna.client.locations`
(``$SOFTWARE_DNA_STATE_HOME`` when set); the file is
``<sha256(product id)[:32]>.witness``.
"""

from __future__ import annotations

import contextlib
import copy
import enum
import os
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from software_dna.errors import LicenseError, Message, NotActivated, StoreError, StoreRolledBack
from software_dna.files import move_aside
from software_dna.i18n import N_
from software_dna.store import Store
from software_dna.wire.codes import Code
from software_dna.wire.times import format_rfc3339, parse_rfc3339

from .locations import find_witness
from .refusals import stored_error

__all__ = ["ROLLED_BACK", "UNCONFIRMED", "WITNESS_DAMAGED", "RollbackGuard", "WitnessState",
           "deactivated_refusal", "refusal_for"]

#: Most stores / licenses remembered per product (the oldest are dropped).
_MAX_ENTRIES = 256
#: Most deactivated activations remembered per license (the oldest are dropped).
_MAX_DEACTIVATED = 64

#: Message of a detected rollback (the end user's next step: go online once).
ROLLED_BACK = N_(
    "The license files on this computer were replaced by an older copy, or one of them "
    "was deleted, so the license must be confirmed by the license server. Connect to the "
    "internet and start the application again."
)

#: The stored document's mark: written locally while the witness could not vouch for it;
#: only a token fresh from the server (a confirmed write) removes it.
UNCONFIRMED = "unconfirmed"

#: Message once the window of a damaged witness ended (the end user's next step: go online once).
WITNESS_DAMAGED = N_(
    "The license's protection file on this computer was damaged (by a power loss or a disk "
    "error), so the license must be confirmed by the license server. Connect to the internet "
    "once and start the application again: that repairs it."
)


class WitnessState(enum.Enum):
    """What is on disk of a product's witness (see the module docstring)."""

    #: The current copy, or else the previous one, can be read.
    READABLE = "readable"
    #: Neither copy exists.
    MISSING = "missing"
    #: At least one copy exists and none can be read (power loss, disk error).
    DAMAGED = "damaged"


class _Seen(NamedTuple):
    """One look at the witness: its state, its document, and which copy that came from."""

    state: WitnessState
    doc: dict[str, Any] | None = None
    previous: bool = False  # the doc is the previous copy: the current one is missing or damaged


_FileId = tuple[int, int, int] | None


def _file_id(path: Path) -> _FileId:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _move_aside(path: Path) -> None:
    """Rename a damaged copy to ``<name>.damaged-<UTC stamp>-<hex>`` (kept, never deleted)."""
    if os.path.lexists(path):
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        os.replace(path, path.with_name(f"{path.name}.damaged-{stamp}-{os.urandom(4).hex()}"))


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


#: Refusals of one activation (not of the license): they do not apply to another one.
_ONE_ACTIVATION = frozenset({Code.ACTIVATION_REMOVED.value, Code.ACTIVATION_RELEASED.value})


def _applies(status: Mapping[str, Any], token_iat: datetime | None,
             activation_id: str | None) -> bool:
    """Whether a stored status still holds for a token issued at ``token_iat``."""
    removed = status.get("activation_id")
    if (status.get("code") in _ONE_ACTIVATION and activation_id is not None
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
        activation_id: the token's activation; a removal (``activation_removed``,
            or ``activation_released`` by the license holder)
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


def deactivated_refusal(record: object, activation_id: str,
                        token_iat: datetime) -> NotActivated | None:
    """A deactivation record (``{"at", "iat", "activations"}``) as the refusal of a token.

    It applies to every token of a listed activation, whenever issued (a
    response answered again after the deactivation still names the seat the
    receipt frees), and to every token of the license issued at or before
    ``iat`` (the newest token given up; the server's signed time). Returns
    None when it does not apply.
    """
    if not isinstance(record, Mapping):
        return None
    ids = record.get("activations")
    upto = _time(record.get("iat"))
    if (isinstance(ids, list) and activation_id in ids) or (
            upto is not None and token_iat <= upto):
        at = _time(record.get("at"))
        if at is None:
            return NotActivated(N_(
                "This license was deactivated on this computer (air-gapped deactivation, "
                "earlier): the activation it gave up, and any license token from before it, "
                "cannot be used here again. To use the license here again, give the deactivation "
                "receipt to the vendor first, then create a new activation request and get a "
                "response for it."))
        return NotActivated(Message(N_(
            "This license was deactivated on this computer (air-gapped deactivation, "
            "%(time)s): the activation it gave up, and any license token from before it, "
            "cannot be used here again. To use the license here again, give the "
            "deactivation receipt to the vendor first, then create a new activation request "
            "and get a response for it."), time=format_rfc3339(at)))
    return None


class RollbackGuard:
    """The witness of one product's stores, and the rules comparing store and witness.

    Args:
        product: the product id (bound into the witness's key and associated data).
        key_material: returns the machine-bound key material (called once, lazily).
        path: the witness file (default
            :func:`~software_dna.client.locations.find_witness`, resolved lazily);
            its previous copy is ``<path>.prev``.
        legacy_key_material: returns the key material a 0.2 witness was
            written under (read once; the next write uses ``key_material``).

    The witness's own I/O is best effort: an unwritable witness is skipped. A
    damaged one is left where it is (see :meth:`state`).
    """

    def __init__(self, product: str, key_material: Callable[[], bytes],
                 *, path: Path | None = None,
                 legacy_key_material: Callable[[], bytes | None] | None = None) -> None:
        self.product = product
        self._path = path
        self._key_material = key_material
        self._legacy_key_material = legacy_key_material
        self._copies: tuple[Store, Store] | None = None
        self._cache: tuple[tuple[_FileId, _FileId], _Seen] | None = None
        self._floor: tuple[dict[str, Any], datetime | None] | None = None

    @property
    def path(self) -> Path:
        """The witness file (the current copy)."""
        if self._path is None:
            self._path = find_witness(self.product)
        return self._path

    @property
    def previous_path(self) -> Path:
        """The previous copy: the witness as it was before its latest write."""
        return self.path.with_name(self.path.name + ".prev")

    # ------------------------------------------------------------ I/O

    def _stores(self) -> tuple[Store, Store]:
        """The current and the previous copy (one key and product: a renamed copy reads)."""
        if self._copies is None:
            key = self._key_material()
            product = self.product + "\0witness"
            legacy = self._legacy_key_material
            self._copies = (
                Store(self.path, product=product, key_material=key, legacy_key_material=legacy),
                Store(self.previous_path, product=product, key_material=key,
                      legacy_key_material=legacy))
        return self._copies

    def set_aside(self) -> None:
        """The machine key was replaced (a new activation started over on a machine that
        changed too much): both copies, written under the old key, are moved aside
        (``<name>.other-machine-<UTC time>-<hex>``, never deleted) and the files are
        opened anew under the new key. Best effort."""
        for path in (self.path, self.previous_path):
            with contextlib.suppress(OSError):
                if os.path.lexists(path):
                    move_aside(path, "other-machine")
        self._copies = None
        self._cache = None

    def _load(self, copy_: Store) -> tuple[dict[str, Any] | None, bool]:
        """One copy's document (None when unreadable) and whether its file exists.

        An unreadable copy is left where it is (:meth:`Store.peek`), so that damage
        stays damage and never turns into a deleted witness (which the strict
        rule treats as a rollback).
        """
        try:
            doc = copy_.peek()
        except StoreError:  # damaged, or there but not readable (permissions, I/O error)
            return None, True
        return doc, doc is not None

    def _look(self) -> _Seen:
        """Read the witness from disk: the current copy, else the previous one.

        Each copy carries the number of its write (``seq``). The current copy
        counts as the witness only when it is the newer of the two, or when it
        is the first one ever written; otherwise someone renamed, swapped or
        duplicated a copy (the previous one put over the current one, to undo
        the last write), and the newest copy that remains only vouches as a
        previous copy does (:meth:`unconfirmed`).
        """
        current, previous = self._stores()
        doc, current_exists = self._load(current)
        prev_doc, previous_exists = self._load(previous)
        if doc is not None:
            if prev_doc is not None and _int(prev_doc.get("seq")) >= _int(doc.get("seq")) > 0:
                return _Seen(WitnessState.READABLE, prev_doc, previous=True)
            if not previous_exists and _int(doc.get("seq")) > 1:
                return _Seen(WitnessState.READABLE, doc, previous=True)
            return _Seen(WitnessState.READABLE, doc)
        doc = prev_doc
        if doc is not None:
            return _Seen(WitnessState.READABLE, doc, previous=True)
        if current_exists or previous_exists:
            return _Seen(WitnessState.DAMAGED)
        return _Seen(WitnessState.MISSING)

    def _seen(self) -> _Seen:
        """:meth:`_look`, re-done only when a copy it depends on changed (size, mtime, inode)."""
        current = _file_id(self.path)
        cached = self._cache
        if (cached is not None and current is not None and cached[0][0] == current
                and cached[1].state is WitnessState.READABLE and not cached[1].previous):
            return cached[1]  # the start-up path: one stat
        ident = (current, _file_id(self.previous_path))
        if cached is not None and cached[0] == ident:
            return cached[1]
        seen = _Seen(WitnessState.MISSING) if ident == (None, None) else self._look()
        self._cache = (ident, seen)
        return seen

    def state(self) -> WitnessState:
        """Whether the witness is readable, missing (neither copy exists) or damaged."""
        return self._seen().state

    def read(self) -> dict[str, Any] | None:
        """The witness document (the current copy, else the previous one), or None.

        None when the witness is missing or damaged. Re-read only when a file
        changed (size, mtime, inode).
        """
        return self._seen().doc

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
               token_iat: datetime | None, *, confirmed: bool = False) -> bool:
        """Merge a just-written store document into the witness.

        Merging only moves forward (highest generation, newest ``iat`` and
        high-water mark), so writers in several processes cannot undo each
        other. A stored refusal is recorded for its license; it is dropped
        only once a token issued after it was stored.

        While the witness cannot vouch for the store (damaged; missing although
        the store was witnessed; or only the previous copy is readable and the
        store was not ahead of it), only a ``confirmed`` write changes it: a
        damaged witness is then rewritten from this document alone (the
        damaged copies moved aside). Any other
        write would rebuild the witness from the local store, which is what a
        rollback would want.

        Args:
            data: the store document as written (stamped by :meth:`stamp`).
            license_id, token_iat: the stored token's license and ``iat``
                (None when there is no valid token).
            confirmed: the write stores a token fresh from the license server.

        Returns:
            False when the witness was not written (unwritable, or not vouched for).
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

        witnessed_before = data.get("witnessed") is True and isinstance(data.get("token"), str)
        unvouched = data.get(UNCONFIRMED) is True

        def allowed(seen: _Seen) -> bool:
            if confirmed:
                return True
            if unvouched:  # the store itself says the witness could not vouch for it
                return False
            if seen.state is WitnessState.MISSING:
                # A store that was witnessed lost its witness: rebuilding it from this
                # store would launder a rollback; only the server's word does.
                return not witnessed_before
            if seen.state is WitnessState.DAMAGED or seen.doc is None:
                return False
            if not seen.previous or not isinstance(store_id, str):
                return True
            stores = seen.doc.get("stores")
            before = stores.get(store_id) if isinstance(stores, dict) else None
            # stamp() made generation = max(the store's, the witnessed one) + 1: above
            # witnessed + 1 only if the store was ahead of the previous copy before.
            return before is None or generation > _int(before) + 1

        return self._change(change, allowed)

    def _change(self, change: Callable[[dict[str, Any]], None],
                allowed: Callable[[_Seen], bool]) -> bool:
        """Apply ``change`` to the witness document, keeping the copy it replaces.

        Under the witness's lock: read the witness, ask ``allowed`` whether this
        write may go ahead, then rename the current copy to ``.prev`` and write
        the new one (temporary file, fsync, atomic rename). In that order a
        crash at any point leaves a readable copy: before the first rename the
        current one; between the renames the previous one (the current one is
        missing, so reading falls back to it); after both, both. Writing the new
        copy first would need a third name (the old one must survive until the
        new one is in place), and :class:`Store` writes only its own path.

        Returns:
            False when it was not written (not allowed, or an I/O error).
        """
        try:
            current, _ = self._stores()
            with current.locked():
                seen = self._look()
                if not allowed(seen):
                    return False
                base = seen.doc if seen.state is WitnessState.READABLE and seen.doc else {}
                doc = copy.deepcopy(base)
                change(doc)
                if doc == base and seen.state is WitnessState.READABLE and not seen.previous:
                    return True
                # Each write numbers its copy: a copy renamed, swapped or duplicated over
                # a newer one is seen by the numbers (see _look).
                doc["seq"] = _int(base.get("seq")) + 1
                if seen.state is WitnessState.READABLE and not seen.previous:
                    os.replace(self.path, self.previous_path)
                else:  # rewritten: the damaged copies are kept aside, never deleted
                    _move_aside(self.path)
                    if seen.state is WitnessState.DAMAGED:
                        _move_aside(self.previous_path)
                    elif seen.doc is not None:
                        # The copy this write continues becomes the previous copy again,
                        # so the pair is whole (and numbered) after one vouched write.
                        self._stores()[1].write(base)
                current.write(doc)
        except (StoreError, OSError, ValueError, TypeError):
            return False
        finally:
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

        # Only onto a witness that vouches for itself: a damaged one is rewritten by
        # the confirmed record() that follows, from the store then written.
        self._change(change, lambda seen: seen.state is WitnessState.MISSING or (
            seen.state is WitnessState.READABLE and not seen.previous))

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

    def record_deactivation(self, license_id: str, activation_id: str, at: datetime,
                            token_iat: datetime) -> bool:
        """Witness an air-gapped deactivation of ``activation_id`` at ``at`` (aware UTC).

        ``token_iat``: the ``iat`` of the token given up (aware UTC); every token
        of the license issued up to it is refused from now on.

        Written whatever state the witness is in (a damaged one is rewritten
        with it): it only ever refuses more, so it cannot launder a rollback.

        Returns:
            False when the witness could not be written (best effort, like every
            witness write).
        """
        def change(doc: dict[str, Any]) -> None:
            entry = _dict(doc, "licenses").get(license_id)
            entry = _dict(doc, "licenses")[license_id] = (
                dict(entry) if isinstance(entry, dict) else {})
            old = entry.get("deactivated")
            old = old if isinstance(old, dict) else {}
            ids = [i for i in old.get("activations", []) if isinstance(i, str)] \
                if isinstance(old.get("activations"), list) else []
            if activation_id not in ids:
                ids.append(activation_id)
            entry["deactivated"] = {"at": _later(old.get("at"), at),
                                    "iat": _later(old.get("iat"), token_iat),
                                    "activations": ids[-_MAX_DEACTIVATED:]}

        return self._change(change, lambda seen: True)

    def deactivation_error(self, license_id: str, activation_id: str,
                           token_iat: datetime) -> NotActivated | None:
        """The refusal of a token given up by an air-gapped deactivation on this machine.

        Args:
            license_id, activation_id, token_iat: the token's license,
                activation and ``iat`` (aware UTC).

        Returns:
            :class:`~software_dna.errors.NotActivated` when the token belongs to
            an activation deactivated here, or was issued before the latest
            deactivation of its license here; else None.
        """
        return deactivated_refusal(self._license(license_id).get("deactivated"),
                                   activation_id, token_iat)

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
            refusal, or :class:`~software_dna.errors.StoreRolledBack`. A
            damaged witness gives None here: see :meth:`unconfirmed`.
        """
        if not data:
            return None
        seen = self._seen()
        if seen.state is WitnessState.MISSING:
            if data.get("witnessed") is True and isinstance(data.get("token"), str):
                return StoreRolledBack(ROLLED_BACK)  # the witness was deleted
            return None
        doc = seen.doc
        if doc is None:
            return None  # damaged
        if token is not None:
            refused = self.status_error(token[0], token[2], activation_id=token[1])
            refused = refused or self.deactivation_error(token[0], token[1], token[2])
            if refused is not None:
                return refused
        if _int(data.get("generation")) < self._witnessed(doc, data):
            return StoreRolledBack(ROLLED_BACK)
        return None

    def unconfirmed(self, data: Mapping[str, Any]) -> bool:
        """Whether the store holds a token the witness cannot vouch for (not a rollback).

        True when the witness is damaged, or when only its previous copy is
        readable and the store is not ahead of it: an honest store is at
        least one generation ahead of the previous copy (the copy that
        cannot be read was written after it, for a newer store), while a
        store put back by exactly one write, with the current copy destroyed
        to hide it, is level with it. Either way the license server must
        confirm the store; until it does, :meth:`record` changes nothing, and
        every local write of the store marks it (:data:`UNCONFIRMED`), so that
        its new generation never passes for "ahead".

        Args:
            data: the store document just read.
        """
        if not isinstance(data.get("token"), str):
            return False
        if data.get(UNCONFIRMED) is True:  # marked at a local write while not vouched for
            return True
        seen = self._seen()
        if seen.state is WitnessState.DAMAGED:
            return True
        if seen.doc is None or not seen.previous:
            return False
        witnessed = self._witnessed(seen.doc, data)
        return witnessed > 0 and _int(data.get("generation")) <= witnessed

    @staticmethod
    def _witnessed(doc: Mapping[str, Any], data: Mapping[str, Any]) -> int:
        """The generation ``doc`` records for the store ``data`` (0: none)."""
        stores = doc.get("stores")
        store_id = data.get("store_id")
        if isinstance(stores, dict) and isinstance(store_id, str):
            return _int(stores.get(store_id))
        return 0
