"""The vendor commands of the ``software-dna`` CLI, end to end.

In process (``main([...])`` with capsys) on a fresh SQLite data folder set
up by ``software-dna server init``; through the admin API over HTTP (the app
in this process behind uvicorn on a thread, tests/threaded.py: the remote mode
opens its own connections, so it needs a socket); and in a real subprocess.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from software_dna.server import cli
from software_dna.server import services as service
from software_dna.server.cli import _common, direct
from software_dna.server.config import Settings
from software_dna.server.db import make_engine, make_session_factory
from software_dna.server.testing import LocalServer, free_port
from tests.fixtures_server import PgDatabases

from ..threaded import ThreadedServer

GROUPS = {
    "products": ["create", "list", "show", "configure", "logo"],
    "keys": ["generate", "list", "rotate", "retire", "export"],
    "licenses": ["issue", "list", "show", "suspend", "resume", "revoke", "set", "password"],
    "activations": ["list", "remove"],
    "end-users": ["find", "export", "erase"],
}
ENV_CLEARED = (
    "DATABASE_URL",
    "SOFTWARE_DNA_DATABASE_URL",
    "SOFTWARE_DNA_MASTER_KEY",
    "SOFTWARE_DNA_MASTER_KEY_FILE",
    _common.ENV_SERVER_URL,
    _common.ENV_ADMIN_KEY,
)
EMAIL = "ana.tester@example.com"
REG_NAME = "Ana Registrationname"


# --------------------------------------------------------------------------- helpers


@dataclass
class Result:
    """Exit code and output of one command."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout as JSON."""
        return json.loads(self.out)


def _main(argv: list[str]) -> int:
    return cli.main(argv)


def _invoke(argv: list[str]) -> int:
    try:
        return _main(argv)
    except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
        return exc.code if isinstance(exc.code, int) else 1


class Runner:
    """Runs ``software-dna`` in process, capturing its output."""

    def __init__(self, capsys: pytest.CaptureFixture[str],
                 monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, stdin: str | None = None, ok: bool = True) -> Result:
        """Run one command; with ``ok`` (default) assert that it succeeded."""
        self.monkeypatch.setattr(sys, "stdin", io.StringIO(stdin or ""))
        self.capsys.readouterr()
        code = _invoke(list(argv))
        out, err = self.capsys.readouterr()
        result = Result(code, out, err)
        assert "Traceback" not in err
        if ok:
            assert code == 0, (argv, err)
        return result

    def fail(self, *argv: str, code: int = 1, stdin: str | None = None) -> str:
        """Run a command that must fail with ``code``; returns its one-line stderr."""
        result = self(*argv, stdin=stdin, ok=False)
        assert result.code == code, (argv, result)
        lines = result.err.strip().splitlines()
        if code == 1:
            assert len(lines) == 1, result.err
            assert lines[0].startswith("software-dna: error: ")
        if code == 2:  # docs/cli.md: the usage line, then "Error: ..."
            assert lines[0].startswith("Usage: software-dna "), result.err
            assert lines[-1].startswith("Error: "), result.err
            assert "software-dna: error" not in result.err
            assert "Value error" not in result.err
            assert "{" not in lines[0], lines[0]
        return result.err.strip()


def _clean_env(mp: pytest.MonkeyPatch, home: Path) -> None:
    for name in ENV_CLEARED:
        mp.delenv(name, raising=False)
    mp.setenv("SOFTWARE_DNA_SERVER_HOME", str(home))


def _init(home: Path) -> str:
    """``software-dna server init`` in ``home``; returns the admin key it printed."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        assert _invoke(["server", "init"]) == 0, err.getvalue()
    keys: list[str] = re.findall(r"^(sdna_admin_\S+)$", out.getvalue(), re.M)
    assert len(keys) == 1
    return keys[0]


def _component(seed: str, name: str) -> str:
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _fingerprint(seed: str) -> dict[str, Any]:
    comps: dict[str, Any] = {n: _component(seed, n) for n in ("machine_id", "os_arch", "cpu")}
    comps["mac"] = [_component(seed, "mac")]
    return {"algorithm": 2, "components": comps}


def _activate_direct(product: str, key: str, *, password: str | None = None,
                     personal: bool = False, machine: str = "m1") -> str:
    """Activate through the service layer (the database of $SOFTWARE_DNA_SERVER_HOME)."""
    settings = Settings.from_env()
    ctx = service.Context.from_settings(settings)
    engine = make_engine(settings, pooled=False)
    fp = _fingerprint(machine)
    try:
        with make_session_factory(engine)() as session:
            done = service.activate(session, ctx, service.ActivationRequest(
                product=product, license_key=key,
                fingerprint=service.parse_fingerprint(fp["algorithm"], fp["components"]),
                nonce=secrets.token_urlsafe(18), idempotency_key=secrets.token_urlsafe(18),
                password=password,
                email=EMAIL if personal else None,
                registration={"name": REG_NAME} if personal else None,
                consent=personal,
            ))
            return done.activation_id
    finally:
        engine.dispose()


def _activate_http(url: str, product: str, key: str, *, password: str | None = None,
                   machine: str = "m1") -> str:
    body: dict[str, Any] = {
        "product": product, "license_key": key, "fingerprint": _fingerprint(machine),
        "nonce": secrets.token_urlsafe(18), "idempotency_key": secrets.token_urlsafe(18),
        "email": EMAIL, "registration": {"name": REG_NAME}, "consent": True,
    }
    if password is not None:
        body["password"] = password
    with requests.Session() as http:
        answer = http.post(f"{url}/v1/activations", json=body, timeout=30)
    assert answer.status_code == 201, answer.text
    activation_id: str = answer.json()["activation_id"]
    return activation_id


def _issued_key(result: Result) -> str:
    keys: list[str] = re.findall(r"^\s+([A-Z0-9]{1,12}(?:-[A-Z0-9]{4})+)$", result.out, re.M)
    assert len(keys) == 1, result.out
    return keys[0]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A data folder set up by ``software-dna server init``; the environment points at it."""
    folder = tmp_path_factory.mktemp("vendor-home")
    with pytest.MonkeyPatch.context() as mp:
        _clean_env(mp, folder)
        _init(folder)
        yield folder


@pytest.fixture
def sdna(home: Path, capsys: pytest.CaptureFixture[str],
         monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Runs commands against the database of ``home`` (direct mode)."""
    return Runner(capsys, monkeypatch)


@pytest.fixture(scope="module")
def local_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """The license server over HTTP (its own data folder; the app in this process)."""
    folder = tmp_path_factory.mktemp("vendor-remote")
    with pytest.MonkeyPatch.context() as mp:
        for name in ENV_CLEARED:
            mp.delenv(name, raising=False)
        with ThreadedServer(folder / "server") as srv:
            yield srv


@pytest.fixture
def remote(local_server: LocalServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
           monkeypatch: pytest.MonkeyPatch) -> Runner:
    """Runs commands through the admin API (URL and key from the environment)."""
    _clean_env(monkeypatch, tmp_path / "no-such-home")  # direct mode would fail
    monkeypatch.setenv(_common.ENV_SERVER_URL, local_server.url)
    monkeypatch.setenv(_common.ENV_ADMIN_KEY, local_server.admin_key)
    return Runner(capsys, monkeypatch)


# --------------------------------------------------------------------------- help


def test_top_level_help_lists_every_group(capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    result = Runner(capsys, monkeypatch)("--help")
    for group in [*GROUPS, "audit", "server"]:
        assert re.search(rf"^\s+{re.escape(group)}\s", result.out, re.M), group


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_help_is_short_and_lists_its_commands(
    group: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = Runner(capsys, monkeypatch)(group, "--help")
    assert result.out.startswith(f"Usage: software-dna {group} ")
    assert len(result.out.splitlines()) <= 30
    for command in GROUPS[group]:
        assert re.search(rf"^\s+{command}\s*(\S.*)?$", result.out, re.M), command


@pytest.mark.parametrize(
    "argv",
    [[g, c] for g, commands in sorted(GROUPS.items()) for c in commands] + [["audit"]],
    ids=" ".join,
)
def test_every_command_has_a_help(argv: list[str], capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    result = Runner(capsys, monkeypatch)(*argv, "--help")
    assert result.out.startswith(f"Usage: software-dna {' '.join(argv)} ")
    assert "--json" in result.out
    assert "--server-url" in result.out
    # a description paragraph after the usage block
    assert re.search(r"\n\n[A-Z][^\n]+", result.out)


@pytest.mark.parametrize("group", sorted(GROUPS))
def test_group_without_a_command_prints_help_and_exits_2(
    group: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = Runner(capsys, monkeypatch)(group, ok=False)
    assert result.code == 2
    assert f"Usage: software-dna {group}" in result.err


# --------------------------------------------------------------------------- products


def test_products_create_list_show_configure(sdna: Runner) -> None:
    created = sdna("products", "create", "acme-notes", "--name", "Acme Notes",
                   "--protection", "mandatory", "--refresh-interval", "12h",
                   "--offline-grace", "3600", "--tolerance", "0",
                   "--features", "export,sync", "--limited-features", "export",
                   "--password-required")
    assert "Created product acme-notes." in created.out
    assert "password required:     yes" in created.out

    shown = sdna("products", "show", "acme-notes", "--json").json()
    assert shown["id"] == "acme-notes"
    assert shown["name"] == "Acme Notes"
    assert shown["protection"] == "mandatory"
    assert shown["refresh_interval"] == 12 * 3600
    assert shown["offline_grace_period"] == 3600
    assert shown["fingerprint_tolerance"] == 0
    assert shown["features"] == ["export", "sync"]
    assert shown["limited_features"] == ["export"]
    assert shown["password_required"] is True

    human = sdna("products", "show", "acme-notes").out
    assert "refresh interval:      43200 s (12h)" in human

    listed = sdna("products", "list")
    assert re.search(r"^acme-notes\s+Acme Notes\s+mandatory\s", listed.out, re.M)
    ids = [p["id"] for p in sdna("products", "list", "--json").json()["products"]]
    assert "acme-notes" in ids

    changed = sdna("products", "configure", "acme-notes", "--no-password-required",
                   "--offline-grace-period", "2d", "--fingerprint-tolerance", "0",
                   "--features", "", "--name", "Notes")
    assert "Updated product acme-notes" in changed.out
    after = sdna("products", "show", "acme-notes", "--json").json()
    assert after["password_required"] is False
    assert after["offline_grace_period"] == 2 * 86400
    assert after["fingerprint_tolerance"] == 0
    assert after["features"] == []
    assert after["name"] == "Notes"
    assert after["protection"] == "mandatory"  # untouched

    configured = sdna("products", "configure", "acme-notes", "--protection", "offline",
                      "--json").json()
    assert configured["protection"] == "offline"


def test_products_refusals(sdna: Runner) -> None:
    sdna("products", "create", "dup-product", "--name", "D")
    assert "already exists" in sdna.fail("products", "create", "dup-product", "--name", "D")
    assert "product id" in sdna.fail("products", "create", "Bad Id!", "--name", "x")
    assert "refresh_interval" in sdna.fail("products", "create", "short-refresh",
                                           "--refresh-interval", "5")
    assert "invalid choice" in sdna.fail("products", "create", "p2", "--protection", "always",
                                         code=2)
    assert "not a duration" in sdna.fail("products", "create", "p3", "--refresh-interval",
                                         "soon", code=2)
    assert "Nothing to change" in sdna.fail("products", "configure", "dup-product", code=2)
    assert sdna.fail("products", "show", "nope") == \
        "software-dna: error: No such product: 'nope'."
    assert "No such product: 'nope'" in sdna.fail("products", "configure", "nope",
                                                  "--name", "x")


# --------------------------------------------------------------------------- keys


def test_keys_generate_list_rotate_retire_export(sdna: Runner) -> None:
    sdna("products", "create", "keyed", "--name", "Keyed")
    assert "no signing key" in sdna.fail("keys", "export", "keyed")
    assert "No signing keys" in sdna("keys", "list", "keyed").out

    first = sdna("keys", "generate", "keyed", "--json").json()
    assert first["status"] == "active"
    assert first["kid"].startswith("k4.pid.")
    second = sdna("keys", "generate", "keyed")
    assert "(trusted)" in second.out
    assert "keys rotate keyed --kid" in second.out
    kid2 = re.findall(r"k4\.pid\.[A-Za-z0-9_-]+", second.out)[0]

    exported = sdna("keys", "export", "keyed").out.splitlines()
    assert len(exported) == 2
    assert all(line.startswith("k4.public.") for line in exported)
    assert exported[0] == first["public_key"]  # active first
    assert sdna("keys", "export", "keyed", "--json").json() == {
        "product": "keyed", "public_keys": exported}

    listed = sdna("keys", "list", "keyed")
    assert re.search(rf"^{re.escape(first['kid'])}\s+active\s", listed.out, re.M)
    assert re.search(rf"^{re.escape(kid2)}\s+trusted\s", listed.out, re.M)

    assert "active key cannot be retired" in sdna.fail("keys", "retire", "keyed", first["kid"])

    rotated = sdna("keys", "rotate", "keyed", "--kid", kid2)
    assert f"Key {kid2} now signs for keyed" in rotated.out
    retired = sdna("keys", "retire", "keyed", first["kid"])
    assert "Retired key" in retired.out
    assert sdna("keys", "export", "keyed").out.splitlines() == [exported[1]]

    fresh = sdna("keys", "rotate", "keyed", "--json").json()
    assert fresh["status"] == "active"
    assert fresh["kid"] not in (first["kid"], kid2)
    statuses = {k["kid"]: k["status"] for k in sdna("keys", "list", "keyed", "--json").json()[
        "keys"]}
    assert statuses == {first["kid"]: "retired", kid2: "trusted", fresh["kid"]: "active"}
    assert "only a trusted key" in sdna.fail("keys", "rotate", "keyed", "--kid", first["kid"])

    for argv in (["keys", "generate", "nope"], ["keys", "list", "nope"],
                 ["keys", "rotate", "nope"], ["keys", "export", "nope"],
                 ["keys", "retire", "nope", first["kid"]]):
        assert "No such product: 'nope'" in sdna.fail(*argv)
    assert "No such signing key: 'k4.pid.unknown'" in sdna.fail("keys", "retire", "keyed",
                                                                  "k4.pid.unknown")


# --------------------------------------------------------------------------- licenses


@pytest.fixture
def product(sdna: Runner) -> str:
    """A fresh product with a signing key."""
    name = "prod-" + secrets.token_hex(4)
    sdna("products", "create", name, "--name", "P", "--features", "pro,sync",
         "--limited-features", "sync")
    sdna("keys", "generate", name)
    return name


def test_licenses_issue_prints_the_key_once(sdna: Runner, product: str) -> None:
    issued = sdna("licenses", "issue", product, "--seats", "3", "--prefix", "ACME",
                  "--expires", "2031-05-01T12:00:00+02:00", "--features", "pro",
                  "--password-stdin", stdin="s3cret pass\n")
    key = _issued_key(issued)
    assert key.startswith("ACME-")
    assert issued.out.count(key) == 1
    assert "s3cret" not in issued.out + issued.err
    assert "3 seat(s), expires 2031-05-01T10:00:00Z, features pro, password set" in issued.out
    license_id = re.findall(r"lic_[A-Za-z0-9_-]+", issued.out)[0]

    shown = sdna("licenses", "show", license_id, "--json").json()
    assert shown["key_hint"] == "…-" + key[-4:]
    assert shown["seats"] == 3
    assert shown["seats_in_use"] == 0
    assert shown["expires_at"] == "2031-05-01T10:00:00Z"
    assert shown["features"] == ["pro"]
    assert shown["password_set"] is True
    assert "license_key" not in shown
    human = sdna("licenses", "show", license_id).out
    assert key not in human
    assert "seats in use: 0/3" in human

    # the key works: an activation with the password takes a seat
    _activate_direct(product, key, password="s3cret pass")
    assert sdna("licenses", "show", license_id, "--json").json()["seats_in_use"] == 1

    as_json = sdna("licenses", "issue", product, "--json").json()
    assert re.fullmatch(r"[A-Z0-9]{4}(-[A-Z0-9]{4})+", as_json["license_key"])
    assert as_json["features"] == ["pro", "sync"]  # the product's
    assert as_json["expires_at"] is None
    assert as_json["password_set"] is False


def test_licenses_list_and_status_changes(sdna: Runner, product: str) -> None:
    ids = [sdna("licenses", "issue", product, "--json").json()["id"] for _ in range(2)]
    listed = sdna("licenses", "list", "--product", product)
    for license_id in ids:
        assert re.search(rf"^{license_id}\s+{product}\s+…-\S{{4}}\s+active\s+0/1\s+never\s",
                         listed.out, re.M)
    as_json = sdna("licenses", "list", "--product", product, "--json").json()["licenses"]
    assert sorted(lic["id"] for lic in as_json) == sorted(ids)
    assert len(sdna("licenses", "list", "--product", product, "--limit", "1",
                    "--json").json()["licenses"]) == 1
    assert len(sdna("licenses", "list", "--json").json()["licenses"]) >= 2

    target = ids[0]
    assert f"License {target} is now suspended." in sdna("licenses", "suspend", target).out
    assert sdna("licenses", "show", target, "--json").json()["status"] == "suspended"
    assert f"License {target} is now active." in sdna("licenses", "resume", target).out
    assert sdna("licenses", "revoke", target, "--json").json()["status"] == "revoked"
    assert "cannot be changed back" in sdna.fail("licenses", "resume", target)
    assert "revoked" in sdna("licenses", "list", "--product", product).out


def test_licenses_set(sdna: Runner, product: str) -> None:
    license_id = sdna("licenses", "issue", product, "--expires", "2030-01-01T00:00:00Z",
                      "--json").json()["id"]
    changed = sdna("licenses", "set", license_id, "--seats", "5", "--features", "sync",
                   "--expires", "2032-02-02T02:02:02Z")
    assert "Updated license" in changed.out
    shown = sdna("licenses", "show", license_id, "--json").json()
    assert (shown["seats"], shown["features"], shown["expires_at"]) == (
        5, ["sync"], "2032-02-02T02:02:02Z")
    never = sdna("licenses", "set", license_id, "--expires", "never", "--json").json()
    assert never["expires_at"] is None
    assert never["seats"] == 5  # untouched
    cleared = sdna("licenses", "set", license_id, "--features", "", "--json").json()
    assert cleared["features"] == []
    assert "Nothing to change" in sdna.fail("licenses", "set", license_id, code=2)
    assert "RFC 3339" in sdna.fail("licenses", "set", license_id, "--expires", "tomorrow",
                                   code=2)
    assert "RFC 3339" in sdna.fail("licenses", "set", license_id, "--expires",
                                   "2030-01-01T00:00:00", code=2)  # no offset
    assert "at least 1" in sdna.fail("licenses", "set", license_id, "--seats", "0", code=2)


def test_licenses_password(sdna: Runner, product: str) -> None:
    license_id = sdna("licenses", "issue", product, "--json").json()["id"]
    result = sdna("licenses", "password", license_id, "--set", "first-pw")
    assert "Set a new activation password" in result.out
    assert "first-pw" not in result.out
    assert sdna("licenses", "show", license_id, "--json").json()["password_set"] is True
    piped = sdna("licenses", "password", license_id, "--stdin", stdin="second-pw\n")
    assert "second-pw" not in piped.out
    assert "No password on standard input" in sdna.fail(
        "licenses", "password", license_id, "--stdin", stdin="", code=2)
    cleared = sdna("licenses", "password", license_id, "--clear")
    assert "Removed the activation password" in cleared.out
    assert sdna("licenses", "show", license_id, "--json").json()["password_set"] is False
    sdna.fail("licenses", "password", license_id, code=2)  # one of --set/--stdin/--clear
    sdna.fail("licenses", "password", license_id, "--set", "a", "--clear", code=2)

    # a product that requires a password
    sdna("products", "configure", product, "--password-required")
    assert "requires an activation password" in sdna.fail("licenses", "issue", product)
    assert "requires an activation password" in sdna.fail("licenses", "password", license_id,
                                                          "--clear")
    issued = sdna("licenses", "issue", product, "--password", "given-pw", "--json").json()
    assert issued["password_set"] is True
    sdna.fail("licenses", "issue", product, "--password", "x", "--password-stdin", code=2)


def test_licenses_refusals(sdna: Runner, product: str) -> None:
    assert sdna.fail("licenses", "issue", "nope") == \
        "software-dna: error: No such product: 'nope'."
    assert "No such product: 'nope'" in sdna.fail("licenses", "list", "--product", "nope")
    for command in ("show", "suspend", "resume", "revoke"):
        assert sdna.fail("licenses", command, "lic_nope") == \
            "software-dna: error: No such license: 'lic_nope'."
    assert "No such license: 'lic_nope'" in sdna.fail("licenses", "set", "lic_nope",
                                                       "--seats", "2")
    assert "No such license: 'lic_nope'" in sdna.fail("licenses", "password", "lic_nope",
                                                      "--set", "pw")
    assert "seats must be" in sdna.fail("licenses", "issue", product, "--seats", "100001")
    assert "RFC 3339" in sdna.fail("licenses", "issue", product, "--expires", "2030-13-01",
                                   code=2)
    assert "invalid_request" in sdna.fail("licenses", "issue", product, "--prefix", "AC-ME")
    assert "Bad name in features" in sdna.fail("licenses", "issue", product,
                                               "--features", "ok,bad feature")


# --------------------------------------------------------------------------- activations, end users


def test_activations_end_users_and_audit(sdna: Runner, product: str) -> None:
    issued = sdna("licenses", "issue", product, "--seats", "2", "--password", "pw-1234",
                  "--json").json()
    license_id, key = issued["id"], issued["license_key"]
    assert f"License {license_id} has no activations." in sdna("activations", "list",
                                                               license_id).out
    with_data = _activate_direct(product, key, password="pw-1234", personal=True)
    anonymous = _activate_direct(product, key, password="pw-1234", machine="m2")

    listed = sdna("activations", "list", license_id)
    assert re.search(rf"^{with_data}\s+active\s+fp_", listed.out, re.M)
    assert re.search(rf"^{anonymous}\s+active\s", listed.out, re.M)
    rows = sdna("activations", "list", license_id, "--json").json()["activations"]
    assert {a["id"] for a in rows} == {with_data, anonymous}
    end_user_id = next(a["end_user_id"] for a in rows if a["id"] == with_data)
    assert end_user_id is not None
    assert EMAIL not in listed.out

    found = sdna("end-users", "find", "--email", EMAIL.upper())
    assert end_user_id in found.out
    assert EMAIL not in found.out.lower()
    assert [u["id"] for u in sdna("end-users", "find", "--email", EMAIL, "--json").json()[
        "end_users"]] == [end_user_id]
    assert "No end user" in sdna("end-users", "find", "--email", "nobody@example.com").out

    exported = sdna("end-users", "export", end_user_id)
    assert EMAIL in exported.out
    assert f"name: {REG_NAME}" in exported.out
    assert with_data in exported.out
    data = sdna("end-users", "export", end_user_id, "--json").json()
    assert data["email"] == EMAIL
    assert data["registration"] == {"name": REG_NAME}
    assert [a["id"] for a in data["activations"]] == [with_data]

    # erasure needs confirmation; stdin is not a terminal here
    assert "confirm with --yes" in sdna.fail("end-users", "erase", end_user_id)
    assert sdna("end-users", "export", end_user_id, "--json").json()["email"] == EMAIL
    erased = sdna("end-users", "erase", end_user_id, "--yes")
    assert "limited mode" in erased.out
    after = sdna("end-users", "export", end_user_id, "--json").json()
    assert after["email"] is None
    assert after["registration"] is None
    assert after["erased_at"] is not None
    assert sdna("end-users", "find", "--email", EMAIL, "--json").json()["end_users"] == []
    lic = sdna("licenses", "show", license_id, "--json").json()
    assert lic["erased"] is True
    assert lic["password_reset_required"] is True
    assert "reset required" in sdna("licenses", "show", license_id).out
    assert "limited" in sdna("activations", "list", license_id).out

    removed = sdna("activations", "remove", anonymous)
    assert "its seat is free" in removed.out
    assert re.search(rf"^{anonymous}\s+removed\s", sdna("activations", "list", license_id).out,
                     re.M)
    assert sdna("licenses", "show", license_id, "--json").json()["seats_in_use"] == 1
    again = sdna("activations", "remove", anonymous, "--json").json()  # twice is fine
    assert (again["id"], again["deactivated_by"]) == (anonymous, "vendor")

    audit = sdna("audit", "--limit", "1000")
    for action in ("product.create", "key.generate", "license.issue", "activation.create",
                   "end_user.erase", "activation.remove"):
        assert action in audit.out, action
    entries = sdna("audit", "--json", "--product", product).json()["entries"]
    assert entries and all(e["product_id"] in (product, None) for e in entries)
    assert [e["id"] for e in entries] == sorted((e["id"] for e in entries), reverse=True)
    assert len(sdna("audit", "--limit", "2", "--json").json()["entries"]) == 2
    by_license = sdna("audit", "--license", license_id, "--json").json()["entries"]
    assert by_license and all(e["license_id"] == license_id for e in by_license)
    everything = audit.out + json.dumps(sdna("audit", "--json", "--limit", "1000").json())
    for secret in (EMAIL, REG_NAME, "pw-1234", key):
        assert secret not in everything

    for argv in (["activations", "list", "lic_nope"], ["activations", "remove", "act_nope"],
                 ["end-users", "export", "eu_nope"], ["end-users", "erase", "eu_nope", "--yes"]):
        assert "No such" in sdna.fail(*argv)
    assert "No such end user: 'eu_nope'" in sdna.fail("end-users", "export", "eu_nope")
    sdna.fail("end-users", "find", code=2)  # --email is required


@pytest.mark.postgres
def test_direct_mode_on_postgresql(pg_databases: PgDatabases, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_databases.create()
    folder = tmp_path / "pg-home"
    _clean_env(monkeypatch, folder)
    monkeypatch.setenv("DATABASE_URL", url)
    _init(folder)
    monkeypatch.delenv("DATABASE_URL")
    run = Runner(capsys, monkeypatch)
    where = ["--data-dir", str(folder), "--database-url", url]
    run("products", "create", "pg-app", "--name", "PG", "--features", "a,b",
        "--limited-features", "a", *where)
    run("keys", "generate", "pg-app", *where)
    issued = run("licenses", "issue", "pg-app", "--seats", "2", "--json", *where).json()
    assert not (folder / "server.db").exists()  # it really is PostgreSQL
    monkeypatch.setenv("DATABASE_URL", url)
    activation_id = _activate_direct("pg-app", issued["license_key"], personal=True)
    monkeypatch.delenv("DATABASE_URL")
    rows = run("activations", "list", issued["id"], "--json", *where).json()["activations"]
    assert [a["id"] for a in rows] == [activation_id]
    users = run("end-users", "find", "--email", EMAIL, "--json", *where).json()["end_users"]
    run("end-users", "erase", users[0]["id"], "--yes", *where)
    assert run("licenses", "show", issued["id"], "--json", *where).json()["erased"] is True
    run("licenses", "revoke", issued["id"], *where)
    assert "license.revoke" in run("audit", *where).out
    assert "No such product: 'nope'" in run.fail("keys", "export", "nope", *where)


# --------------------------------------------------------------------------- settings errors


def test_no_server_database_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch, tmp_path / "empty")
    run = Runner(capsys, monkeypatch)
    message = run.fail("products", "list")
    assert "server init" in message
    assert not (tmp_path / "empty").exists()  # nothing created as a side effect
    assert "server init" in run.fail("products", "list", "--data-dir", str(tmp_path / "other"))


def test_master_key_missing_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch,
                                             own_key_folder: Path) -> None:
    folder = tmp_path / "h"
    _clean_env(monkeypatch, folder)
    _init(folder)
    (own_key_folder / "software-dna-keys" / "master.key").unlink()
    run = Runner(capsys, monkeypatch)
    run("products", "create", "p", "--name", "P")  # no secret needed
    assert "No master key" in run.fail("keys", "generate", "p")


def test_backend_choice_errors(home: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    run = Runner(capsys, monkeypatch)
    assert "not both" in run.fail("products", "list", "--server-url", "http://127.0.0.1:1",
                                  "--data-dir", str(home), code=2)
    assert "--admin-key" in run.fail("products", "list", "--server-url", "http://127.0.0.1:1",
                                     code=2)
    assert "http:// or https://" in run.fail("products", "list", "--server-url", "ftp://x",
                                             "--admin-key", "k", code=2)
    port = free_port()
    message = run.fail("products", "list", "--server-url", f"http://127.0.0.1:{port}",
                       "--admin-key", "sdna_admin_secret")
    assert f"Cannot reach the server at http://127.0.0.1:{port}" in message
    assert "sdna_admin_secret" not in message
    # --data-dir wins over SOFTWARE_DNA_SERVER_URL in the environment
    monkeypatch.setenv(_common.ENV_SERVER_URL, f"http://127.0.0.1:{port}")
    run("products", "list", "--data-dir", str(home))


# --------------------------------------------------------------------------- remote backend


def test_remote_backend_end_to_end(remote: Runner, local_server: LocalServer) -> None:
    created = remote("products", "create", "remote-app", "--name", "Remote App",
                     "--features", "pro,sync", "--limited-features", "sync",
                     "--refresh-interval", "1h", "--offline-grace-period", "1d",
                     "--password-required", "--json").json()
    assert created["refresh_interval"] == 3600
    assert created["password_required"] is True
    assert "Remote App" in remote("products", "list").out
    assert remote("products", "configure", "remote-app", "--tolerance", "0",
                  "--json").json()["fingerprint_tolerance"] == 0
    assert "fingerprint tolerance: 0" in remote("products", "show", "remote-app").out

    first = remote("keys", "generate", "remote-app", "--json").json()
    second = remote("keys", "generate", "remote-app", "--json").json()
    assert (first["status"], second["status"]) == ("active", "trusted")
    exported = remote("keys", "export", "remote-app").out.split()
    assert exported == [first["public_key"], second["public_key"]]
    assert local_server.admin.public_keys("remote-app") == exported
    remote("keys", "rotate", "remote-app", "--kid", second["kid"])
    remote("keys", "retire", "remote-app", first["kid"])
    assert remote("keys", "export", "remote-app").out.split() == [second["public_key"]]
    assert "retired" in remote("keys", "list", "remote-app").out

    assert "requires an activation password" in remote.fail("licenses", "issue", "remote-app")
    issued = remote("licenses", "issue", "remote-app", "--seats", "2", "--password-stdin",
                    "--prefix", "RMT", "--expires", "2035-01-01T00:00:00Z", stdin="pw-remote\n")
    key = _issued_key(issued)
    assert key.startswith("RMT-")
    license_id = re.findall(r"lic_[A-Za-z0-9_-]+", issued.out)[0]
    lic = remote("licenses", "show", license_id, "--json").json()
    assert (lic["seats"], lic["expires_at"], lic["password_set"]) == (
        2, "2035-01-01T00:00:00Z", True)
    assert license_id in remote("licenses", "list", "--product", "remote-app").out

    activation_id = _activate_http(local_server.url, "remote-app", key, password="pw-remote")
    rows = remote("activations", "list", license_id, "--json").json()["activations"]
    assert [a["id"] for a in rows] == [activation_id]
    end_user_id = rows[0]["end_user_id"]
    assert [u["id"] for u in remote("end-users", "find", "--email", EMAIL, "--json").json()[
        "end_users"]] == [end_user_id]
    assert EMAIL in remote("end-users", "export", end_user_id).out
    remote("end-users", "erase", end_user_id, "--yes")
    assert remote("end-users", "export", end_user_id, "--json").json()["email"] is None

    remote("licenses", "set", license_id, "--seats", "4", "--expires", "never")
    lic = remote("licenses", "show", license_id, "--json").json()
    assert (lic["seats"], lic["expires_at"], lic["erased"]) == (4, None, True)
    remote("licenses", "password", license_id, "--stdin", stdin="new-pw\n")
    assert remote("licenses", "show", license_id, "--json").json()[
        "password_reset_required"] is False
    assert "suspended" in remote("licenses", "suspend", license_id).out
    assert "active" in remote("licenses", "resume", license_id).out
    assert remote("activations", "remove", activation_id, "--json").json()["id"] == activation_id
    assert remote("activations", "list", license_id, "--json").json()["activations"][0][
        "deactivated_by"] == "vendor"
    assert "revoked" in remote("licenses", "revoke", license_id).out
    assert "cannot be changed back" in remote.fail("licenses", "resume", license_id)

    audit = remote("audit", "--limit", "200")
    assert "license.revoke" in audit.out
    assert "end_user.erase" in audit.out
    entries = remote("audit", "--license", license_id, "--json").json()["entries"]
    assert entries and all(e["license_id"] == license_id for e in entries)
    for secret in (EMAIL, REG_NAME, key, "pw-remote", local_server.admin_key):
        assert secret not in audit.out

    # refusals come back as one line with the server's message
    assert remote.fail("products", "show", "nope") == \
        "software-dna: error: No such product: 'nope'."
    assert "No such license: 'lic_nope'" in remote.fail("licenses", "show", "lic_nope")
    assert "No such product: 'nope'" in remote.fail("licenses", "list", "--product", "nope")
    assert "No such end user" in remote.fail("end-users", "erase", "eu_nope", "--yes")
    assert "already exists" in remote.fail("products", "create", "remote-app")


def test_remote_and_direct_answer_alike(remote: Runner, local_server: LocalServer) -> None:
    remote("products", "create", "same-shape", "--name", "S")
    remote("keys", "generate", "same-shape")
    license_id = remote("licenses", "issue", "same-shape", "--json").json()["id"]
    direct = ["--data-dir", str(local_server.data_dir)]
    for argv in (["products", "show", "same-shape"], ["keys", "list", "same-shape"],
                 ["keys", "export", "same-shape"], ["licenses", "show", license_id],
                 ["activations", "list", license_id]):
        over_http = remote(*argv, "--json").json()
        on_disk = remote(*argv, "--json", *direct).json()
        assert over_http == on_disk, argv


def test_remote_flags_and_wrong_admin_key(local_server: LocalServer, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    _clean_env(monkeypatch, tmp_path / "none")
    run = Runner(capsys, monkeypatch)
    flags = ["--server-url", local_server.url + "/", "--admin-key", local_server.admin_key]
    run("products", "list", *flags)
    message = run.fail("products", "list", "--server-url", local_server.url,
                       "--admin-key", "sdna_admin_wrong")
    assert "unauthorized" in message
    assert "sdna_admin_wrong" not in message


# --------------------------------------------------------------------------- a real process


def _command() -> list[str]:
    script = Path(sys.executable).with_name("software-dna")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "software_dna.server.cli"]


def test_in_a_real_process(tmp_path: Path, sdna: Runner) -> None:
    """The console script in processes of its own: stdin, stdout, exit codes."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_CLEARED}
    env.pop("SOFTWARE_DNA_SERVER_HOME", None)
    env["SOFTWARE_DNA_SERVER_HOME"] = str(tmp_path / "unused")
    folder = str(tmp_path / "data")

    def run(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([*_command(), *argv], input=stdin, capture_output=True,
                              text=True, env=env, timeout=120, check=False)

    # The set-up runs in this process (each command asserts its success).
    sdna("server", "init", "--home", folder)
    sdna("products", "create", "proc-app", "--name", "Proc", "--data-dir", folder)
    sdna("keys", "generate", "proc-app", "--data-dir", folder)
    issued = run("licenses", "issue", "proc-app", "--password-stdin", "--json",
                 "--data-dir", folder, stdin="proc-pw\n")
    assert issued.returncode == 0, issued.stderr
    key = json.loads(issued.stdout)["license_key"]
    exported = run("keys", "export", "proc-app", "--data-dir", folder)
    assert exported.stdout.startswith("k4.public.")

    missing = run("licenses", "issue", "nope", "--data-dir", folder)
    assert missing.returncode == 1
    assert missing.stderr == "software-dna: error: No such product: 'nope'.\n"
    assert missing.stdout == ""

    usage = run("licenses", "issue", "proc-app", "--seats", "many", "--data-dir", folder)
    assert usage.returncode == 2
    assert "Traceback" not in usage.stderr

    group_help = run("licenses", "--help")
    assert group_help.returncode == 0
    assert "issue" in group_help.stdout

    listed = run("licenses", "list", "--data-dir", folder)
    assert listed.returncode == 0
    assert key not in listed.stdout
    assert "…-" + key[-4:] in listed.stdout


def test_an_unexpected_failure_is_one_line(sdna: Runner, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: direct.DirectBackend) -> list[dict[str, Any]]:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(direct.DirectBackend, "list_products", broken)
    message = sdna.fail("products", "list")
    assert "unexpected RuntimeError: disk on fire" in message
    assert _common.ENV_DEBUG in message
    monkeypatch.setenv(_common.ENV_DEBUG, "1")
    with pytest.raises(RuntimeError):
        cli.main(["products", "list"])


def test_products_seat_policy_options(sdna: Runner) -> None:
    made = sdna("products", "create", "seat-policy", "--lease-time", "10m",
                "--reactivation-limit", "3", "--reactivation-period", "2d",
                "--address-activation-limit", "off", "--json").json()
    assert (made["lease_duration"], made["reactivation_limit"], made["reactivation_period"],
            made["address_activation_limit"]) == (600, 3, 2 * 86400, None)
    changed = sdna("products", "configure", "seat-policy", "--reactivation-limit", "off",
                   "--address-activation-limit", "20", "--json").json()
    assert (changed["reactivation_limit"], changed["address_activation_limit"]) == (None, 20)
    assert "per-address limit:     20" in sdna("products", "show", "seat-policy").out
    assert "not a number or 'off'" in sdna.fail("products", "configure", "seat-policy",
                                                "--reactivation-limit", "many", code=2)


# --------------------------------------------------------------------------- what a new vendor met


def test_every_usage_error_shows_the_usage_line_then_error(
        sdna: Runner, product: str, home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "not both" in sdna.fail("licenses", "issue", product, "--password", "x",
                                   "--password-stdin", code=2)
    assert "exactly one" in sdna.fail("licenses", "password", "lic_x", code=2)
    assert "Nothing to change" in sdna.fail("products", "configure", product, code=2)
    assert "not both" in sdna.fail("products", "list", "--server-url", "http://127.0.0.1:1",
                                   "--data-dir", str(home), code=2)
    assert "admin API needs a key" in sdna.fail("offline", "respond", "-", "--server-url",
                                                "http://127.0.0.1:1", code=2)
    # --admin-key without a server to use it on is refused, not ignored
    assert "--server-url" in sdna.fail("products", "list", "--admin-key", "sdna_admin_k",
                                       code=2)
    # the evaluation key names the option, not the API field
    err = sdna.fail("licenses", "issue", product, "--kind", "evaluation", code=2)
    assert "--expires-after-days" in err and "expires_after_days" not in err
    assert "must be at least 1" in sdna.fail("licenses", "issue", product, "--seats", "0",
                                             code=2)
    for variable in ("DATABASE_URL", "SOFTWARE_DNA_DATABASE_URL"):
        with monkeypatch.context() as mp:
            mp.setenv(variable, f"sqlite:///{home / 'server.db'}")
            mp.setenv(_common.ENV_SERVER_URL, "http://127.0.0.1:1")
            mp.setenv(_common.ENV_ADMIN_KEY, "sdna_admin_k")
            err = sdna.fail("products", "list", code=2)
            assert f"SOFTWARE_DNA_SERVER_URL and {variable} are set" in err, err


@pytest.mark.parametrize(("argv", "usage"), [
    (["licenses", "show"], "licenses show [OPTIONS] ID"),
    (["keys", "retire"], "keys retire [OPTIONS] PRODUCT KID"),
    (["offline", "respond"], "offline respond [OPTIONS] REQUEST_FILE"),
])
def test_usage_lines_name_arguments_as_the_docs_do(
        argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert _invoke([*argv, "--help"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"Usage: software-dna {usage}"


def test_licenses_list_shows_the_term_as_show_does(sdna: Runner, product: str) -> None:
    evaluation = sdna("licenses", "issue", product, "--kind", "evaluation",
                      "--expires-after-days", "14", "--json").json()["id"]
    test_code = re.findall(r"lic_[A-Za-z0-9_-]+",
                           sdna("test-codes", "issue", product, "--days", "3").out)[0]
    listed = sdna("licenses", "list", "--product", product).out
    for license_id, days in ((evaluation, 14), (test_code, 3)):
        expires = f"{days} days after the first activation"
        assert re.search(rf"^expires:\s+{expires}$", sdna("licenses", "show", license_id).out,
                         re.M)
        row = next(line for line in listed.splitlines() if line.startswith(license_id))
        assert expires in row, row


def test_leases_of_a_license_that_is_not_floating(sdna: Runner, product: str) -> None:
    license_id = sdna("licenses", "issue", product, "--seats", "3", "--json").json()["id"]
    out = sdna("licenses", "leases", license_id).out
    assert "not a floating license" in out and "floating seat(s) leased" not in out
    floating = sdna("licenses", "issue", product, "--seat-mode", "floating", "--seats", "2",
                    "--json").json()["id"]
    assert "0 of 2 floating seat(s) leased." in sdna("licenses", "leases", floating).out


def test_server_init_reports_an_existing_master_key_plainly(sdna: Runner, home: Path) -> None:
    out = sdna("server", "init", "--data-dir", str(home)).out
    assert "(already there, kept)" in out and "(kept (already there))" not in out
