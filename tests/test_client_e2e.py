"""The whole life of a license, from the app's side, against the real server.

The app and its database run in this process and the SDK reaches them through
``InProcessServer.transport()`` (tests/inprocess.py): HTTPTransport itself, with
no socket. "Offline" is a :class:`tests.inprocess.Link` taken offline, or
:func:`tests.inprocess.unreachable`."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from software_dna import (
    ActivationError,
    ClockTampered,
    ConsentRequired,
    InvalidToken,
    LicenseClient,
    LicenseExpired,
    LicenseRevoked,
    LicenseSuspended,
    Mode,
    NoSeatsLeft,
    NotActivated,
    Protection,
    ServerUnreachable,
    UnknownLicenseKey,
    WrongPassword,
)
from software_dna.client.transport import HTTPTransport, Response
from software_dna.fingerprint import Fingerprint
from software_dna.server.adminclient import AdminClient

from .inprocess import InProcessServer, unreachable


@pytest.fixture(scope="module")
def server(inprocess_server: InProcessServer) -> InProcessServer:
    """The app and its database in this process; the SDK reaches it with no socket."""
    return inprocess_server


EMAIL = "ana.lovelace@example.com"
COMPANY = "Analytical Engines Ltd"


def new_product(admin: AdminClient, **policy: Any) -> tuple[str, list[str]]:
    product = "p-" + secrets.token_hex(4)
    keys = admin.setup_product(product, name="Test", features=["export", "sync"],
                               limited_features=["export"], **policy)
    return product, keys


class App:
    """The vendor's app on one machine: a client and its clock."""

    def __init__(self, server: InProcessServer, product: str, keys: list[str], store: Path,
                 **kwargs: Any) -> None:
        self.offset = timedelta(0)
        self.args: dict[str, Any] = {
            "product": product, "public_keys": keys, "server_url": server.url,
            # In-process answers take milliseconds; the bound is for a loaded CI machine
            # (an activation may send a mail, synchronously, through the local SMTP server).
            "store_path": store, "clock": self.now, "timeout": 10.0,
            "transport": server.transport(), **kwargs,
        }
        self.client = LicenseClient(**self.args)

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def restart(self) -> LicenseClient:
        """A new process of the app: a fresh client on the same store."""
        self.client.close()
        self.client = LicenseClient(**self.args)
        return self.client


@pytest.fixture
def make_app(server: InProcessServer, tmp_path: Path) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def make(product: str, keys: list[str], name: str = "machine", **kwargs: Any) -> App:
        app = App(server, product, keys, tmp_path / name, **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.client.close()


def other_machine() -> Callable[[str], Fingerprint]:
    """Another computer's fingerprint (this test runs on one machine only)."""
    parts: dict[str, object] = {
        n: secrets.token_urlsafe(32)[:43] for n in ("machine_id", "os_arch", "cpu")}
    parts["mac"] = [secrets.token_urlsafe(32)[:43]]
    fake = Fingerprint.from_components(parts)
    return lambda _product: fake


def store_plaintext(client: LicenseClient) -> str:
    return json.dumps(client._state.store.read())


def test_whole_flow(server: InProcessServer, make_app: Callable[..., App]) -> None:
    admin = server.admin
    product, keys = new_product(admin, password_required=True)
    issued = admin.issue_license(product, seats=2, password="open sesame")
    app = make_app(product, keys)

    with pytest.raises(NotActivated):
        app.client.check()
    with pytest.raises(ConsentRequired):
        app.client.activate(issued["license_key"], password="open sesame", email=EMAIL)
    with pytest.raises(WrongPassword):
        app.client.activate(issued["license_key"], password="wrong")
    with pytest.raises(UnknownLicenseKey):
        app.client.activate("AAAA-BBBB-CCCC-DDDD", password="open sesame")

    lic = app.client.activate(issued["license_key"], password="open sesame", email=EMAIL,
                              registration={"company": COMPANY}, consent=True)
    assert lic.mode is Mode.FULL
    assert lic.features == {"export", "sync"} and lic.has_feature("sync")
    assert lic.email == EMAIL and lic.registration == {"company": COMPANY}
    assert lic.protection is Protection.OPPORTUNISTIC and lic.refresh_by is not None

    # Next start: offline check, no server needed.
    checked = app.restart().check()
    assert checked.activation_id == lic.activation_id and checked.offline_grace_ends_at is None

    refreshed = app.client.refresh()
    assert refreshed.token_id != lic.token_id and refreshed.mode is Mode.FULL

    app.client.settings = {"theme": "dark", "font_size": 12}
    assert app.restart().settings == {"theme": "dark", "font_size": 12}

    # The vendor erases the end user.
    found = admin.find_end_users(EMAIL)
    assert len(found) == 1
    admin.erase_end_user(found[0]["id"])
    assert admin.find_end_users(EMAIL) == []

    limited = app.client.refresh()
    assert limited.mode is Mode.LIMITED and limited.is_limited
    assert limited.features == {"export"} and not limited.has_feature("sync")
    assert limited.email is None and limited.registration is None
    # Works offline in limited mode, and the local store holds no personal data.
    assert app.restart().check().mode is Mode.LIMITED
    plain = store_plaintext(app.client)
    assert EMAIL not in plain and COMPANY not in plain
    # ...nor does the server's database file.
    raw = b"".join(p.read_bytes() for p in server.data_dir.glob("server.db*"))
    assert EMAIL.encode() not in raw and COMPANY.encode() not in raw

    app.client.deactivate()
    with pytest.raises(NotActivated):
        app.client.check()


def test_lost_answer_retry_takes_one_seat(
    server: InProcessServer, make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product, seats=1)["license_key"]
    app = make_app(product, keys)
    real = HTTPTransport.request
    lost: list[Response] = []

    def lose_answer(self: HTTPTransport, method: str, path: str, **kw: Any) -> Response:
        answer = real(self, method, path, **kw)  # the server did activate...
        if not lost:
            lost.append(answer)
            raise ServerUnreachable("connection reset")  # ...but the answer never arrived
        return answer

    monkeypatch.setattr(HTTPTransport, "request", lose_answer)
    with pytest.raises(ServerUnreachable):
        app.client.activate(key)
    monkeypatch.undo()
    first_id = lost[0].body["activation_id"]
    again = app.restart().activate(key)  # the app is started again, the user retries
    assert again.activation_id == first_id
    other = make_app(product, keys, "other-machine", fingerprint=other_machine())
    with pytest.raises(NoSeatsLeft):
        other.client.activate(key)


def test_no_seats_left_then_deactivate_frees_it(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product, seats=1)["license_key"]
    one = make_app(product, keys, "one")
    two = make_app(product, keys, "two", fingerprint=other_machine())
    one.client.activate(key)
    with pytest.raises(NoSeatsLeft):
        two.client.activate(key)
    one.client.deactivate()
    assert two.client.activate(key).mode is Mode.FULL


def test_revoked_while_offline_stays_revoked(server: InProcessServer, tmp_path: Path) -> None:
    with server.link() as switch:
        product, keys = new_product(server.admin, refresh_interval=60, offline_grace_period=3600)
        issued = server.admin.issue_license(product)
        app = App(server, product, keys, tmp_path / "app", transport=switch.transport())
        app.client.activate(issued["license_key"])
        switch.offline()
        app.offset = timedelta(seconds=90)  # refresh due
        assert app.client.check().offline_grace_ends_at is not None  # offline, in grace
        switch.online()
        server.admin.revoke_license(issued["id"])
        switch.offline()
        assert app.restart().check().offline_grace_ends_at is not None  # still offline
        switch.online()
        with pytest.raises(LicenseRevoked):
            app.restart().check()  # first contact stores the revocation
        switch.offline()
        for _ in range(2):
            with pytest.raises(LicenseRevoked):
                app.restart().check()  # offline again: still revoked


def test_suspend_then_resume(server: InProcessServer, make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    issued = server.admin.issue_license(product)
    app = make_app(product, keys)
    app.client.activate(issued["license_key"])
    server.admin.suspend_license(issued["id"])
    with pytest.raises(LicenseSuspended):
        app.client.refresh()
    with pytest.raises(LicenseSuspended):
        app.restart().check()
    server.admin.resume_license(issued["id"])
    assert app.restart().check().mode is Mode.FULL  # a stored suspension asks the server again


def test_grace_then_expired_then_recovered(server: InProcessServer, tmp_path: Path) -> None:
    with server.link() as switch:
        product, keys = new_product(server.admin, refresh_interval=60, offline_grace_period=60)
        issued = server.admin.issue_license(product)
        app = App(server, product, keys, tmp_path / "app", transport=switch.transport())
        app.client.activate(issued["license_key"])
        switch.offline()
        app.offset = timedelta(seconds=90)  # past refresh_by, inside the grace
        lic = app.restart().check()
        assert lic.offline_grace_ends_at is not None
        assert lic.offline_grace_ends_at == lic.expires_at
        app.offset = timedelta(seconds=130)  # past the grace
        with pytest.raises(LicenseExpired, match="server"):
            app.restart().check()
        with pytest.raises(ServerUnreachable):
            app.client.refresh()
        switch.online()
        app.offset = timedelta(0)
        assert app.client.refresh().offline_grace_ends_at is None
        assert app.restart().check().offline_grace_ends_at is None


def test_replayed_validation_answer_refused(
    server: InProcessServer, make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    product, keys = new_product(server.admin)
    app = make_app(product, keys)
    app.client.activate(server.admin.issue_license(product)["license_key"])
    captured: list[Response] = []
    real = HTTPTransport.request

    def record(self: HTTPTransport, method: str, path: str, **kw: Any) -> Response:
        if captured and path.endswith("/validate"):
            return captured[0]  # an attacker answers with the captured old answer
        answer = real(self, method, path, **kw)
        if path.endswith("/validate"):
            captured.append(answer)
        return answer

    monkeypatch.setattr(HTTPTransport, "request", record)
    app.client.refresh()
    with pytest.raises(InvalidToken):
        app.client.refresh()


def offline_app(app: App) -> LicenseClient:
    """The same app and store, with the server unreachable (no network at all)."""
    app.args["transport"] = unreachable()
    return app.restart()


def test_protection_offline_never_contacts_server(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin, protection="offline")
    app = make_app(product, keys)
    lic = app.client.activate(server.admin.issue_license(product)["license_key"])
    assert lic.protection is Protection.OFFLINE and lic.refresh_by is None
    assert lic.expires_at is None  # perpetual
    client = offline_app(app)
    app.offset = timedelta(days=400)
    started = time.monotonic()
    checked = client.check()
    assert time.monotonic() - started < 0.5  # no network attempt at all
    assert checked.offline_grace_ends_at is None


def test_protection_opportunistic_grace(server: InProcessServer,
                                        make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin, protection="opportunistic",
                                refresh_interval=3600, offline_grace_period=7200)
    app = make_app(product, keys)
    lic = app.client.activate(server.admin.issue_license(product)["license_key"])
    assert lic.refresh_by is not None and lic.expires_at is not None
    assert lic.expires_at - lic.refresh_by == timedelta(hours=2)
    client = offline_app(app)
    app.offset = timedelta(minutes=50)
    assert client.check().offline_grace_ends_at is None  # not due yet: no server needed
    app.offset = timedelta(minutes=90)
    assert client.check().offline_grace_ends_at == lic.expires_at
    app.offset = timedelta(hours=3, minutes=1)
    with pytest.raises(LicenseExpired):
        client.check()


def test_protection_mandatory_warning_then_stop(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin, protection="mandatory",
                                refresh_interval=3600, offline_grace_period=600)
    app = make_app(product, keys)
    lic = app.client.activate(server.admin.issue_license(product)["license_key"])
    assert lic.protection is Protection.MANDATORY
    assert lic.refresh_by is not None and lic.expires_at is not None
    # Must reach the server within the refresh interval; the last 10 minutes warn.
    assert lic.expires_at - lic.issued_at == timedelta(hours=1)
    assert lic.expires_at - lic.refresh_by == timedelta(minutes=10)
    client = offline_app(app)
    app.offset = timedelta(minutes=45)
    assert client.check().offline_grace_ends_at is None
    app.offset = timedelta(minutes=55)
    warned = client.check()
    assert warned.offline_grace_ends_at == lic.expires_at  # the app shows a warning
    app.offset = timedelta(minutes=61)
    with pytest.raises(LicenseExpired, match="server"):
        client.check()


def test_end_user_requests_erasure(server: InProcessServer, make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin)
    app = make_app(product, keys)
    app.client.activate(server.admin.issue_license(product)["license_key"], email=EMAIL,
                        registration={"company": COMPANY}, consent=True)
    assert server.admin.find_end_users(EMAIL)
    limited = app.client.request_erasure()
    assert limited.mode is Mode.LIMITED and limited.features == {"export"}
    assert limited.email is None
    assert server.admin.find_end_users(EMAIL) == []
    plain = store_plaintext(app.client)
    assert EMAIL not in plain and COMPANY not in plain
    # Limited mode holds: offline, and at the next refresh.
    assert offline_app(app).check().mode is Mode.LIMITED


def test_settings_follow_the_user_and_work_offline(
    server: InProcessServer, make_app: Callable[..., App]
) -> None:
    product, keys = new_product(server.admin)
    key = server.admin.issue_license(product, seats=2)["license_key"]
    laptop = make_app(product, keys, "laptop")
    laptop.client.activate(key)
    laptop.client.settings = {"theme": "dark"}
    desktop = make_app(product, keys, "desktop", fingerprint=other_machine())
    desktop.client.activate(key)
    assert desktop.client.settings == {"theme": "dark"}  # followed the user
    # Offline: reads come from the cache, writes are kept and sent later.
    offline = offline_app(laptop)
    assert offline.settings == {"theme": "dark"}
    offline.settings = {"theme": "light"}
    assert offline.settings == {"theme": "light"}
    assert desktop.client.settings == {"theme": "dark"}  # not sent yet
    laptop.args["transport"] = server.transport()
    assert laptop.restart().settings == {"theme": "light"}  # sent at the next contact
    assert desktop.client.settings == {"theme": "light"}


def test_clock_that_ran_ahead_recovers_through_the_server(server: InProcessServer,
                                                         tmp_path: Path) -> None:
    """A clock once days ahead (then corrected) must not lock a paying user out."""
    with server.link() as switch:
        product, keys = new_product(server.admin)
        key = server.admin.issue_license(product)["license_key"]
        app = App(server, product, keys, tmp_path / "app", transport=switch.transport())
        app.client.activate(key)
        switch.offline()
        app.offset = timedelta(days=9)  # the clock runs ahead while offline
        with pytest.raises(LicenseExpired):
            app.restart().check()
        app.offset = timedelta(0)  # corrected
        with pytest.raises(ClockTampered):
            app.restart().check()  # offline, the SDK cannot tell who is right
        switch.online()
        assert app.restart().check().mode is Mode.FULL  # the server's signed time settles it
        assert app.restart().check().offline_grace_ends_at is None
        # Another store of the same product on this machine works too.
        other = App(server, product, keys, tmp_path / "app2", transport=switch.transport())
        other.client.activate(key)
        assert other.restart().check().mode is Mode.FULL
        # A clock set back *now* is still refused offline, even after the server was seen.
        switch.offline()
        app.offset = -timedelta(days=3)
        with pytest.raises(ClockTampered):
            app.restart().check()


@pytest.mark.parametrize("kwargs,error,fragment", [
    ({"license_key": "hello world!!"}, UnknownLicenseKey, "not a valid license key"),
    ({"license_key": "X" * 1_000_000}, UnknownLicenseKey, "not a valid license key"),
    ({"email": "not an email", "consent": True}, ActivationError, "email address"),
    ({"registration": {"a": "x" * 70_000}, "consent": True}, ActivationError, "registration"),
    ({"registration": {"a": object()}, "consent": True}, ActivationError, "registration"),
    ({"registration": "just a string", "consent": True}, ActivationError, "registration"),
])
def test_what_the_end_user_typed_is_checked_before_sending(
    server: InProcessServer, make_app: Callable[..., App], kwargs: dict[str, Any],
    error: type[Exception], fragment: str,
) -> None:
    product, keys = new_product(server.admin)
    args: dict[str, Any] = {"license_key": server.admin.issue_license(product)["license_key"]}
    args.update(kwargs)
    key = args.pop("license_key")
    with pytest.raises(error, match=fragment):
        make_app(product, keys).client.activate(key, **args)


def test_missing_password_is_named(server: InProcessServer, make_app: Callable[..., App]) -> None:
    product, keys = new_product(server.admin, password_required=True)
    key = server.admin.issue_license(product, password="pw")["license_key"]
    with pytest.raises(WrongPassword, match="needs an activation password"):
        make_app(product, keys).client.activate(key)


def test_erasure_on_a_revoked_license_is_the_signed_refusal_and_wipes_the_local_copy(
        server: InProcessServer, make_app: Callable[..., App]) -> None:
    """On a revoked license the server erases all the same and answers its signed
    refusal: the SDK raises LicenseRevoked (not a ServerError) and drops its local copy."""
    product, keys = new_product(server.admin)
    app = make_app(product, keys)
    issued = server.admin.issue_license(product)
    app.client.activate(issued["license_key"], email=EMAIL,
                        registration={"company": COMPANY}, consent=True)
    server.admin.revoke_license(issued["id"])
    with pytest.raises(LicenseRevoked):
        app.client.request_erasure()
    assert server.admin.find_end_users(EMAIL) == []
    plain = store_plaintext(app.client)
    assert EMAIL not in plain and COMPANY not in plain
    with pytest.raises(LicenseRevoked):
        app.client.check()
