"""`software-dna server init / migrate / run`: the commands in this process, and end to end
in subprocesses where a real process is what is tested (the console script, a server that
serves, a closed pipe, an SDK-only install)."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text

from software_dna.server.cli import main
from software_dna.server.testing import free_port


@pytest.fixture(autouse=True)
def _own_key_folder(own_key_folder: Path) -> Path:
    """``server init`` creates the default master key: in a folder of each test's own."""
    return own_key_folder


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "software-dna"
    return [str(script)] if script.exists() else [sys.executable, "-m", "software_dna.server.cli"]


def _env(home: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOFTWARE_DNA_") and k != "DATABASE_URL"}
    env["SOFTWARE_DNA_SERVER_HOME"] = str(home)
    env["DATABASE_URL"] = database_url
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The console script in a new process (``server run`` serves or re-executes itself)."""
    return subprocess.run([*_cli(), *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


@dataclass
class Done:
    """What a command run in this process did: like ``subprocess.CompletedProcess``."""

    returncode: int
    stdout: str
    stderr: str


Call = Callable[..., Done]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Call:
    """``cli(args, env, cwd=None)``: ``main(args)`` in this process, with exactly ``env``."""
    def call(args: list[str], env: dict[str, str], cwd: Path | None = None) -> Done:
        with monkeypatch.context() as patch:
            for name in set(os.environ) - set(env):
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            if cwd is not None:
                patch.chdir(cwd)
            capsys.readouterr()
            try:
                code = main(list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            out = capsys.readouterr()
        return Done(code, out.out, out.err)
    return call


@pytest.mark.parametrize("args", [
    [], ["server"], ["server", "init"], ["server", "migrate"], ["server", "run"],
    ["server", "doctor"],
])
def test_help(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*args, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("Usage: software-dna")
    assert len(out.splitlines()) > 3


def test_console_script_help() -> None:
    done = subprocess.run([*_cli(), "server", "--help"], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "init" in done.stdout and "migrate" in done.stdout and "run" in done.stdout


def test_init_migrate_run(tmp_path: Path, fresh_database_url: str, cli: Call) -> None:
    home = tmp_path / "home"
    env = _env(home, fresh_database_url)

    if fresh_database_url.startswith("sqlite:///"):
        # No database file: run refuses (and creates nothing) and says to init.
        missing = _run(["server", "run", "--port", str(free_port())], env)
        assert missing.returncode == 1
        assert "software-dna server init" in missing.stderr
        assert not home.exists()
        Path(fresh_database_url.removeprefix("sqlite:///")).touch()
    # A database without the schema: run refuses and says what to do.
    refused = _run(["server", "run", "--port", str(free_port())], env)
    assert refused.returncode == 1
    assert "software-dna server migrate" in refused.stderr

    init = cli(["server", "init"], env)
    assert init.returncode == 0, init.stderr
    match = re.search(r"^(sdna_admin_\S+)$", init.stdout, re.MULTILINE)
    assert match, init.stdout
    admin_key = match.group(1)
    # The key goes outside the data folder (the user config folder), and init says where.
    key_file = Path(env["XDG_CONFIG_HOME"]) / "software-dna-keys" / "master.key"
    assert not (home / "master.key").exists()
    assert f"Master key: {key_file} (created)" in init.stdout
    assert "server backup" in init.stdout and str(key_file) in init.stdout
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    master = key_file.read_bytes()

    again = cli(["server", "init"], env)
    assert again.returncode == 0 and "sdna_admin_" not in again.stdout
    assert key_file.read_bytes() == master  # never overwritten

    migrate = cli(["server", "migrate"], env)
    assert migrate.returncode == 0 and "already at revision" in migrate.stdout

    port = free_port()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([*_cli(), "server", "run", "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/v1/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        headers = {"Authorization": f"Bearer {admin_key}"}
        made = requests.post(f"{url}/v1/admin/products", json={"id": "cli-app"},
                             headers=headers, timeout=30)
        assert made.status_code == 201, made.text
        assert requests.get(f"{url}/v1/admin/products", timeout=30).status_code == 401
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()

    # A new admin key replaces the old one.
    renewed = cli(["server", "init", "--new-admin-key"], env)
    assert renewed.returncode == 0
    assert admin_key not in renewed.stdout and "sdna_admin_" in renewed.stdout


def test_database_newer_than_server(tmp_path: Path, fresh_database_url: str,
                                    cli: Call) -> None:
    env = _env(tmp_path / "home", fresh_database_url)
    assert cli(["server", "init"], env).returncode == 0
    engine = create_engine(fresh_database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'ffff9999'"))
    finally:
        engine.dispose()
    refused = _run(["server", "run", "--port", str(free_port())], env)
    assert refused.returncode == 1
    assert "newer than this server" in refused.stderr


def test_missing_master_key(tmp_path: Path, cli: Call) -> None:
    env = _env(tmp_path / "home", f"sqlite:///{tmp_path / 'db.sqlite'}")
    (tmp_path / "db.sqlite").touch()  # migrate refuses a SQLite file that is not there
    assert cli(["server", "migrate"], env).returncode == 0
    refused = _run(["server", "run", "--port", str(free_port())], env)
    assert refused.returncode == 1
    assert "software-dna server init" in refused.stderr


_BLOCK_SERVER_EXTRA = """
import importlib.abc, sys

class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition('.')[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Blocker())
from software_dna.server.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("blocked", [
    {"typer", "click", "fastapi", "starlette", "pydantic", "pydantic_settings", "sqlalchemy",
     "alembic", "uvicorn", "psycopg"},  # the SDK alone
    {"typer"}, {"pydantic_settings"},
])
@pytest.mark.parametrize("argv", [[], ["products", "list"], ["products", "--help"]])
def test_without_the_server_extra_one_line_says_what_to_install(
        blocked: set[str], argv: list[str]) -> None:
    code = _BLOCK_SERVER_EXTRA.format(BLOCKED=sorted(blocked))
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1, done.stderr
    assert "software-dna[server]" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("blocked", [
    {"typer", "click", "fastapi", "starlette", "pydantic", "pydantic_settings", "sqlalchemy",
     "alembic", "uvicorn", "psycopg"},  # the SDK alone
    {"typer"},
])
def test_without_the_server_extra_version_and_help_still_work(blocked: set[str]) -> None:
    code = _BLOCK_SERVER_EXTRA.format(BLOCKED=sorted(blocked))
    done = subprocess.run([sys.executable, "-c", code, "--version"], capture_output=True,
                          text=True, timeout=60, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert re.fullmatch(r"software-dna \S+\n", done.stdout), done.stdout
    for flag in ("-h", "--help"):
        helped = subprocess.run([sys.executable, "-c", code, flag], capture_output=True,
                                text=True, timeout=60, check=False)
        assert (helped.returncode, helped.stderr) == (0, "")
        assert helped.stdout.startswith("Usage: software-dna")
        assert "--version" in helped.stdout and "software-dna[server]" in helped.stdout


@pytest.mark.parametrize("argv", [["--version"], ["products", "list"], ["audit", "--limit", "200"],
                                  ["licenses", "list", "--json"]])
def test_a_closed_stdout_ends_quietly(tmp_path: Path, argv: list[str], cli: Call) -> None:
    env = {**_clean(), "SOFTWARE_DNA_SERVER_HOME": str(tmp_path / "h")}
    assert cli(["server", "init"], env).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # like `| head -1` that has already gone
    try:
        done = subprocess.run([*_cli(), *argv], env=env, stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)
    assert done.stderr == ""
    assert done.returncode == 141


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(r"software-dna \S+\n", capsys.readouterr().out)


def test_server_url_and_database_url_both_in_the_environment_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    monkeypatch.setenv("SOFTWARE_DNA_SERVER_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SOFTWARE_DNA_ADMIN_KEY", "sdna_admin_x")
    assert main(["products", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Usage: software-dna products list")
    assert "SOFTWARE_DNA_SERVER_URL" in err and "DATABASE_URL" in err and "unset" in err


def test_home_override_is_not_written_into_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOFTWARE_DNA_SERVER_HOME", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    before = dict(os.environ)
    assert main(["server", "init", "--home", str(tmp_path / "h")]) == 0
    assert (tmp_path / "h" / "server.db").exists()
    assert dict(os.environ) == before


def test_run_with_home_serves_that_folder(tmp_path: Path, cli: Call) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SOFTWARE_DNA_") and k != "DATABASE_URL"}
    home = tmp_path / "given-home"
    assert cli(["server", "init", "--home", str(home)], env).returncode == 0
    port = free_port()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen([*_cli(), "server", "run", "--home", str(home), "--port", str(port)],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/v1/health",
                                timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, (tmp_path / "run.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        # the settings reached the server process through its own environment only
        environ = Path(f"/proc/{proc.pid}/environ")
        if environ.exists():
            assert f"SOFTWARE_DNA_SERVER_HOME={home}".encode() in environ.read_bytes()
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
    assert (home / "server.db").exists()


def _clean() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith("SOFTWARE_DNA_") and k != "DATABASE_URL"}


def _one_line_error(done: subprocess.CompletedProcess[str] | Done, code: int,
                    *names: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("software-dna: error: "), lines
    for name in names:
        assert name in lines[0], lines
    return lines[0]


@pytest.mark.parametrize(("args", "env_extra", "names"), [
    (["server", "run", "--database-url", "foo://bar"], {}, ["--database-url", "postgresql://"]),
    (["server", "init", "--database-url", "not a url"], {},
     ["--database-url", "not a database URL"]),
    (["server", "migrate", "--database-url", "mysql://x@127.0.0.1/y"], {},
     ["--database-url", "MySQLdb", "not installed"]),
    (["server", "run"], {"DATABASE_URL": "not a url"}, ["DATABASE_URL", "not a database URL"]),
    (["server", "run"], {"SOFTWARE_DNA_DATABASE_URL": "not a url"},
     ["SOFTWARE_DNA_DATABASE_URL", "not a database URL"]),
    (["server", "run", "--database-url", "postgresql://x@127.0.0.1:1/y"], {},
     ["--database-url", "database server is running"]),
    (["products", "list", "--database-url", "not a url"], {},
     ["--database-url", "not a database URL"]),
    (["products", "list"], {"DATABASE_URL": "not a url"}, ["DATABASE_URL", "not a database URL"]),
    (["products", "list", "--database-url", "postgresql://x@127.0.0.1:1/y"], {},
     ["--database-url", "database server is running"]),
])
def test_a_bad_database_setting_is_one_line_naming_it(
        tmp_path: Path, args: list[str], env_extra: dict[str, str], names: list[str],
        cli: Call) -> None:
    home = tmp_path / "home"
    env = {**_clean(), "SOFTWARE_DNA_SERVER_HOME": str(home), **env_extra}
    # `server run` re-executes itself: it runs in a process of its own.
    done = (_run([*args, "--port", str(free_port())], env) if args[1:2] == ["run"]
            else cli(args, env))
    _one_line_error(done, 1, *names)
    assert not home.exists()  # nothing created, not even by init


@pytest.mark.parametrize(("args", "option"), [
    (["--port", "99999"], "--port"), (["--port", "0"], "--port"), (["--workers", "0"], "--workers"),
])
def test_port_and_workers_out_of_range_are_usage_errors(args: list[str], option: str,
                                                        cli: Call) -> None:
    done = cli(["server", "run", *args], _clean())
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("Usage: software-dna server run")
    assert f"Error: Invalid value for '{option}'" in done.stderr


@pytest.mark.parametrize("args", [
    ["server", "run", "--home", "{home}"],
    ["server", "run", "--data-dir", "{home}"],
    ["server", "migrate", "--home", "{home}"],
    ["server", "run", "--database-url", "sqlite:///{home}/nonexist.db"],
    ["server", "migrate", "--database-url", "sqlite:///nonexist.db"],
])
def test_a_missing_data_folder_or_sqlite_file_is_refused_and_nothing_created(
        tmp_path: Path, args: list[str], cli: Call) -> None:
    home = tmp_path / "nonexisthome"
    argv = [a.format(home=home) for a in args]
    env = {**_clean(), "SOFTWARE_DNA_SERVER_HOME": str(home)}
    done: subprocess.CompletedProcess[str] | Done
    if "run" in argv:  # `server run` re-executes itself: a process of its own
        done = subprocess.run([*_cli(), *argv, "--port", str(free_port())], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=60,
                              check=False)
    else:
        done = cli(argv, env, cwd=tmp_path)
    _one_line_error(done, 1, "run `software-dna server init`")
    assert not home.exists()
    assert list(tmp_path.iterdir()) == []


def test_data_dir_is_accepted_by_every_server_command(tmp_path: Path, cli: Call) -> None:
    home = tmp_path / "h"
    env = _clean()
    init = cli(["server", "init", "--data-dir", str(home)], env)
    assert init.returncode == 0, init.stderr
    assert "(already there, kept)" not in init.stdout
    assert (home / "server.db").exists() and not (home / "master.key").exists()
    again = cli(["server", "init", "--data-dir", str(home)], env)
    assert "master.key (already there, kept)" in again.stdout, again.stdout
    migrate = cli(["server", "migrate", "--data-dir", str(home)], env)
    assert migrate.returncode == 0 and "already at revision" in migrate.stdout
    for command in ("init", "migrate", "run"):
        helped = cli(["server", command, "--help"], env)
        assert "--data-dir" in helped.stdout and "--home" in helped.stdout
