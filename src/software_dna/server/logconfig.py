"""Logging for the server: no personal data in any line.

Every line carries the pid of the worker process that wrote it (``[1234]``).

uvicorn's access log is kept, but each line is redacted: the client address
is dropped and the query string is cut from the path (an admin search by
email carries the email in the query), and so is the token of an email
confirmation link and of a license portal sign-in link.  Bodies are never
logged.

``SOFTWARE_DNA_LOG_FORMAT=json`` turns every line into one JSON object
(:class:`JsonFormatter`): the server's own records and one access line per
request, written by the metrics middleware (``software_dna.server.access``:
method, route template, status, duration; never the path, the query or the
client's address) instead of uvicorn's access log.
"""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import datetime, timezone
from typing import Any

__all__ = ["LOG_FORMAT_ENV", "JsonFormatter", "RedactAccessLog", "log_config"]

#: The variable that picks the log format (``text`` or ``json``; config.Settings reads it too).
LOG_FORMAT_ENV = "SOFTWARE_DNA_LOG_FORMAT"

#: The paths whose last part is a secret link token (an address's confirmation, a mail
#: opt-out, a portal sign-in): the token stays out of the log, the route stays in.
_SECRET_LINK = re.compile(
    r"^(/v1/email-confirmations/|/v1/unsubscribe/|/portal/[^/]*/link/)[^/]*")


class RedactAccessLog(logging.Filter):
    """Drop the client address, the query string and link tokens from uvicorn access records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _addr, method, path, version, status = args
            path_text = str(path).split("?", 1)[0]
            path_text = _SECRET_LINK.sub(r"\1...", path_text)
            record.args = ("-", method, path_text, version, status)
        return True


#: The attributes of an access record (set by the metrics middleware) a JSON line carries.
_ACCESS_FIELDS = (("http_method", "method"), ("http_route", "route"),
                  ("http_status", "status"), ("duration_ms", "duration_ms"))


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Keys: ``time`` (RFC 3339, UTC, milliseconds), ``level`` (lower case),
    ``logger``, ``message`` (the formatted message), ``exception`` (a
    traceback, when the record has one) and, on access lines, ``method``,
    ``route``, ``status`` and ``duration_ms``.  Only these: attributes passed
    with ``extra=`` are not copied, so nothing reaches the log that the
    message itself does not say.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line (``\\n`` and other controls escaped)."""
        moment = datetime.fromtimestamp(record.created, tz=timezone.utc)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for attribute, key in _ACCESS_FIELDS:
            value = record.__dict__.get(attribute)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(level: str = "info", log_format: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping for uvicorn (``log_config=``).

    Args:
        level: ``critical``, ``error``, ``warning``, ``info`` or ``debug``.
        log_format: ``text`` or ``json``; None reads ``SOFTWARE_DNA_LOG_FORMAT``
            (unset: ``text``).

    Raises:
        ValueError: ``log_format`` (or the variable) is neither ``text`` nor ``json``.
    """
    if log_format is None:
        log_format = os.environ.get(LOG_FORMAT_ENV, "").strip().lower() or "text"
    if log_format == "json":
        return _json_config(level.upper())
    if log_format != "text":
        raise ValueError(f"{LOG_FORMAT_ENV} must be text or json, not {log_format!r}")
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": "software_dna.server.logconfig.RedactAccessLog"}},
        "formatters": {
            "default": {
                "()": "uvicorn.logging.DefaultFormatter",
                "fmt": "%(asctime)s [%(process)d] %(levelprefix)s %(message)s",
                "use_colors": False,
            },
            "access": {
                "()": "uvicorn.logging.AccessFormatter",
                "fmt": ('%(asctime)s [%(process)d] %(levelprefix)s "%(request_line)s" '
                        '%(status_code)s'),
                "use_colors": False,
            },
        },
        "handlers": {
            "default": {
                "formatter": "default",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "access": {
                "formatter": "access",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "filters": ["redact"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": ["access"], "level": upper, "propagate": False},
            "software_dna": {"handlers": ["default"], "level": upper, "propagate": False},
        },
    }


def _json_config(upper: str) -> dict[str, Any]:
    """Every logger of the server through :class:`JsonFormatter`, on stderr.

    uvicorn's access log is switched off: the metrics middleware writes the
    access lines (with the route template and the duration uvicorn does not know).
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "software_dna.server.logconfig.JsonFormatter"}},
        "handlers": {
            "json": {
                "formatter": "json",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
            },
            "json_access": {  # as in text mode: access lines on stdout, the rest on stderr
                "formatter": "json",
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["json"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "software_dna": {"handlers": ["json"], "level": upper, "propagate": False},
            # Listed so that a handler of its own, set before (the outbox worker
            # thread of `server run`), is replaced by the JSON one.
            "software_dna.server.worker": {"handlers": ["json"], "level": upper,
                                           "propagate": False},
            "software_dna.server.access": {"handlers": ["json_access"], "level": upper,
                                           "propagate": False},
        },
    }
