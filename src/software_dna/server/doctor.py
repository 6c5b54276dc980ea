"""What ``software-dna server doctor`` checks: the set-up a production server needs.

:func:`diagnose` runs every check on a :class:`~software_dna.server.config.Settings`
and returns one :class:`Finding` per check, in a fixed order: the public URL
(and, when it can be reached, TLS in front of it and its clock), the proxy
trust, the master key file, the data folder, the database (reachable, schema
current, its clock), several workers on SQLite, workers against CPUs, SMTP
(connect and greet, never a mail) and the metrics token.

No finding carries a secret: the master key, the SMTP password, the metrics
token and the database password are never read into a message (a database URL
is shown with its password masked).
"""

from __future__ import annotations

import contextlib
import enum
import ipaddress
import logging
import os
import smtplib
import ssl
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

import requests
from sqlalchemy import make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from software_dna.server.bootstrap import check_key_opens
from software_dna.server.config import ConfigError, Settings
from software_dna.server.crypto import Vault, load_master_key, locate_master_key
from software_dna.server.db import SchemaError, check_schema, make_engine, shown_url
from software_dna.server.mail import connect, mail_configured, mail_warnings, smtp_address
from software_dna.server.services.hotpath import DIRECT_CONNECTIONS
from software_dna.wire.times import parse_rfc3339

__all__ = ["CLOCK_TOLERANCE", "METRICS_TOKEN_VARIABLE", "PROBE_TIMEOUT", "Finding", "Level",
           "diagnose", "metrics_token_set"]

#: Seconds two clocks may differ before the doctor warns (license times depend on it).
CLOCK_TOLERANCE = 5.0
#: Seconds to wait for the public URL's answer.
PROBE_TIMEOUT = 10.0
#: The variable holding the token that protects the metrics path.
METRICS_TOKEN_VARIABLE = "SOFTWARE_DNA_METRICS_TOKEN"  # noqa: S105 - a name, not a value

_PROG = "software-dna"


class Level(enum.Enum):
    """How a finding counts: ``problem`` makes ``server doctor`` exit 1."""

    OK = "ok"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Finding:
    """One check's outcome.

    Attributes:
        level: ok, warning or problem.
        subject: what was checked (``"public URL"``, ``"master key"``, ...).
        message: one sentence; for a warning or a problem, what to do.
    """

    level: Level
    subject: str
    message: str

    def line(self) -> str:
        """``problem  master key: ...``: the line ``server doctor`` prints."""
        return f"{self.level.value:<8} {self.subject}: {self.message}"


def _ok(subject: str, message: str) -> Finding:
    return Finding(Level.OK, subject, message)


def _warning(subject: str, message: str) -> Finding:
    return Finding(Level.WARNING, subject, message)


def _problem(subject: str, message: str) -> Finding:
    return Finding(Level.PROBLEM, subject, message)


def diagnose(settings: Settings, *, url: str | None = None, workers: int = 1,
             forwarded_allow_ips: str | None = None, ca_file: str | None = None,
             clock: Callable[[], float] = time.time,
             cpu_count: int | None = None) -> list[Finding]:
    """Check the set-up ``settings`` describes; one finding per check, never raises.

    Args:
        settings: the server's settings (environment and command line).
        url: the address to probe for ``/v1/health`` (default: ``settings.public_url``).
        workers: the worker processes ``server run --workers`` will start (>= 1).
        forwarded_allow_ips: what ``server run --forwarded-allow-ips`` will be given
            (None: not given, so forwarded headers are ignored).
        ca_file: a PEM CA bundle to verify the probed address with (default: the
            trust store of ``requests``).
        clock: this machine's time in seconds since the epoch (tests shift it).
        cpu_count: the CPUs this process may use (default: measured).
    """
    with _quiet_key_warning():
        return _diagnose(settings, url=url, workers=workers,
                         forwarded_allow_ips=forwarded_allow_ips, ca_file=ca_file, clock=clock,
                         cpu_count=cpu_count)


@contextlib.contextmanager
def _quiet_key_warning() -> Iterator[None]:
    """Hold back the warning loading a key from the data folder logs: a finding says it."""
    logger = logging.getLogger("software_dna.server")
    silence = logging.Filter("software_dna.server.never")  # passes no record of this logger
    logger.addFilter(silence)
    try:
        yield
    finally:
        logger.removeFilter(silence)


def _diagnose(settings: Settings, *, url: str | None, workers: int,
              forwarded_allow_ips: str | None, ca_file: str | None,
              clock: Callable[[], float], cpu_count: int | None) -> list[Finding]:
    findings: list[Finding] = []
    findings += _public_url(settings, url, ca_file, clock)
    findings.append(_proxy_trust(settings, forwarded_allow_ips))
    findings += _master_key(settings)
    findings.append(_data_folder(settings))
    findings += _database(settings, clock, workers)
    findings += _workers(settings, workers, cpu_count)
    findings += _smtp(settings)
    findings.append(_metrics_token(settings))
    return findings


# --------------------------------------------------------------------------- public URL


def _public_url(settings: Settings, url: str | None, ca_file: str | None,
                clock: Callable[[], float]) -> list[Finding]:
    subject = "public URL"
    public = settings.public_url
    findings: list[Finding] = []
    if public is None:
        findings.append(_problem(subject, "SOFTWARE_DNA_PUBLIC_URL is not set: set it to the "
                                 "https:// address end users reach this server at (mailed "
                                 "links and the control panel's cookies depend on it)."))
    elif not public.startswith("https://"):
        findings.append(_problem(subject, f"{public} is plain http: put a TLS-terminating "
                                 "proxy in front and set SOFTWARE_DNA_PUBLIC_URL to its "
                                 "https:// address."))
    else:
        findings.append(_ok(subject, public))
    target = url or public
    if target is None:
        findings.append(_warning("TLS", "nothing to probe: set SOFTWARE_DNA_PUBLIC_URL or give "
                                 "--url, once the server runs behind its proxy."))
        return findings
    return findings + _probe(target.rstrip("/"), explicit=url is not None, ca_file=ca_file,
                             clock=clock)


def _probe(base: str, *, explicit: bool, ca_file: str | None,
           clock: Callable[[], float]) -> list[Finding]:
    """GET ``base``/v1/health with certificate verification: TLS, the answer, its clock."""
    subject = "TLS"
    parts = urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [_problem(subject, f"--url {base!r} is not an http:// or https:// address.")]
    health = f"{base}/v1/health"
    started = clock()
    try:
        answer = requests.get(health, timeout=PROBE_TIMEOUT, allow_redirects=False,
                              verify=ca_file or True)
    except requests.exceptions.SSLError as exc:
        reason = _ssl_reason(exc)
        return [_problem(subject, f"{health}: the certificate does not verify ({reason}): "
                         "install a certificate a public CA signed for this name (or give "
                         "--ca-file with your private CA).")]
    except (requests.RequestException, OSError) as exc:
        advice = ("check the address and that the server and its proxy run" if explicit
                  else "run the doctor where end users' network reaches the server, or give "
                       "--url")
        finding = _problem if explicit else _warning
        return [finding(subject, f"cannot reach {health} ({type(exc).__name__}): {advice}.")]
    ended = clock()
    findings: list[Finding] = []
    if parts.scheme != "https":
        findings.append(_problem(subject, f"{health} answers over plain http: serve it through "
                                 "a TLS-terminating proxy and probe its https:// address."))
    elif answer.status_code != 200:
        findings.append(_problem(subject, f"{health} answered HTTP {answer.status_code}: check "
                                 "that the proxy forwards to the license server (and the "
                                 "server's log)."))
    else:
        findings.append(_ok(subject, f"{health} answers over verified TLS."))
    findings += _remote_clock(answer, (started + ended) / 2)
    return findings


def _ssl_reason(exc: Exception) -> str:
    """The innermost SSL error's reason (``certificate verify failed: ...``)."""
    seen: BaseException | None = exc
    while seen is not None:
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, ssl.SSLCertVerificationError) and arg.verify_message:
                return str(arg.verify_message).rstrip(".")
            if isinstance(arg, ssl.SSLError):
                return str(arg.reason or arg).lower().replace("_", " ")
            if isinstance(arg, BaseException) and arg is not seen:
                seen = arg
                break
        else:
            seen = seen.__cause__ or seen.__context__
    return "TLS handshake failed"


def _remote_clock(answer: requests.Response, now: float) -> list[Finding]:
    """The probed server's clock (its ``server_time``, else the Date header) against ours."""
    remote: float | None = None
    source = ""
    try:
        body = answer.json()
        if isinstance(body, dict) and isinstance(body.get("server_time"), str):
            remote = parse_rfc3339(body["server_time"]).timestamp()
            source = "its /v1/health server_time"
    except ValueError:
        pass
    if remote is None and answer.headers.get("Date"):
        try:
            remote = parsedate_to_datetime(answer.headers["Date"]).timestamp()
            source = "its Date header"
        except (TypeError, ValueError):
            remote = None
    if remote is None:
        return []
    return [_clock_finding("clock (public URL)", remote - now, source)]


def _clock_finding(subject: str, offset: float, source: str) -> Finding:
    if abs(offset) > CLOCK_TOLERANCE:
        ahead = "ahead of" if offset > 0 else "behind"
        return _warning(subject, f"{source} is {abs(offset):.0f} s {ahead} this machine's "
                        "clock: license expiry, refresh and offline grace are computed from "
                        "it; run NTP (e.g. systemd-timesyncd or chrony) on both machines.")
    return _ok(subject, f"within {CLOCK_TOLERANCE:.0f} s of {source} ({offset:+.1f} s).")


# --------------------------------------------------------------------------- proxy trust


def _proxy_trust(settings: Settings, forwarded_allow_ips: str | None) -> Finding:
    subject = "proxy trust"
    behind_proxy = settings.public_url is not None and settings.public_url.startswith("https://")
    if forwarded_allow_ips is None:
        if behind_proxy:
            return _warning(subject, "--forwarded-allow-ips not given: behind a proxy every "
                            "client looks like the proxy's address, so address rate limits "
                            "count everyone together; give `server run` and this doctor "
                            "--forwarded-allow-ips with the proxy's address.")
        return _ok(subject, "forwarded headers are ignored (no proxy trusted).")
    trusted = [part.strip() for part in forwarded_allow_ips.split(",") if part.strip()]
    if not trusted:
        return _problem(subject, "--forwarded-allow-ips is empty: give the proxy's address.")
    if "*" in trusted:
        return _warning(subject, "--forwarded-allow-ips '*' trusts X-Forwarded-For from "
                        "anyone: any client can claim another address and dodge the rate "
                        "limits; give the proxy's address instead (or make sure only the "
                        "proxy reaches the server's port).")
    for entry in trusted:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            if not entry.startswith("unix:"):
                return _problem(subject, f"--forwarded-allow-ips: {entry!r} is not an address "
                                "or network: give the proxy's IP address(es).")
    if not behind_proxy:
        return _warning(subject, "a proxy is trusted but SOFTWARE_DNA_PUBLIC_URL is not an "
                        "https:// address: set it to the proxy's https:// address.")
    return _ok(subject, f"forwarded headers trusted from {', '.join(trusted)}.")


# --------------------------------------------------------------------------- files


def _mode(path: Path) -> str:
    return f"{stat.S_IMODE(path.stat().st_mode):04o}"


def _master_key(settings: Settings) -> list[Finding]:
    subject = "master key"
    try:
        where = locate_master_key(settings)
    except OSError as exc:
        return [_problem(subject, f"cannot look for the key file ({type(exc).__name__}: "
                         f"{exc.strerror or exc}).")]
    if where.path is None:
        try:
            load_master_key(settings)
        except ConfigError as exc:
            return [_problem(subject, str(exc))]
        return [_ok(subject, "from SOFTWARE_DNA_MASTER_KEY (kept out of the data folder; "
                    "make sure your secret store backs it up).")]
    path = where.path
    try:
        info = path.stat()
    except FileNotFoundError:
        return [_problem(subject, f"{path} does not exist: run `{_PROG} server init` for a "
                         "new server, or put this server's key back there (or point "
                         "SOFTWARE_DNA_MASTER_KEY_FILE at it).")]
    except OSError as exc:
        return [_problem(subject, f"cannot read {path} ({exc.strerror or exc}): run the doctor "
                         "as the user the server runs as.")]
    findings: list[Finding] = []
    home = settings.home.expanduser().resolve()
    if path.resolve().is_relative_to(home):
        findings.append(_problem(subject, f"{path} is inside the data folder {home}, so a "
                                 "backup of the folder holds the key to its own secrets: move "
                                 "it out and set SOFTWARE_DNA_MASTER_KEY_FILE to where it is."))
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISREG(info.st_mode):
        findings.append(_problem(subject, f"{path} is not a regular file."))
    elif mode & 0o077:
        findings.append(_problem(subject, f"{path} has mode {mode:04o}, so others can read "
                                 f"it: run `chmod 600 {path}`."))
    uid = os.getuid() if hasattr(os, "getuid") else None
    if uid is not None and info.st_uid != uid:
        findings.append(_warning(subject, f"{path} belongs to uid {info.st_uid}, not to this "
                                 f"user (uid {uid}): run the doctor as the server's user, and "
                                 "make that user the file's owner."))
    try:
        load_master_key(settings)
    except ConfigError as exc:
        findings.append(_problem(subject, str(exc)))
    findings += _key_folder(path.parent)
    if not any(f.level is not Level.OK for f in findings):
        findings.append(_ok(subject, f"{path} (mode {mode:04o}, outside the data folder)."))
    return findings


def _key_folder(folder: Path) -> list[Finding]:
    subject = "master key folder"
    try:
        mode = stat.S_IMODE(folder.stat().st_mode)
    except OSError as exc:
        return [_problem(subject, f"cannot read {folder} ({exc.strerror or exc}).")]
    if mode & 0o002 and not mode & stat.S_ISVTX:
        return [_problem(subject, f"{folder} is world-writable (mode {mode:04o}): anyone can "
                         f"replace the key; run `chmod 700 {folder}`.")]
    if mode & 0o007:
        return [_warning(subject, f"{folder} is open to every user (mode {mode:04o}): run "
                         f"`chmod 700 {folder}` (or `chmod 750` for a group that needs it).")]
    return []


def _data_folder(settings: Settings) -> Finding:
    subject = "data folder"
    home = settings.home.expanduser()
    try:
        info = home.stat()
    except FileNotFoundError:
        if settings.is_sqlite:
            return _problem(subject, f"{home} does not exist: run `{_PROG} server init` (or "
                            "point SOFTWARE_DNA_SERVER_HOME / --data-dir at it).")
        return _ok(subject, f"{home} does not exist (the database is on PostgreSQL).")
    except OSError as exc:
        return _problem(subject, f"cannot read {home} ({exc.strerror or exc}).")
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode):
        return _problem(subject, f"{home} is not a folder.")
    if mode & 0o002:
        return _problem(subject, f"{home} is world-writable (mode {mode:04o}): run "
                        f"`chmod 700 {home}`.")
    if mode & 0o077:
        return _warning(subject, f"{home} has mode {mode:04o}: the database in it is readable "
                        f"by others; run `chmod 700 {home}`.")
    return _ok(subject, f"{home} (mode {mode:04o}).")


# --------------------------------------------------------------------------- database


def _shown_url(settings: Settings) -> str:
    return shown_url(settings.database_url)


def _database(settings: Settings, clock: Callable[[], float],
              workers: int) -> list[Finding]:
    subject = "database"
    shown = _shown_url(settings)
    try:
        url = make_url(settings.database_url)
        url.get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ImportError):
        return [_problem(subject, f"{shown}: not a usable database URL: use "
                         "postgresql://USER@HOST/DB or sqlite:///PATH.")]
    if url.get_backend_name() == "sqlite":
        name = url.database
        if not name or name == ":memory:" or not Path(name).expanduser().exists():
            return [_problem(subject, f"no SQLite database at {name}: run `{_PROG} server "
                             "init`.")]
    if not settings.is_sqlite and "connect_timeout" not in url.query:
        # libpq waits for an unanswered connection as long as the OS does (minutes).
        settings = settings.with_changes(database_url=url.update_query_dict(
            {"connect_timeout": str(int(PROBE_TIMEOUT))}).render_as_string(hide_password=False))
    try:
        engine = make_engine(settings, pooled=False)
    except (SQLAlchemyError, OSError, ValueError) as exc:
        return [_problem(subject, f"{shown}: {type(exc).__name__}: check the URL.")]
    try:
        try:
            check_schema(engine, settings)
        except SchemaError as exc:
            return [_problem(subject, str(exc))]
        findings = [_ok(subject, f"{shown} reachable, schema at the current revision.")]
        findings += _key_opens(settings)
        if not settings.is_sqlite:
            started = clock()
            with engine.connect() as conn:
                remote = conn.execute(text("SELECT clock_timestamp()")).scalar_one()
                ended = clock()
                limit = int(conn.execute(text("SHOW max_connections")).scalar_one())
            findings.append(_clock_finding("clock (database)",
                                           remote.timestamp() - (started + ended) / 2,
                                           "the database server's clock"))
            findings.append(_connections(settings, workers, limit))
        return findings
    except (SQLAlchemyError, OSError) as exc:
        first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or [""])[0]
        return [_problem(subject, f"cannot use {shown}: {type(exc).__name__}: {first} (check "
                         "the URL, and that the database server runs).")]
    finally:
        engine.dispose()


def _connections(settings: Settings, workers: int, limit: int) -> Finding:
    """This machine's workers' connections at most, against PostgreSQL's ``max_connections``."""
    subject = "database connections"
    # Each worker: its pool, the pool's overflow, and the validation path's own connections.
    per_worker = settings.db_pool_size + settings.db_max_overflow + DIRECT_CONNECTIONS
    wanted = workers * per_worker
    if wanted > limit:
        return _warning(subject, f"{workers} worker(s) x {per_worker} connections = {wanted}, "
                        f"more than PostgreSQL's max_connections ({limit}): raise it, or lower "
                        "SOFTWARE_DNA_DB_POOL_SIZE / SOFTWARE_DNA_DB_MAX_OVERFLOW (count the other "
                        "instances, machines and tools too).")
    return _ok(subject, f"{workers} worker(s) x {per_worker} = {wanted} at most, of "
               f"max_connections {limit} (count the other instances, machines and tools too).")


def _key_opens(settings: Settings) -> list[Finding]:
    """A problem when the master key does not open the database's signing keys."""
    try:
        vault = Vault.from_settings(settings)
    except ConfigError:  # no usable key: the master key check says so
        return []
    try:
        check_key_opens(settings, vault)
    except ConfigError as exc:
        return [_problem("master key", str(exc))]
    return []


# --------------------------------------------------------------------------- workers


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers(settings: Settings, workers: int, cpu_count: int | None) -> list[Finding]:
    subject = "workers"
    cpus = cpu_count or _cpus()
    findings: list[Finding] = []
    if workers > 1 and settings.is_sqlite:
        findings.append(_warning(subject, f"{workers} workers on SQLite share one file and "
                                 "wait for each other's writes: use PostgreSQL (DATABASE_URL) "
                                 "for several workers, or run one."))
    if workers > cpus:
        findings.append(_warning(subject, f"{workers} workers for {cpus} CPU(s): they compete "
                                 f"for the CPUs; give --workers {cpus} or fewer."))
    if not findings:
        findings.append(_ok(subject, f"{workers} worker(s) for {cpus} CPU(s)."))
    return findings


# --------------------------------------------------------------------------- mail


def _smtp(settings: Settings) -> list[Finding]:
    subject = "SMTP"
    if not mail_configured(settings):
        return [_warning(subject, "no SOFTWARE_DNA_SMTP_HOST: no mail is sent (no password "
                         "reset by email, no reminders); set the SMTP settings to send them.")]
    findings = [_warning(subject, text_) for text_ in mail_warnings(settings)]
    host, port = smtp_address(settings)
    where = f"{host}:{port}"
    try:
        _greet(settings)
    except _SmtpRefusal as exc:
        findings.append(_problem(subject, f"{where}: {exc}"))
    except smtplib.SMTPAuthenticationError as exc:
        findings.append(_problem(subject, f"{where} refused the login (SMTP {exc.smtp_code}): "
                                 "check SOFTWARE_DNA_SMTP_USERNAME and "
                                 "SOFTWARE_DNA_SMTP_PASSWORD."))
    except ssl.SSLError as exc:
        findings.append(_problem(subject, f"{where}: TLS failed ({exc.reason or exc}): check "
                                 "the certificate (SOFTWARE_DNA_SMTP_CA_FILE for a private CA) "
                                 "and SOFTWARE_DNA_SMTP_TLS."))
    except (smtplib.SMTPException, OSError) as exc:
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        findings.append(_problem(subject, f"cannot talk to {where} ({type(exc).__name__}: "
                                 f"{reason}): "
                                 "check SOFTWARE_DNA_SMTP_HOST and SOFTWARE_DNA_SMTP_PORT, and "
                                 "that this machine may reach it."))
    else:
        findings.append(_ok(subject, f"{where} answers ({settings.smtp_tls}; no mail sent)."))
    return findings


class _SmtpRefusal(Exception):
    """The mail server lacks what the settings need; the message says what to do."""


def _greet(settings: Settings) -> None:
    """Connect, EHLO, STARTTLS when configured, log in when configured, as the server's
    mail does (:func:`~software_dna.server.mail.connect`); QUIT. No mail.

    Raises:
        _SmtpRefusal: STARTTLS or AUTH is configured but not offered.
        smtplib.SMTPException, ssl.SSLError, OSError: the exchange failed.
    """
    try:
        smtp = connect(settings)
    except smtplib.SMTPNotSupportedError as exc:
        if "STARTTLS" in str(exc).upper():
            raise _SmtpRefusal("does not offer STARTTLS: set SOFTWARE_DNA_SMTP_TLS=tls "
                               "(implicit TLS, port 465) if it speaks that, or use a mail "
                               "server that offers STARTTLS.") from None
        raise _SmtpRefusal("does not offer a login (AUTH): unset SOFTWARE_DNA_SMTP_USERNAME, "
                           "or use the mail server's submission port.") from None
    try:
        smtp.quit()
    finally:
        smtp.close()


# --------------------------------------------------------------------------- metrics


def metrics_token_set(settings: Settings) -> bool:
    """True when a token protects the metrics path (``SOFTWARE_DNA_METRICS_TOKEN``)."""
    return settings.metrics_token is not None


def _metrics_token(settings: Settings) -> Finding:
    subject = "metrics token"
    if not metrics_token_set(settings):
        return _warning(subject, f"{METRICS_TOKEN_VARIABLE} is not set: set it to a long random "
                        "value so that your Prometheus, and nobody else, can read the metrics.")
    return _ok(subject, f"{METRICS_TOKEN_VARIABLE} is set.")
