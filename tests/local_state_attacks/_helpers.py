"""Shared helpers of the local-state attack tests: where a simulated machine keeps its files."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from software_dna.client.locations import Env, anchor_dir, keyring_path, pointer_path, witness_path
from software_dna.testing import SimulatedMachine


def env_of(machine: SimulatedMachine) -> Env:
    """The account ``LicenseClient(machine=...)`` uses."""
    return Env(machine.environ, machine.home, machine.platform)


def anchor(machine: SimulatedMachine) -> Path:
    return anchor_dir(env=env_of(machine))


def keyring(product: str, machine: SimulatedMachine) -> Path:
    return keyring_path(product, env=env_of(machine))


def witness(product: str, machine: SimulatedMachine) -> Path:
    return witness_path(product, env=env_of(machine))


def pointer(product: str, machine: SimulatedMachine) -> Path:
    return pointer_path(product, env=env_of(machine))


def edit_keyring(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))


def outcome(call: Callable[[], Any]) -> Any:
    """The result of ``call`` or the exception it raised (any type)."""
    try:
        return call()
    except BaseException as exc:
        return exc


def finishes(call: Callable[[], Any], fifo: Path, within: float = 20.0) -> tuple[bool, Any]:
    """Run ``call`` in a thread; whether it returned within ``within`` seconds, and what.

    Not a speed measurement: a hang detector. A thread stuck opening ``fifo``
    is released afterwards by opening the FIFO's write end once.
    """
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(outcome(call)), daemon=True)
    thread.start()
    thread.join(within)
    hung = thread.is_alive()
    if hung:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
        except OSError:
            pass
        thread.join(within)
    return not hung, box[0] if box else None
