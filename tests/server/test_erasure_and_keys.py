"""Erasure (nothing left in the database) and signing-key rotation, on SQLite and PostgreSQL.

Through the HTTP API of the app in-process (tests/inprocess.py).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from software_dna.errors import InvalidToken
from software_dna.server.adminclient import AdminError
from software_dna.server.db import checkpoint_job
from software_dna.server.testing import LocalServer
from software_dna.wire.claims import Mode
from tests.server.helpers import Api, check_receipt, check_token, error_code

from ..inprocess import InProcessServer


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """Only the HTTP API is tested here: the app in-process (no subprocess, no socket)."""
    return inprocess_server


@pytest.fixture(scope="module")
def any_server(inprocess_any_server: InProcessServer) -> InProcessServer:
    """Only the HTTP API is tested here: the app in-process on ``database_url``."""
    return inprocess_any_server


@pytest.fixture
def api(any_server: LocalServer) -> Iterator[Api]:
    client = Api.for_server(any_server)
    yield client
    client.close()


def _db_rows(srv: LocalServer, sql: str) -> list[tuple[object, ...]]:
    engine = create_engine(srv.database_url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        engine.dispose()


def _sqlite_path(srv: LocalServer) -> Path:
    return Path(srv.database_url.removeprefix("sqlite:///"))


def _raw_database(srv: LocalServer) -> bytes:
    """Every byte the database holds: the SQLite files, or every PostgreSQL row as text."""
    if srv.database_url.startswith("sqlite"):
        path = _sqlite_path(srv)
        data = b""
        for suffix in ("", "-wal", "-journal"):
            p = Path(str(path) + suffix)
            if p.exists():
                data += p.read_bytes()
        return data
    engine = create_engine(srv.database_url)
    try:
        chunks: list[str] = []
        with engine.connect() as conn:
            for table in inspect(conn).get_table_names():
                for (row,) in conn.execute(text(f'SELECT t::text FROM "{table}" t')):
                    chunks.append(row)
        return "\n".join(chunks).encode()
    finally:
        engine.dispose()


def _raw_database_after_erasure(srv: LocalServer, needles: list[bytes],
                                timeout: float = 30.0) -> bytes:
    """:func:`_raw_database` once the erasure's WAL checkpoint has run.

    The checkpoint runs off the request path, at most once per
    ``erasure_checkpoint_interval`` (db.CheckpointJob).  In process: the job is
    made to run its pending checkpoint now (what the interval would do).  A
    server process: the files are read until no needle is left or ``timeout``
    seconds passed (the caller then reports what is still there).
    """
    if isinstance(srv, InProcessServer):
        assert checkpoint_job(srv.app.state.sdna.engine).flush()
        return _raw_database(srv)
    deadline = time.monotonic() + timeout
    while True:
        data = _raw_database(srv)
        if not any(n in data for n in needles) or time.monotonic() > deadline:
            return data
        time.sleep(0.2)


def _needles(srv: LocalServer, end_user_id: str, email: str,
             registration: dict[str, str]) -> tuple[list[bytes], list[bytes]]:
    """What must disappear: (clear texts, stored forms: ciphertexts and the email's hash)."""
    rows = _db_rows(srv, "SELECT email_ciphertext, registration_ciphertext, email_index "
                         f"FROM end_users WHERE id = '{end_user_id}'")
    email_ct, reg_ct, index = rows[0]
    assert isinstance(email_ct, (bytes, memoryview)) and isinstance(index, str)
    assert isinstance(reg_ct, (bytes, memoryview))
    clear = [email.encode(), email.lower().encode()] + [v.encode() for v in registration.values()]
    stored = [index.encode()]
    if srv.database_url.startswith("sqlite"):
        stored += [bytes(email_ct)[-24:], bytes(reg_ct)[-24:]]
    else:
        stored += [bytes(email_ct).hex()[-48:].encode(), bytes(reg_ct).hex()[-48:].encode()]
    return clear, stored


@pytest.mark.parametrize("who", ["vendor", "end_user"])
def test_erasure_leaves_nothing_and_limits_the_license(any_server: LocalServer, api: Api,
                                                       who: str) -> None:
    pid = "er-" + secrets.token_hex(4)
    keys = any_server.admin.setup_product(pid, features=["pro"], limited_features=["view"])
    issued = any_server.admin.issue_license(pid, seats=3, password="pass-word-1")
    email = f"zelda.{secrets.token_hex(3)}@example.org"
    registration = {"name": f"Zelda Q{secrets.token_hex(3)}",
                    "company": f"Q{secrets.token_hex(4)}Co"}
    first = api.activate(pid, issued["license_key"], password="pass-word-1", email=email,
                         registration=registration, consent=True).json()
    # A second machine without personal data on the same license.
    second = api.activate(pid, issued["license_key"], machine="other",
                          password="pass-word-1").json()
    settings = api.put_settings(first["activation_id"], first["activation_secret"],
                                {"signature": f"Regards, {registration['name']}"})
    assert settings.status_code == 200
    (user,) = any_server.admin.find_end_users(email)
    clear, stored = _needles(any_server, user["id"], email, registration)
    before = _raw_database(any_server)
    assert all(n in before for n in stored)  # the search does see the stored forms
    assert not any(n in before for n in clear)  # encrypted at rest

    if who == "vendor":
        any_server.admin.erase_end_user(user["id"])
    else:
        answer = api.erasure(first["activation_id"], first["activation_secret"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        lic = check_token(body["token"], keys, pid)
        assert lic.mode is Mode.LIMITED and lic.email is None
        assert check_receipt(body["receipt"], keys, pid)["result"] == "erased"

    after = _raw_database_after_erasure(any_server, clear + stored)
    for needle in clear + stored:
        assert needle not in after, needle
    assert any_server.admin.find_end_users(email) == []
    exported = any_server.admin.export_end_user(user["id"])
    assert exported["email"] is None and exported["registration"] is None
    assert exported["erased_at"] is not None and exported["settings"] == {}

    # Both activations keep working, in limited mode.
    for a in (first, second):
        answer = api.validate(a["activation_id"], a["activation_secret"],
                              machine="m1" if a is first else "other")
        assert answer.status_code == 200, answer.text
        lic = check_token(answer.json()["token"], keys, pid)
        assert lic.mode is Mode.LIMITED
        assert lic.features == frozenset({"view"})
        assert lic.email is None and lic.registration is None
    settings_after = api.get_settings(first["activation_id"], first["activation_secret"])
    assert settings_after.json()["settings"] == {}

    # The password hash is gone: a new activation needs the vendor to set a new one.
    shown = any_server.admin.get_license(issued["id"])
    assert shown["password_set"] is False and shown["password_reset_required"] is True
    refused = api.activate(pid, issued["license_key"], machine="third", password="pass-word-1")
    assert refused.status_code == 403 and error_code(refused) == "password_reset_required"
    any_server.admin.set_password(issued["id"], "new-pass")
    again = api.activate(pid, issued["license_key"], machine="third", password="new-pass")
    assert again.status_code == 201
    assert check_token(again.json()["token"], keys, pid).mode is Mode.LIMITED

    # The audit log says what happened, with ids only.
    entries = any_server.admin.audit(license_id=issued["id"])
    assert "end_user.erase" in [e["action"] for e in any_server.admin.audit(limit=1000)]
    assert email.encode() not in str(entries).encode()


def test_rotation(any_server: LocalServer, api: Api) -> None:
    pid = "rot-" + secrets.token_hex(4)
    old_keys = any_server.admin.setup_product(pid)
    (old,) = any_server.admin.list_keys(pid)
    assert old["status"] == "active"
    key = any_server.admin.issue_license(pid)["license_key"]
    a = api.activate(pid, key).json()
    old_token = a["token"]
    check_token(old_token, old_keys, pid)

    new = any_server.admin.rotate_key(pid)
    assert new["status"] == "active" and new["kid"] != old["kid"]
    statuses = {k["kid"]: k["status"] for k in any_server.admin.list_keys(pid)}
    assert statuses == {old["kid"]: "trusted", new["kid"]: "active"}
    both = any_server.admin.public_keys(pid)
    assert both == [new["public_key"], old["public_key"]]

    fresh = api.validate(a["activation_id"], a["activation_secret"]).json()["token"]
    check_token(fresh, [new["public_key"]], pid)  # signed by the new key
    with pytest.raises(InvalidToken):
        check_token(fresh, old_keys, pid)  # an app that only knows the old key
    check_token(old_token, both, pid)  # old tokens still verify until retirement

    with pytest.raises(AdminError) as info:
        any_server.admin.retire_key(pid, new["kid"])
    assert info.value.status == 409  # the active key cannot be retired

    retired = any_server.admin.retire_key(pid, old["kid"])
    assert retired["status"] == "retired" and retired["retired_at"]
    exported = any_server.admin.public_keys(pid)
    assert exported == [new["public_key"]]
    with pytest.raises(InvalidToken):
        check_token(old_token, exported, pid)
    check_token(fresh, exported, pid)

    # Pre-publishing: generate a trusted key, ship it, then rotate to it.
    staged = any_server.admin.generate_key(pid)
    assert staged["status"] == "trusted"
    assert staged["public_key"] in any_server.admin.public_keys(pid)
    promoted = any_server.admin.rotate_key(pid, kid=staged["kid"])
    assert promoted["kid"] == staged["kid"] and promoted["status"] == "active"
    token = api.validate(a["activation_id"], a["activation_secret"]).json()["token"]
    check_token(token, [staged["public_key"]], pid)
    with pytest.raises(AdminError):
        any_server.admin.rotate_key(pid, kid=old["kid"])  # retired keys never come back


def test_sqlite_secure_delete_and_wal(server: LocalServer) -> None:
    """The SQLite database is in WAL mode with secure_delete and foreign keys on."""
    api = Api.for_server(server)
    try:
        pid = "wal-" + secrets.token_hex(3)
        server.admin.setup_product(pid)
        api.activate(pid, server.admin.issue_license(pid)["license_key"])
    finally:
        api.close()
    conn = sqlite3.connect(_sqlite_path(server))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
