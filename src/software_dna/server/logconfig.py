"""Logging for the server: no personal data in any line.

Every line carries the pid of the worker process that wrote it (``[1234]``).

uvicorn's access log is kept, but each line is redacted: the client address
is dropped and the query string is cut from the path (an admin search by
email carries the email in the query), and so is the token of an email
confirmation link and of a license portal sign-in link.  Bodies are never
logged.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["RedactAccessLog", "log_config"]


_LINK_PATH = "/v1/email-confirmations/"
#: A portal sign-in link: ``/portal/<product>/link/<token>``.
_PORTAL_LINK = re.compile(r"^(/portal/[^/]*/link/)[^/]*")


class RedactAccessLog(logging.Filter):
    """Drop the client address and the query string from uvicorn access records."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5:
            _addr, method, path, version, status = args
            path_text = str(path).split("?", 1)[0]
            if path_text.startswith(_LINK_PATH):  # the link's token is a secret
                path_text = _LINK_PATH + "..."
            path_text = _PORTAL_LINK.sub(r"\1...", path_text)
            record.args = ("-", method, path_text, version, status)
        return True


def log_config(level: str = "info") -> dict[str, Any]:
    """A ``logging.config.dictConfig`` mapping for uvicorn (``log_config=``)."""
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
