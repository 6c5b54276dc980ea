"""Acme Notes: a small Tk app licensed with software_dna, written as a vendor would.

Like ``notes_app.py``, the vendor ships the product id, its public key(s) and
the server URL inside the app. Here they come from the environment so that the
demo can point the app at a freshly started server:

    ACME_LICENSE_SERVER   the license server URL
    ACME_PUBLIC_KEYS      comma-separated PASERK k4.public keys
    ACME_PRODUCT          the product id (default: acme-notes)
    SOFTWARE_DNA_HOME     where the license store lives (optional)

Usage:
    python examples/tk_app.py

How it is built:

- :class:`LicenseController` holds the :class:`LicenseClient` and every license
  decision: the consent rule, the messages, the status text, what the periodic
  check changed. It needs no display and importing this module does not import
  tkinter, so tests use the controller directly.
- :class:`LicenseDialog` and :class:`NotesWindow` are the widgets. Every SDK
  call that may go online runs on a worker thread (:func:`run_in_background`)
  and the Tk thread picks up its result by polling with ``after``, so the
  window never freezes. The periodic check calls ``on_change`` on the SDK's
  checker thread: the controller only queues the change, and the window drains
  that queue with ``after`` on the Tk thread.
"""

from __future__ import annotations

import os
import queue
import sys
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TypeVar

from software_dna import License, LicenseClient, LicenseError, Mode

if TYPE_CHECKING:
    import tkinter as tk

    from software_dna.client.periodic import PeriodicCheck

T = TypeVar("T")

#: ``(ok, message)``: what every controller action returns; the message is for the end user.
Result = tuple[bool, str]
#: ``(old, new)`` as the periodic check reports it (``None``: no valid license).
Change = tuple["License | None", "License | None"]

CONSENT_LABEL = "Send my email to Acme to register this copy"
CONSENT_REFUSAL = (
    f'Your email is sent to Acme only with your consent: tick "{CONSENT_LABEL}", '
    "or clear the email field."
)
NOT_ACTIVATED_TEXT = (
    "Not activated. Choose License > Activate... and enter the license key you received."
)
#: How often the periodic check validates the license online, in seconds.
CHECK_INTERVAL = 3600.0


def make_client() -> LicenseClient:
    """Build the app's one :class:`LicenseClient`, configured from the environment.

    Raises:
        KeyError: ``ACME_PUBLIC_KEYS`` is not set.
        ValueError: a malformed key or server URL.
    """
    return LicenseClient(
        product=os.environ.get("ACME_PRODUCT", "acme-notes"),
        public_keys=[k.strip() for k in os.environ["ACME_PUBLIC_KEYS"].split(",") if k.strip()],
        server_url=os.environ.get("ACME_LICENSE_SERVER") or None,
        app_name="AcmeNotes",
        app_author="Acme",
    )


def _utc(moment: datetime) -> str:
    return f"{moment.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


# ---------------------------------------------------------------- logic (no Tk)


class LicenseController:
    """The app's license logic, kept apart from the widgets.

    The actions (:meth:`check`, :meth:`activate`, :meth:`refresh`,
    :meth:`erase`, :meth:`deactivate`) may go online and block for at most the
    SDK's deadline, so the window calls them on a worker thread. They never
    raise a :class:`LicenseError`: they return ``(ok, message)``, the message
    written for the end user (an SDK error's own ``str(exc)``). The current
    license is :attr:`license`. Nothing here needs tkinter or a display.
    """

    def __init__(self, client: LicenseClient) -> None:
        self.client = client
        self._lock = threading.Lock()
        self._license: License | None = None
        self._changes: queue.SimpleQueue[Change] = queue.SimpleQueue()
        self._periodic_lock = threading.Lock()
        self._periodic: PeriodicCheck | None = None
        self._closed = False

    @property
    def license(self) -> License | None:
        """The current valid license, or ``None`` (not activated, or unusable)."""
        with self._lock:
            return self._license

    def _set(self, lic: License | None) -> None:
        with self._lock:
            self._license = lic

    def _recheck(self) -> None:
        """After a failed online action: what does the stored license say now?"""
        try:
            self._set(self.client.check())
        except LicenseError:
            self._set(None)

    # ------------------------------------------------------------ actions

    def check(self) -> Result:
        """Check the license at start-up (offline-first).

        Returns ``(True, status text)``, or ``(False, why)`` when the app is not
        activated or the stored license cannot be used: then ask for a key.
        """
        try:
            lic = self.client.check()
        except LicenseError as exc:
            self._set(None)
            return False, str(exc)
        self._set(lic)
        return True, self.status_text(lic)

    @staticmethod
    def consent_problem(email: str | None, consent: bool) -> str | None:
        """The refusal to show when an email is typed without consent, else ``None``."""
        if email is not None and email.strip() and not consent:
            return CONSENT_REFUSAL
        return None

    def activate(
        self, key: str, password: str | None = None, email: str | None = None,
        consent: bool = False,
    ) -> Result:
        """Activate this computer with the dialog's values.

        Empty ``password`` and ``email`` mean "not given". An email without
        ``consent`` is refused here, before anything is sent.
        """
        problem = self.consent_problem(email, consent)
        if problem is not None:
            return False, problem
        email_value = (email or "").strip() or None
        try:
            lic = self.client.activate(
                key.strip(), password=password or None, email=email_value,
                consent=consent and email_value is not None,
            )
        except LicenseError as exc:
            return False, str(exc)
        self._set(lic)
        return True, f"Acme Notes is activated on this computer ({lic.mode.value} mode)."

    def refresh(self) -> Result:
        """Validate the license online now."""
        try:
            lic = self.client.refresh()
        except LicenseError as exc:
            self._recheck()
            return False, str(exc)
        self._set(lic)
        return True, "The license was checked with Acme and is up to date."

    def erase(self) -> Result:
        """Ask Acme to erase the end user's personal data; the app goes on in limited mode."""
        try:
            lic = self.client.request_erasure()
        except LicenseError as exc:
            return False, str(exc)
        self._set(lic)
        return True, (f"Acme erased your personal data. Acme Notes now runs in "
                      f"{lic.mode.value} mode.")

    def deactivate(self) -> Result:
        """Free this computer's seat and forget the license here."""
        try:
            self.client.deactivate()
        except LicenseError as exc:
            return False, str(exc)
        self._set(None)
        return True, "This computer is deactivated: its seat is free for another computer."

    # ------------------------------------------------------------ periodic check

    def start_periodic_check(self, interval: float = CHECK_INTERVAL) -> PeriodicCheck | None:
        """Start the SDK's periodic check once (``None`` after :meth:`close`).

        Its ``on_change`` runs on the checker thread and only queues the
        change; the UI thread collects it with :meth:`take_changes`.
        """
        with self._periodic_lock:
            if not self._closed and self._periodic is None:
                self._periodic = self.client.start_periodic_check(
                    interval, on_change=self._on_change
                )
            return self._periodic

    def _on_change(self, old: License | None, new: License | None) -> None:
        self._changes.put((old, new))

    def take_changes(self) -> list[Change]:
        """The changes reported since the last call, oldest first; applies the newest."""
        changes: list[Change] = []
        while True:
            try:
                changes.append(self._changes.get_nowait())
            except queue.Empty:
                break
        if changes:
            self._set(changes[-1][1])
        return changes

    def close(self) -> None:
        """Stop the periodic check and release the client's connections."""
        with self._periodic_lock:
            self._closed = True
            handle, self._periodic = self._periodic, None
        if handle is not None:
            handle.stop()
        self.client.close()

    # ------------------------------------------------------------ presentation

    @staticmethod
    def status_text(lic: License | None) -> str:
        """Several lines for the main window: mode, features, registration, grace."""
        if lic is None:
            return NOT_ACTIVATED_TEXT
        mode = lic.mode.value
        if lic.mode is Mode.LIMITED:
            mode += " (some features are off)"
        lines = [f"Mode: {mode}", f"Features: {', '.join(sorted(lic.features)) or 'none'}"]
        if lic.email:
            lines.append(f"Registered to: {lic.email}")
        if lic.license_expires_at is not None:
            lines.append(f"License ends: {lic.license_expires_at:%Y-%m-%d}")
        if lic.offline_grace_ends_at is not None:
            lines.append(
                f"Offline grace until: {_utc(lic.offline_grace_ends_at)} "
                "(connect to the internet so the license can be renewed)"
            )
        return "\n".join(lines)

    @staticmethod
    def can_export(lic: License | None) -> bool:
        """Whether the Export button is enabled."""
        return lic is not None and lic.has_feature("export")

    @staticmethod
    def title(lic: License | None) -> str:
        """The main window's title."""
        if lic is None:
            return "Acme Notes (not activated)"
        return "Acme Notes (limited mode)" if lic.mode is Mode.LIMITED else "Acme Notes"

    @staticmethod
    def change_message(old: License | None, new: License | None) -> str:
        """One line telling the end user what the periodic check changed."""
        if new is None:
            return ("The license is no longer valid. Choose License > Activate... "
                    "to activate again.")
        if new.offline_grace_ends_at is not None and (
            old is None or old.offline_grace_ends_at is None
        ):
            return (f"Acme's license server cannot be reached: the license keeps working "
                    f"until {_utc(new.offline_grace_ends_at)}.")
        if old is None:
            return "The license is valid again."
        return f"The license was updated: {new.mode.value} mode."


# ---------------------------------------------------------------- Tk glue


def _reraise(exc: Exception) -> NoReturn:
    raise exc


def run_in_background(
    owner: tk.Misc, work: Callable[[], T], done: Callable[[T], None], *, poll_ms: int = 50,
) -> threading.Thread:
    """Run ``work()`` on a daemon thread and pass its result to ``done`` on the Tk thread.

    The Tk thread polls for the result with ``owner.after``; the worker never
    touches Tk. An exception from ``work`` is re-raised on the Tk thread (Tk
    reports it). If ``owner`` is destroyed first, the result is dropped.
    """
    results: queue.SimpleQueue[Callable[[], T]] = queue.SimpleQueue()

    def target() -> None:
        try:
            value = work()
        except Exception as exc:  # a bug, not a LicenseError: the controller catches those
            error = exc
            results.put(lambda: _reraise(error))
        else:
            results.put(lambda: value)

    def poll() -> None:
        if not owner.winfo_exists():
            return
        try:
            outcome = results.get_nowait()
        except queue.Empty:
            owner.after(poll_ms, poll)
            return
        done(outcome())

    thread = threading.Thread(target=target, name="acme-notes-license", daemon=True)
    thread.start()
    owner.after(poll_ms, poll)
    return thread


class LicenseDialog:
    """The license dialog: key, optional password and email, and the consent box.

    Activate refuses inline when an email is typed without consent; otherwise
    it activates on a worker thread and shows any SDK error inline. On
    success it calls ``on_activated(license)`` and closes.
    """

    def __init__(
        self, master: tk.Misc, controller: LicenseController, *, message: str = "",
        on_activated: Callable[[License], None] | None = None,
    ) -> None:
        import tkinter as tk
        from tkinter import ttk

        self.controller = controller
        self._master = master
        self._on_activated = on_activated
        self._grabbed = False
        self.busy = False
        self.window = tk.Toplevel(master)
        self.window.title("Activate Acme Notes")
        self.window.transient(master.winfo_toplevel())
        self.window.resizable(False, False)
        self.window.protocol("WM_DELETE_WINDOW", self.close)

        body = ttk.Frame(self.window, padding=12)
        body.grid(row=0, column=0, sticky="nsew")
        intro = message or "Enter the license key you received from Acme."
        ttk.Label(body, text=intro, wraplength=380, justify="left").grid(
            row=0, column=0, columnspan=2, sticky="w", pady=(0, 8))

        self.key_var = tk.StringVar(master=self.window)
        self.password_var = tk.StringVar(master=self.window)
        self.email_var = tk.StringVar(master=self.window)
        self.consent_var = tk.BooleanVar(master=self.window, value=False)
        self.message_var = tk.StringVar(master=self.window)

        ttk.Label(body, text="License key:").grid(row=1, column=0, sticky="w")
        self.key_entry = ttk.Entry(body, textvariable=self.key_var, width=34)
        self.key_entry.grid(row=1, column=1, sticky="ew", pady=2)
        ttk.Label(body, text="Password (if any):").grid(row=2, column=0, sticky="w")
        self.password_entry = ttk.Entry(body, textvariable=self.password_var, show="*", width=34)
        self.password_entry.grid(row=2, column=1, sticky="ew", pady=2)
        ttk.Label(body, text="Email (optional):").grid(row=3, column=0, sticky="w")
        self.email_entry = ttk.Entry(body, textvariable=self.email_var, width=34)
        self.email_entry.grid(row=3, column=1, sticky="ew", pady=2)
        self.consent_box = ttk.Checkbutton(body, text=CONSENT_LABEL, variable=self.consent_var)
        self.consent_box.grid(row=4, column=0, columnspan=2, sticky="w", pady=(6, 0))
        self.message_label = ttk.Label(
            body, textvariable=self.message_var, wraplength=380, justify="left")
        self.message_label.grid(row=5, column=0, columnspan=2, sticky="w", pady=(8, 0))

        buttons = ttk.Frame(body)
        buttons.grid(row=6, column=0, columnspan=2, sticky="e", pady=(10, 0))
        self.activate_button = ttk.Button(
            buttons, text="Activate", command=self.activate, default="active")
        self.activate_button.pack(side="right")
        self.cancel_button = ttk.Button(buttons, text="Cancel", command=self.close)
        self.cancel_button.pack(side="right", padx=(0, 6))

        self.window.bind("<Return>", lambda _event: self.activate())
        self.window.bind("<Escape>", lambda _event: self.close())
        self.window.bind("<Map>", self._grab, add="+")
        self.key_entry.focus_set()

    def _grab(self, _event: object = None) -> None:
        """Make the dialog modal once it is on screen (a grab needs a viewable window)."""
        if not self._grabbed and self.exists():
            import tkinter as tk

            try:
                self.window.grab_set()
                self._grabbed = True
            except tk.TclError:  # another app holds the grab: stay non-modal
                pass

    def exists(self) -> bool:
        """Whether the dialog is still open."""
        return bool(self.window.winfo_exists())

    def _show(self, message: str, *, error: bool) -> None:
        self.message_label.configure(foreground="#b00020" if error else "")
        self.message_var.set(message)

    def activate(self) -> None:
        """The Activate button: refuse without consent, else activate on a worker thread."""
        if self.busy:
            return
        key, password = self.key_var.get(), self.password_var.get()
        email, consent = self.email_var.get(), bool(self.consent_var.get())
        problem = self.controller.consent_problem(email, consent)
        if problem is not None:
            self._show(problem, error=True)
            return
        self.busy = True
        self.activate_button.state(["disabled"])
        self._show("Activating... this can take a few seconds.", error=False)
        run_in_background(
            self._master, lambda: self.controller.activate(key, password, email, consent),
            self._activated,
        )

    def _activated(self, result: Result) -> None:
        ok, message = result
        lic = self.controller.license
        if ok and lic is not None and self._on_activated is not None:
            self._on_activated(lic)  # even if the dialog was closed meanwhile
        if not self.exists():
            return
        self.busy = False
        self.activate_button.state(["!disabled"])
        if ok:
            self.close()
        else:
            self._show(message, error=True)

    def close(self) -> None:
        """Close the dialog (an activation in flight still reports to ``on_activated``)."""
        if self.exists():
            self.window.destroy()


class NotesWindow:
    """The main window: license status, the notes, Export, and the License menu."""

    #: How often the Tk thread collects the periodic check's changes, in ms.
    CHANGE_POLL_MS = 500

    def __init__(self, root: tk.Tk, controller: LicenseController) -> None:
        import tkinter as tk
        from tkinter import ttk

        self.root = root
        self.controller = controller
        self.dialog: LicenseDialog | None = None
        self.busy = False
        self._drain_id: str | None = None
        root.title(controller.title(None))
        root.protocol("WM_DELETE_WINDOW", self.close)
        root.bind("<Destroy>", self._destroyed, add="+")

        menubar = tk.Menu(root)
        file_menu = tk.Menu(menubar, tearoff=False)
        file_menu.add_command(label="Quit", command=self.close)
        menubar.add_cascade(label="File", menu=file_menu)
        self.license_menu = tk.Menu(menubar, tearoff=False)
        self.license_menu.add_command(label="Activate...", command=self.open_license_dialog)
        self.license_menu.add_command(label="Refresh license", command=self.refresh)
        self.license_menu.add_command(label="Erase my personal data", command=self.erase)
        self.license_menu.add_separator()
        self.license_menu.add_command(label="Deactivate this computer", command=self.deactivate)
        menubar.add_cascade(label="License", menu=self.license_menu)
        root.configure(menu=menubar)

        self.status_var = tk.StringVar(master=root, value="Checking the license...")
        ttk.Label(root, textvariable=self.status_var, justify="left", anchor="w",
                  padding=8).pack(fill="x")
        notes = ttk.Frame(root)
        notes.pack(fill="both", expand=True, padx=8)
        self.text = tk.Text(notes, wrap="word", width=64, height=16, undo=True)
        scroll = ttk.Scrollbar(notes, command=self.text.yview)
        self.text.configure(yscrollcommand=scroll.set)
        scroll.pack(side="right", fill="y")
        self.text.pack(side="left", fill="both", expand=True)
        bottom = ttk.Frame(root, padding=8)
        bottom.pack(fill="x")
        self.export_button = ttk.Button(bottom, text="Export...", command=self.export)
        self.export_button.state(["disabled"])
        self.export_button.pack(side="right")
        self.message_var = tk.StringVar(master=root)
        ttk.Label(bottom, textvariable=self.message_var, wraplength=440,
                  justify="left").pack(side="left", fill="x", expand=True)

    # ------------------------------------------------------------ license state

    def start(self, interval: float = CHECK_INTERVAL) -> None:
        """Check the license and start the periodic check, both off the Tk thread."""
        def work() -> Result:
            result = self.controller.check()
            self.controller.start_periodic_check(interval)
            return result

        run_in_background(self.root, work, self._checked)
        self._drain_id = self.root.after(self.CHANGE_POLL_MS, self._drain)

    def _checked(self, result: Result) -> None:
        ok, message = result
        self.show_license(self.controller.license)
        if not ok:
            self.open_license_dialog(message)

    def show_license(self, lic: License | None) -> None:
        """Show ``lic`` (``None``: no valid license) in the title, status and Export button."""
        self.root.title(self.controller.title(lic))
        self.status_var.set(self.controller.status_text(lic))
        self.export_button.state(["!disabled" if self.controller.can_export(lic) else "disabled"])

    def _drain(self) -> None:
        """Apply, on the Tk thread, what the periodic check reported on its own thread."""
        for old, new in self.controller.take_changes():
            self.show_license(new)
            self.message_var.set(self.controller.change_message(old, new))
        self._drain_id = self.root.after(self.CHANGE_POLL_MS, self._drain)

    def open_license_dialog(self, message: str = "") -> LicenseDialog:
        """Open the license dialog, or raise the one already open."""
        if self.dialog is not None and self.dialog.exists():
            self.dialog.window.lift()
            return self.dialog
        self.dialog = LicenseDialog(self.root, self.controller, message=message,
                                    on_activated=self._activated)
        return self.dialog

    def _activated(self, lic: License) -> None:
        self.show_license(lic)
        self.message_var.set("Activated. Thank you for buying Acme Notes!")

    # ------------------------------------------------------------ menu actions

    def _action(self, work: Callable[[], Result]) -> None:
        if self.busy:
            self.message_var.set("Please wait: Acme's license server is being contacted.")
            return
        self.busy = True
        self.message_var.set("Contacting Acme's license server...")

        def done(result: Result) -> None:
            self.busy = False
            self.show_license(self.controller.license)
            self.message_var.set(result[1])

        run_in_background(self.root, work, done)

    def refresh(self) -> None:
        """License > Refresh license."""
        self._action(self.controller.refresh)

    def erase(self, *, ask: bool = True) -> None:
        """License > Erase my personal data (asks first unless ``ask=False``)."""
        from tkinter import messagebox

        if ask and not messagebox.askyesno(
            "Erase my personal data",
            "Acme will erase the email and registration details it holds for this copy. "
            "Acme Notes keeps working, in limited mode. Continue?", parent=self.root,
        ):
            return
        self._action(self.controller.erase)

    def deactivate(self, *, ask: bool = True) -> None:
        """License > Deactivate this computer (asks first unless ``ask=False``)."""
        from tkinter import messagebox

        if ask and not messagebox.askyesno(
            "Deactivate this computer",
            "Free this computer's seat? Acme Notes will need the license key again.",
            parent=self.root,
        ):
            return
        self._action(self.controller.deactivate)

    def export(self) -> None:
        """The Export button: save the notes to a file the user picks."""
        from tkinter import filedialog

        if not self.controller.can_export(self.controller.license):
            self.message_var.set("Export is not included in your license.")
            return
        name = filedialog.asksaveasfilename(
            parent=self.root, title="Export notes", defaultextension=".txt",
            filetypes=[("Text", "*.txt"), ("All files", "*")],
        )
        if name:
            self.export_to(Path(name))

    def export_to(self, path: Path) -> bool:
        """Write the notes to ``path`` if the license allows export; report inline."""
        if not self.controller.can_export(self.controller.license):
            self.message_var.set("Export is not included in your license.")
            return False
        try:
            path.write_text(self.text.get("1.0", "end-1c"), encoding="utf-8")
        except OSError as exc:
            self.message_var.set(f"Could not export: {exc}")
            return False
        self.message_var.set(f"Exported to {path}")
        return True

    def close(self) -> None:
        """Quit: stop the periodic check, close the dialog and the window."""
        if self.dialog is not None:
            self.dialog.close()
        self.root.destroy()  # runs _destroyed

    def _destroyed(self, event: tk.Event[tk.Misc]) -> None:
        """However the window goes away: stop polling and stop the periodic check."""
        if event.widget is not self.root:
            return  # a child widget
        if self._drain_id is not None:
            self.root.after_cancel(self._drain_id)
            self._drain_id = None
        self.controller.close()


def main() -> int:
    """Start Acme Notes; returns the process exit code."""
    try:
        client = make_client()
    except KeyError:
        print("Set ACME_PUBLIC_KEYS to the product's k4.public key(s).", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"Bad license configuration: {exc}", file=sys.stderr)
        return 2
    import tkinter as tk

    try:
        root = tk.Tk()
    except tk.TclError as exc:
        client.close()
        print(f"Acme Notes needs a display: {exc}", file=sys.stderr)
        return 2
    NotesWindow(root, LicenseController(client)).start()
    root.mainloop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
