"""A vendor's app using the SDK, frozen into one file by ``test_frozen_app.py``.

Run as ``app CONFIG STEP``. ``CONFIG`` is a JSON file written by the test
(product, trusted keys, server URL, license key, file names); ``STEP`` is:

- ``activate``: activate the license (first run, online);
- ``check``: the offline check at start-up (the server is stopped);
- ``survive``: check, then print ``READY`` and wait until the file named by
  ``go`` exists (meanwhile the test removes this process's unpacked folder);
  then check offline, refresh online, run one periodic check and provoke a
  refusal in German, each outcome recorded.

The app trusts only the vendor's CA, shipped inside the app as a data file
(``vendor-ca.pem`` in the unpacked folder). Each step prints one JSON line
(prefixed ``RESULT``) and exits 0; the test decides what passes.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from software_dna import LicenseClient, LicenseError

_WAIT = 120.0  # seconds to wait for the test's go-ahead


def _client(config: dict[str, Any], **options: Any) -> LicenseClient:
    bundled = Path(getattr(sys, "_MEIPASS", Path(__file__).parent))
    return LicenseClient(product=config["product"], public_keys=config["public_keys"],
                         server_url=config["server_url"], app_name="FrozenNotes",
                         app_author="Acme", ca_bundle=str(bundled / "vendor-ca.pem"),
                         timeout=20.0, **options)


def _outcome(call: Any) -> dict[str, Any]:
    """What ``call()`` gave: a license's mode, or the error's class and message."""
    try:
        result = call()
    except LicenseError as exc:
        report = {"ok": False, "error": type(exc).__name__, "message": str(exc)}
        if exc.__cause__ is not None:  # what the SDK caught, to explain a failure
            report["cause"] = repr(exc.__cause__)
            traceback.print_exception(exc.__cause__)
        return report
    except Exception as exc:
        return {"ok": False, "error": f"undocumented {type(exc).__name__}", "message": str(exc)}
    mode = getattr(result, "mode", None)
    return {"ok": True, "mode": None if mode is None else str(mode.value)}


def _survive(config: dict[str, Any], client: LicenseClient) -> dict[str, Any]:
    german = _client(config, language="de", store_path=config["german_store"])
    report: dict[str, Any] = {"before": _outcome(client.check)}
    print("READY", json.dumps({"meipass": getattr(sys, "_MEIPASS", "")}), flush=True)
    go = Path(config["go"])
    ends = time.monotonic() + _WAIT
    while not go.exists():
        if time.monotonic() > ends:
            return {"timeout": True}
        time.sleep(0.05)
    report["unpacked_folder_exists"] = Path(getattr(sys, "_MEIPASS", "")).exists()
    report["check"] = _outcome(client.check)
    report["refresh"] = _outcome(client.refresh)  # TLS, then a store write
    errors: list[str] = []
    checker = client.start_periodic_check(3600, on_error=lambda e: errors.append(repr(e)))
    checker.tick()  # one periodic check now, on this thread
    checker.stop()
    report["periodic"] = {"errors": errors, "license": checker.last_license is not None}
    report["german"] = _outcome(lambda: german.activate(config["revoked_key"]))
    german.close()
    return report


def main(argv: list[str]) -> int:
    """Run one step (see the module's docstring); print its result; 0, or 2 for usage."""
    if len(argv) != 3 or argv[2] not in ("activate", "check", "survive"):
        print("usage: app CONFIG activate|check|survive", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    step = argv[2]
    client = _client(config)
    report: dict[str, Any] = {"store": str(client.store_path),
                              "executable": sys.executable,
                              "frozen": bool(getattr(sys, "frozen", False))}
    if step == "activate":
        report["activate"] = _outcome(lambda: client.activate(config["license_key"]))
    elif step == "check":
        report["check"] = _outcome(client.check)
    else:
        report.update(_survive(config, client))
    client.close()
    print("RESULT", json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
