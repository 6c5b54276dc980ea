"""examples/tk_app.py: the controller's logic without a display, and a Tk smoke test.

The controller is tested against a real offline :class:`LicenseClient` (a store
under ``tmp_path``, tokens signed by a test key and installed with
``install_token``). The GUI tests need a display; they are skipped, saying
why, when Tk cannot open one.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from software_dna import LicenseClient, Mode, NotActivated
from software_dna.fingerprint import Fingerprint, collect
from software_dna.wire.paseto import SecretKey

from .tokens import make_token, now_utc

if TYPE_CHECKING:
    import tkinter

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))

import tk_app  # noqa: E402  (examples/ is not a package)

PRODUCT = "acme-notes"


@pytest.fixture
def key() -> SecretKey:
    return SecretKey.generate()


@pytest.fixture
def fp() -> Fingerprint:
    return collect(PRODUCT)


@pytest.fixture
def client(key: SecretKey, tmp_path: Path) -> Iterator[LicenseClient]:
    with LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                       store_path=tmp_path) as c:
        yield c


@pytest.fixture
def controller(client: LicenseClient) -> Iterator[tk_app.LicenseController]:
    ctl = tk_app.LicenseController(client)
    yield ctl
    ctl.close()


# ---------------------------------------------------------------- controller


def test_importing_the_app_does_not_import_tkinter() -> None:
    code = (f"import sys; sys.path.insert(0, {str(EXAMPLES)!r}); import tk_app; "
            "assert 'tkinter' not in sys.modules, 'tkinter imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_email_without_consent_is_refused_before_the_sdk(
    controller: tk_app.LicenseController, client: LicenseClient
) -> None:
    ok, message = controller.activate("JQ7M-X2KD-9RTA-HB4W", "pw", "ana@example.com", False)
    assert (ok, message) == (False, tk_app.CONSENT_REFUSAL)
    assert tk_app.CONSENT_LABEL in message
    assert controller.license is None
    assert not client.store_path.exists()  # nothing reached the client
    assert controller.consent_problem("ana@example.com", True) is None
    assert controller.consent_problem("   ", False) is None  # blank email: not given
    assert controller.consent_problem(None, False) is None


def test_sdk_errors_come_back_as_their_message(controller: tk_app.LicenseController) -> None:
    # The SDK's own refusals, as end-user text, never as an exception.
    assert controller.activate("   ") == (False, "Enter a license key.")
    ok, message = controller.activate("JQ7M-X2KD-9RTA-HB4W", "", "  ", False)
    assert not ok and "No license server is configured" in message
    ok, message = controller.activate("JQ7M-X2KD-9RTA-HB4W", "pw", "ana@example.com", True)
    assert not ok and "No license server is configured" in message
    assert controller.license is None


def test_check_not_activated(controller: tk_app.LicenseController) -> None:
    ok, message = controller.check()
    assert (ok, message) == (False, str(NotActivated()))
    assert controller.license is None
    assert controller.status_text(None) == tk_app.NOT_ACTIVATED_TEXT
    assert not controller.can_export(None)
    assert controller.title(None) == "Acme Notes (not activated)"


def test_status_full_license(
    controller: tk_app.LicenseController, client: LicenseClient, key: SecretKey, fp: Fingerprint
) -> None:
    ends = now_utc() + timedelta(days=30)
    client.install_token(make_token(key, PRODUCT, fp, features=("sync", "export"),
                                    email="ana@example.com", license_expires_at=ends))
    ok, text = controller.check()
    assert ok and controller.license is not None
    assert text == controller.status_text(controller.license)
    assert text.splitlines() == [
        "Mode: full",
        "Features: export, sync",
        "Registered to: ana@example.com",
        f"License ends: {ends:%Y-%m-%d}",
    ]
    assert controller.can_export(controller.license)
    assert controller.title(controller.license) == "Acme Notes"


def test_status_limited_license(
    controller: tk_app.LicenseController, client: LicenseClient, key: SecretKey, fp: Fingerprint
) -> None:
    client.install_token(make_token(key, PRODUCT, fp, mode=Mode.LIMITED, features=()))
    ok, text = controller.check()
    assert ok
    assert text.splitlines() == ["Mode: limited (some features are off)", "Features: none"]
    assert not controller.can_export(controller.license)
    assert controller.title(controller.license) == "Acme Notes (limited mode)"


def test_status_offline_grace(
    controller: tk_app.LicenseController, client: LicenseClient, key: SecretKey, fp: Fingerprint
) -> None:
    now = now_utc()
    grace_end = now + timedelta(days=2)
    client.install_token(make_token(key, PRODUCT, fp, features=("export",),
                                    issued_at=now - timedelta(days=8),
                                    refresh_by=now - timedelta(days=1), expires_at=grace_end))
    ok, text = controller.check()
    assert ok and controller.license is not None
    assert controller.license.offline_grace_ends_at == grace_end
    assert f"Offline grace until: {grace_end:%Y-%m-%d %H:%M} UTC" in text
    assert "Registered to" not in text
    message = controller.change_message(None, controller.license)
    assert f"until {grace_end:%Y-%m-%d %H:%M} UTC" in message


def test_unusable_license_reported(
    key: SecretKey, fp: Fingerprint, tmp_path: Path
) -> None:
    now = now_utc()
    expired = make_token(key, PRODUCT, fp, issued_at=now - timedelta(days=3),
                         refresh_by=now - timedelta(days=2), expires_at=now - timedelta(days=1))
    past = LicenseClient(product=PRODUCT, public_keys=[key.public_key.to_paserk()],
                         store_path=tmp_path, clock=lambda: now - timedelta(days=2, hours=1))
    past.install_token(expired)  # stored while it was still valid
    ctl = tk_app.LicenseController(LicenseClient(
        product=PRODUCT, public_keys=[key.public_key.to_paserk()], store_path=tmp_path))
    try:
        ok, message = ctl.check()
    finally:
        ctl.close()
    assert not ok and "grace period ended" in message
    assert ctl.license is None


def test_online_actions_report_inline(
    controller: tk_app.LicenseController, client: LicenseClient, key: SecretKey, fp: Fingerprint
) -> None:
    # A token installed out of band has no activation on a server to act on.
    client.install_token(make_token(key, PRODUCT, fp, features=("export",)))
    assert controller.check()[0]
    assert controller.deactivate() == (False, "This machine has no activation to deactivate.")
    assert controller.license is not None  # a failed deactivation leaves the license alone
    assert controller.erase() == (False, str(NotActivated()))
    ok, _ = controller.refresh()  # no server configured: the offline answer
    assert ok and controller.can_export(controller.license)


def test_periodic_change_is_queued_for_the_ui_thread(
    controller: tk_app.LicenseController, client: LicenseClient, key: SecretKey, fp: Fingerprint
) -> None:
    client.install_token(make_token(key, PRODUCT, fp, features=("export",)))
    assert controller.check()[0]
    handle = controller.start_periodic_check(3600)
    assert handle is not None and handle.running
    assert controller.start_periodic_check(3600) is handle  # started once
    client.install_token(make_token(key, PRODUCT, fp, mode=Mode.LIMITED, features=()))
    worker = threading.Thread(target=handle.tick)  # as the checker thread would
    worker.start()
    worker.join(10)
    assert controller.license is not None and controller.license.mode is Mode.FULL  # not yet
    changes = controller.take_changes()
    assert len(changes) == 1
    old, new = changes[0]
    assert old is not None and old.mode is Mode.FULL
    assert new is not None and new.mode is Mode.LIMITED
    assert controller.license == new
    assert controller.change_message(old, new) == "The license was updated: limited mode."
    assert controller.change_message(new, None).startswith("The license is no longer valid")
    assert controller.take_changes() == []
    controller.close()
    assert not handle.running
    assert controller.start_periodic_check(3600) is None  # closed: no new checker


# ---------------------------------------------------------------- GUI smoke test


@pytest.fixture
def tk_root() -> Iterator[tkinter.Tk]:
    tk = pytest.importorskip("tkinter", reason="this Python has no tkinter")
    try:
        root: tkinter.Tk = tk.Tk()
    except tk.TclError as exc:
        pytest.skip(f"Tk cannot open a display ({exc}); run under Xvfb to test the GUI")
    yield root
    with contextlib.suppress(tk.TclError):  # the test may have closed it already
        root.destroy()


def pump(root: tkinter.Tk, done: Callable[[], bool], timeout: float = 10.0) -> None:
    """Process Tk events until ``done()``, as mainloop would."""
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out waiting for the Tk thread"
        root.update()
        time.sleep(0.01)


def test_gui_not_activated_start_opens_dialog(
    tk_root: tkinter.Tk, controller: tk_app.LicenseController, client: LicenseClient
) -> None:
    window = tk_app.NotesWindow(tk_root, controller)
    window.start(3600)
    pump(tk_root, lambda: window.dialog is not None)
    dialog = window.dialog
    assert dialog is not None and dialog.exists()
    assert window.export_button.instate(["disabled"])
    assert window.status_var.get() == tk_app.NOT_ACTIVATED_TEXT
    assert str(dialog.password_entry.cget("show")) == "*"
    assert window.open_license_dialog() is dialog  # one dialog at a time

    # An email without consent: refused inline, nothing started.
    dialog.key_var.set("JQ7M-X2KD-9RTA-HB4W")
    dialog.email_var.set("ana@example.com")
    dialog.activate_button.invoke()
    assert dialog.message_var.get() == tk_app.CONSENT_REFUSAL and not dialog.busy

    # With consent: activated on a worker thread; the SDK's error comes back inline.
    dialog.consent_box.invoke()
    assert dialog.consent_var.get()
    dialog.activate_button.invoke()
    assert dialog.busy
    pump(tk_root, lambda: not dialog.busy)
    assert "No license server is configured" in dialog.message_var.get()
    assert dialog.exists()

    window.close()
    assert not controller.start_periodic_check(3600)  # the periodic check was stopped
    assert controller.license is None


def test_gui_licensed_window(
    tk_root: tkinter.Tk, controller: tk_app.LicenseController, client: LicenseClient,
    key: SecretKey, fp: Fingerprint, tmp_path: Path,
) -> None:
    client.install_token(make_token(key, PRODUCT, fp, features=("export",),
                                    email="ana@example.com"))
    window = tk_app.NotesWindow(tk_root, controller)
    window.start(3600)
    pump(tk_root, lambda: controller.license is not None and "Mode: full" in
         window.status_var.get())
    assert window.dialog is None
    assert "Registered to: ana@example.com" in window.status_var.get()
    assert not window.export_button.instate(["disabled"])
    window.text.insert("1.0", "Buy milk")
    out = tmp_path / "notes.txt"
    assert window.export_to(out) and out.read_text(encoding="utf-8") == "Buy milk"

    # A menu action runs off the Tk thread and reports inline.
    window.deactivate(ask=False)
    pump(tk_root, lambda: not window.busy)
    assert window.message_var.get() == "This machine has no activation to deactivate."

    # The periodic check reports on its own thread; the window picks it up with after().
    handle = controller.start_periodic_check(3600)
    assert handle is not None
    client.install_token(make_token(key, PRODUCT, fp, mode=Mode.LIMITED, features=()))
    worker = threading.Thread(target=handle.tick)
    worker.start()
    worker.join(10)
    pump(tk_root, lambda: "Mode: limited" in window.status_var.get())
    assert window.export_button.instate(["disabled"])
    assert window.message_var.get() == "The license was updated: limited mode."
    assert not window.export_to(out)

    dialog = window.open_license_dialog("Enter a key")
    tk_root.update()
    assert dialog.exists()
    window.close()
    assert not handle.running
