"""The container recipe (deploy/Dockerfile, deploy/compose.yaml), checked without Docker.

Images cannot be built on the machines these tests run on (no Docker daemon),
so this reads the recipe instead of pretending to run it. Invariants:
- the image runs as a non-root user, from a multi-stage build that installs
  the package (server extra) from the build context, serves on 0.0.0.0:8000
  and checks /v1/health;
- the master key is never in the image nor in an environment variable: the
  image reads it from the secret compose mounts;
- the schema is migrated before the server starts; the server's port is
  published on the host's loopback only (the TLS proxy is the way in);
- the build context holds the sources and metadata only (no .venv, tests,
  keys or databases).
"""

from __future__ import annotations

import base64
import fnmatch
import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import software_dna
from software_dna.server.config import environ_without_settings
from software_dna.server.testing import free_port

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
#: The sources under test (the server processes import these, not an installed copy).
SRC = Path(next(iter(software_dna.__path__))).parent


def _compose() -> dict[str, Any]:
    yaml: Any = importlib.import_module("yaml")  # PyYAML: a dependency of schemathesis (dev)
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text("utf-8"))
    return loaded


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined), as (KEYWORD, rest)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def _final_stage() -> list[tuple[str, str]]:
    steps = _instructions()
    last = max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")
    return steps[last:]


def test_the_image_is_built_in_stages_and_runs_as_a_non_root_user() -> None:
    assert sum(1 for keyword, _ in _instructions() if keyword == "FROM") >= 2
    users = [rest for keyword, rest in _final_stage() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    installs = [rest for keyword, rest in _instructions() if keyword == "RUN"
                and "pip install" in rest and "[server]" in rest]
    assert installs and all(" -e " not in rest and "--editable" not in rest for rest in installs)


def test_the_image_serves_on_port_8000_and_checks_health() -> None:
    final = dict(_final_stage())
    command = json.loads(final["CMD"])  # the exec form: no shell in between
    assert command[:3] == ["software-dna", "server", "run"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "8000"
    assert "8000" in final["EXPOSE"].split()
    assert "http://127.0.0.1:8000/v1/health" in final["HEALTHCHECK"]
    assert final["STOPSIGNAL"] == "SIGTERM"


def test_the_master_key_is_a_secret_never_in_the_image_or_the_environment() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert "SOFTWARE_DNA_MASTER_KEY_FILE=/run/secrets/master_key" in dockerfile
    assert not re.search(r"SOFTWARE_DNA_MASTER_KEY=", dockerfile)
    assert not re.search(r"^\s*(COPY|ADD)\b.*master", dockerfile, flags=re.MULTILINE | re.I)
    compose = _compose()
    assert compose["secrets"]["master_key"] == {"file": "./master.key"}
    for name in ("migrate", "server"):
        service = compose["services"][name]
        assert "master_key" in service["secrets"]
        assert not any(key.startswith("SOFTWARE_DNA_MASTER_KEY")
                       for key in service.get("environment", {}))


def test_compose_migrates_before_serving_on_postgresql() -> None:
    services = _compose()["services"]
    migrate, server = services["migrate"], services["server"]
    assert migrate["command"] == ["software-dna", "server", "migrate"]
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert server["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert server["environment"]["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "postgres" in services and services["postgres"]["volumes"]
    assert any(v.endswith(":/var/lib/software-dna") for v in server["volumes"])
    assert server["ports"] == ["127.0.0.1:8000:8000"]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's ignore rules, simplified: the last pattern matching the path or a parent wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        core = pattern.removeprefix("!")
        anywhere = core.startswith("**/")
        core = core.removeprefix("**/").rstrip("/")
        for prefix in prefixes:
            name = prefix.rsplit("/", 1)[-1]
            if fnmatch.fnmatch(prefix, core) or (anywhere and fnmatch.fnmatch(name, core)):
                ignored = not negated
                break
    return ignored


def test_the_build_context_holds_the_sources_and_nothing_secret() -> None:
    lines = (DEPLOY / "Dockerfile.dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for needed in ("pyproject.toml", "setup.py", "README.md", "tools/catalogues.py",
                   "src/software_dna/__init__.py", "src/software_dna/server/app.py"):
        assert not _ignored(needed, patterns), needed
    for secret in (".venv/bin/python", "tests/conftest.py", "master.key", "deploy/master.key",
                   "server.db", ".git/config", "src/software_dna/__pycache__/x.pyc"):
        assert _ignored(secret, patterns), secret


def _final_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in _final_stage():
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_the_images_commands_serve_and_pass_the_health_check(tmp_path: Path) -> None:
    """The image's environment, init, CMD and HEALTHCHECK, run here outside a container.

    Not the image (it cannot be built here): the same command lines against
    this checkout, with the image's paths mapped into a temp folder.
    """
    home, secrets_dir = tmp_path / "data", tmp_path / "secrets"
    home.mkdir(mode=0o700)
    secrets_dir.mkdir(mode=0o700)
    port = free_port()
    image_env = _final_env()

    def mapped(text: str) -> str:
        return (text.replace("/var/lib/software-dna", str(home))
                .replace("/run/secrets", str(secrets_dir)).replace("8000", str(port)))

    key_file = Path(mapped(image_env["SOFTWARE_DNA_MASTER_KEY_FILE"]))
    # The key made as the docs say, outside the container (unpadded base64url of 32 bytes).
    key_file.write_text(base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=") + "\n")
    key_file.chmod(0o400)
    env = {**environ_without_settings(), "PYTHONPATH": str(SRC)}
    env.update({name: mapped(value) for name, value in image_env.items()
                if name.startswith(("SOFTWARE_DNA_", "PYTHON"))})
    cli = [sys.executable, "-m", "software_dna.server.cli"]
    init = subprocess.run([*cli, "server", "init"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert init.returncode == 0, init.stderr
    command = [mapped(part) for part in json.loads(dict(_final_stage())["CMD"])]
    assert command[0] == "software-dna"
    with subprocess.Popen([*cli, *command[1:]], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE) as server:
        try:
            health = json.loads(mapped(dict(_final_stage())["HEALTHCHECK"]).split("CMD", 1)[1])
            assert health[0] == "python"
            for _ in range(300):  # the start period: until it answers, or the server exits
                probe = subprocess.run([sys.executable, *health[1:]], capture_output=True,
                                       timeout=30, check=False)
                if probe.returncode == 0 or server.poll() is not None:
                    break
                time.sleep(0.1)
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            assert probe.returncode == 0, probe.stderr
        finally:
            server.send_signal(signal.SIGTERM)  # the image's STOPSIGNAL
            code = server.wait(60)
    assert code == 0
