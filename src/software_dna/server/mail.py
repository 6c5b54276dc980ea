"""Outgoing mail through the SMTP server named in the settings (standard library only).

Used for password reset codes (:func:`send_mail`) and, through the outbox, for
the mails to buyers and end users (:func:`build_message`, :func:`send_message`).
Settings (:class:`~software_dna.server.config.Settings`):
``smtp_host`` (none: mail is off), ``smtp_port`` (default 587 with
``starttls``, 465 with ``tls``, 25 with ``none``), ``smtp_tls``
(``starttls``: plain connection upgraded with STARTTLS, refused if the
server does not offer it; ``tls``: implicit TLS; ``none``: no encryption,
for a relay on the same host), ``smtp_sender`` (the From address),
``smtp_username`` / ``smtp_password`` (optional login), ``smtp_ca_file``
(a PEM bundle to verify the server with; default the system's CAs) and
``smtp_timeout`` (seconds).

Each recipient gets their own message, so no recipient sees another's address.
"""

from __future__ import annotations

import smtplib
import ssl
import unicodedata
from collections.abc import Iterable, Mapping
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formataddr, formatdate, make_msgid
from typing import Any

from software_dna.server.config import Settings

__all__ = [
    "MailError",
    "MailRefused",
    "MailTemporary",
    "MailUnavailable",
    "connect",
    "build_message",
    "display_name",
    "mail_configured",
    "mail_warnings",
    "message_domain",
    "smtp_address",
    "send_mail",
    "send_message",
]

_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class MailError(Exception):
    """The mail could not be sent (connection, TLS, login or refusal); no detail of the mail."""


class MailUnavailable(MailError):
    """No SMTP server is configured."""


class MailRefused(MailError):
    """The SMTP server refused the recipient or the message for good (a 5xx reply).

    Attributes:
        code: the SMTP reply code.
    """

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class MailTemporary(MailError):
    """The mail could not be sent now (connection, TLS, login, a 4xx reply); try again later.

    Attributes:
        code: the SMTP reply code, when the server gave one.
    """

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def mail_configured(settings: Settings) -> bool:
    """True when the settings name an SMTP host and a sender."""
    return bool(settings.smtp_host and settings.smtp_sender)


def mail_warnings(settings: Settings) -> list[str]:
    """Mail settings that cannot work as a vendor expects, one sentence each saying what
    to do (logged when the app starts, printed by ``server run``)."""
    warnings: list[str] = []
    if mail_configured(settings) and settings.public_url is None:
        warnings.append(
            "mail is configured but SOFTWARE_DNA_PUBLIC_URL is not: no email confirmation "
            "link can be sent, so no address is ever confirmed and password reset by email "
            "cannot work, and reminders carry no one-click unsubscribe link "
            "(List-Unsubscribe). Set SOFTWARE_DNA_PUBLIC_URL to the https:// address end "
            "users reach this server at.")
    loopback = (settings.smtp_host or "").lower() in ("localhost", "127.0.0.1", "::1")
    if mail_configured(settings) and settings.smtp_tls == "none" and not loopback \
            and settings.smtp_username:
        warnings.append(
            f"SOFTWARE_DNA_SMTP_TLS=none sends the SMTP login to {settings.smtp_host} in "
            "clear. Use starttls or tls.")
    return warnings


def message_domain(settings: Settings) -> str:
    """The domain of the sender address (the right-hand side of every Message-ID)."""
    return (settings.smtp_sender or "localhost").rpartition("@")[2] or "localhost"


def _message(settings: Settings, to: str, subject: str, body: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.smtp_sender or ""
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = make_msgid(domain=message_domain(settings))
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def smtp_address(settings: Settings) -> tuple[str, int]:
    """``(host, port)`` of the configured SMTP server (the port by ``smtp_tls`` when unset)."""
    return settings.smtp_host or "", settings.smtp_port or _DEFAULT_PORTS[settings.smtp_tls]


def connect(settings: Settings) -> smtplib.SMTP:
    """An SMTP connection to the configured server, greeted (EHLO), secured (STARTTLS or
    implicit TLS, as ``smtp_tls`` says) and logged in when a user name is set.

    Raises:
        smtplib.SMTPNotSupportedError: STARTTLS or AUTH is needed but not offered.
        smtplib.SMTPException, ssl.SSLError, OSError: the exchange failed.
    """
    host, port = smtp_address(settings)
    timeout = float(settings.smtp_timeout)
    context = ssl.create_default_context(cafile=settings.smtp_ca_file)
    smtp: smtplib.SMTP
    if settings.smtp_tls == "tls":
        smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    try:
        smtp.ehlo()
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=context)  # SMTPNotSupportedError when not offered
            smtp.ehlo()
        if settings.smtp_username:
            password = settings.smtp_password
            smtp.login(settings.smtp_username,
                       password.get_secret_value() if password is not None else "")
    except BaseException:
        smtp.close()
        raise
    return smtp


def send_mail(settings: Settings, recipients: Iterable[str], subject: str, body: str) -> int:
    """Send a plain-text mail to each recipient (one message each); returns how many went out.

    Args:
        settings: the server settings (``smtp_*``).
        recipients: email addresses.
        subject: the subject line.
        body: the plain-text body (UTF-8).

    Raises:
        MailUnavailable: no SMTP host / sender is configured.
        MailError: the server could not be reached, TLS or login failed, or it
            refused every recipient.  (The message names the failure's type only.)
    """
    if not mail_configured(settings):
        raise MailUnavailable("No SMTP server is configured (SOFTWARE_DNA_SMTP_HOST).")
    to = list(dict.fromkeys(recipients))
    if not to:
        return 0
    sent = 0
    try:
        smtp = connect(settings)
        try:
            for address in to:
                try:
                    smtp.send_message(_message(settings, address, subject, body))
                except smtplib.SMTPRecipientsRefused:
                    continue
                sent += 1
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
        raise MailError(f"The mail server failed: {type(exc).__name__}.") from None
    if sent == 0:
        raise MailError("The mail server refused every recipient.")
    return sent


#: Headers whose value is one ``<URL>`` that a mail client reads as is: never folded
#: or RFC 2047 encoded (a long unsubscribe link would otherwise be encoded, and
#: clients then offer no one-click unsubscribe).
_UNFOLDED = frozenset({"list-unsubscribe", "list-unsubscribe-post"})
#: The longest line RFC 5322 allows, CRLF excluded.
_MAX_LINE = 998


class _Policy(EmailPolicy):
    """The default policy, except that :data:`_UNFOLDED` headers are written on one line."""

    def _one_line(self, name: str, value: Any) -> str | None:
        text = str(value)
        if name.lower() in _UNFOLDED and text.isascii() and text.isprintable() \
                and len(name) + 2 + len(text) <= _MAX_LINE:
            return f"{name}: {text}{self.linesep}"
        return None

    def fold(self, name: str, value: Any) -> str:
        line = self._one_line(name, value)
        return line if line is not None else super().fold(name, value)

    def fold_binary(self, name: str, value: Any) -> bytes:
        line = self._one_line(name, value)
        return line.encode("ascii") if line is not None else super().fold_binary(name, value)


_POLICY = _Policy()


def display_name(name: str) -> str:
    """``name`` as a From display name: one line, control and separator characters (line
    breaks included) replaced by spaces, runs of spaces collapsed."""
    spaced = "".join(" " if unicodedata.category(char)[0] in ("C", "Z") else char
                     for char in name)
    return " ".join(spaced.split())


def build_message(settings: Settings, *, to: str, subject: str, text: str, html: str | None,
                  message_id: str, sender_name: str | None = None,
                  headers: Mapping[str, str] | None = None) -> EmailMessage:
    """A mail with a plain-text part and, when ``html`` is given, an HTML alternative.

    Args:
        settings: the server settings (``smtp_sender`` is the From address).
        to: the recipient's address.
        subject: the subject (one line; line breaks are replaced by spaces).
        text: the plain-text body.
        html: the HTML body (``multipart/alternative`` with ``text``), or None.
        message_id: the Message-ID, ``<id@domain>``: the same for every attempt
            of one outbox item, so a receiver can drop a repeat.
        sender_name: the display name of the From address (the vendor's name);
            made one line (:func:`display_name`).
        headers: more headers (``List-Unsubscribe``, ``Reply-To``, ...);
            ``List-Unsubscribe`` is written unfolded and unencoded.
    """
    message = EmailMessage(policy=_POLICY)
    sender = settings.smtp_sender or ""
    name = display_name(sender_name or "")
    message["From"] = formataddr((name, sender)) if name else sender
    message["To"] = to
    message["Subject"] = " ".join(subject.split())
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id
    message["Auto-Submitted"] = "auto-generated"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _reply_code(exc: smtplib.SMTPException) -> int | None:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return max(codes) if codes else None
    code = getattr(exc, "smtp_code", None)
    return code if isinstance(code, int) else None


def send_message(settings: Settings, message: EmailMessage) -> None:
    """Send one prepared message to the address in its ``To`` header.

    Raises:
        MailUnavailable: no SMTP host / sender is configured.
        MailRefused: the server refused the recipient or the message with a
            5xx reply (sending it again would be refused again).
        MailTemporary: the server could not be reached, TLS or login failed,
            or it answered 4xx: try again later.  Messages name the failure's
            type and reply code only, never an address.
    """
    if not mail_configured(settings):
        raise MailUnavailable("No SMTP server is configured (SOFTWARE_DNA_SMTP_HOST).")
    try:
        smtp = connect(settings)
        try:
            smtp.send_message(message)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
    except (smtplib.SMTPRecipientsRefused, smtplib.SMTPDataError) as exc:
        code = _reply_code(exc)
        if code is not None and 500 <= code < 600:
            raise MailRefused(f"The mail server refused the message: {type(exc).__name__} "
                              f"{code}.", code) from None
        raise MailTemporary(f"The mail server failed: {type(exc).__name__} {code}.",
                            code) from None
    except smtplib.SMTPException as exc:
        code = _reply_code(exc)
        raise MailTemporary(f"The mail server failed: {type(exc).__name__}"
                            + (f" {code}." if code is not None else "."), code) from None
    except (OSError, ssl.SSLError) as exc:
        raise MailTemporary(f"The mail server failed: {type(exc).__name__}.") from None
