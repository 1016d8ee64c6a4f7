"""IMAP and SMTP failures as botkit's typed errors, with every secret scrubbed.

aioimaplib puts a command's arguments into some of its exceptions and debug logs (a
timed-out ``LOGIN`` carries the password in its ``str()``), so nothing from a vendor
exception reaches a botkit message or a log line without going through ``Redactor``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections import deque
from collections.abc import Iterable

import aiosmtplib

from botkit import (
    AuthenticationError,
    RateLimitError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)

__all__ = ["IMAP", "SMTP", "Redactor", "imap_error", "smtp_error"]

IMAP = "imap"
SMTP = "smtp"
_VENDOR_LOGGERS = ("aioimaplib", "aioimaplib.aioimaplib", "aiosmtplib")
_LEARNT_MAX = 16


class Redactor(logging.Filter):
    """Replaces secrets (and the forms they take on the wire) with ``***``.

    Also a logging filter: attached to the IMAP and SMTP libraries' loggers while the
    adapter runs, so even their debug output never shows a password.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._attached = 0
        self._secrets = [s for s in dict.fromkeys(secrets) if len(s) >= 3]
        # Tokens learnt while running; a renewed token every hour must not grow this forever.
        self._learnt: deque[str] = deque(maxlen=_LEARNT_MAX)
        self._forms: list[str] = []
        self._encoded: list[str] = []
        self._compile()

    def add(self, secret: str) -> None:
        """Scrub ``secret`` too from now on (an access token learnt while running; the
        last few are kept)."""
        if len(secret) >= 3 and secret not in self._secrets and secret not in self._learnt:
            self._learnt.append(secret)
            self._compile()

    def _compile(self) -> None:
        forms: set[str] = set()
        for secret in (*self._secrets, *self._learnt):
            quoted = secret.replace("\\", "\\\\").replace('"', '\\"')  # IMAP quoted string
            forms.update({secret, quoted})
            # ...and both as a bytes repr (aioimaplib logs ``b'...'``).
            forms.update(repr(form.encode())[2:-1] for form in (secret, quoted))
        self._forms = sorted(forms, key=len, reverse=True)
        # AUTH PLAIN / LOGIN carry base64 of the password with the user name.
        self._encoded = [
            base64.b64encode(s.encode()).decode() for s in (*self._secrets, *self._learnt)
        ]

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for form in self._forms:
            text = text.replace(form, "***")
        for encoded in self._encoded:
            text = text.replace(encoded, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        scrubbed = self.scrub(message)
        if scrubbed != message or _mentions_auth(message):
            record.msg = _mask_auth(scrubbed)
            record.args = ()
        return True

    def attach(self) -> None:
        """Filter the IMAP and SMTP libraries' loggers until the matching :meth:`detach`
        (calls nest: the adapter holds it while running, a login holds it too)."""
        self._attached += 1
        if self._attached == 1:
            for name in _VENDOR_LOGGERS:
                logging.getLogger(name).addFilter(self)

    def detach(self) -> None:
        """Undo one :meth:`attach`."""
        self._attached = max(self._attached - 1, 0)
        if self._attached == 0:
            for name in _VENDOR_LOGGERS:
                logging.getLogger(name).removeFilter(self)


def _mentions_auth(message: str) -> bool:
    upper = message.upper()
    return " LOGIN " in upper or " AUTHENTICATE " in upper


def _mask_auth(message: str) -> str:
    """Cut everything after ``LOGIN user`` / ``AUTHENTICATE mech``: it is credentials."""
    upper = message.upper()
    for verb in (" LOGIN ", " AUTHENTICATE "):
        at = upper.find(verb)
        if at >= 0:
            rest = message[at + len(verb) :].split(" ", 1)[0]
            return message[: at + len(verb)] + rest + " ***"
    return message


def imap_error(exc: BaseException, action: str, redactor: Redactor) -> ServiceError:
    """The botkit error for an IMAP failure while doing ``action`` ("logging in")."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RequestRejectedError(
            IMAP,
            f"{action}: the server's TLS certificate was refused ({exc.verify_message})",
            code="tls",
        )
    if isinstance(exc, ssl.SSLError):
        return ServiceUnavailableError(IMAP, f"{action}: TLS failed ({exc.reason})", code="tls")
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return ServiceUnavailableError(IMAP, f"{action}: timed out", code="timeout")
    if isinstance(exc, OSError):
        detail = exc.strerror or type(exc).__name__
        return ServiceUnavailableError(IMAP, f"{action}: {detail}", code="network")
    name = type(exc).__name__
    if name == "CommandTimeout":  # its str() is the command line, with arguments
        return ServiceUnavailableError(IMAP, f"{action}: timed out", code="timeout")
    if name in ("Abort", "Error", "IncompleteRead", "AioImapException"):
        text = redactor.scrub(_mask_auth(str(exc)))[:300]
        return ServiceUnavailableError(IMAP, f"{action}: {text}", code="protocol")
    return ServiceUnavailableError(IMAP, f"{action}: {name}", code="unexpected")


def imap_refused(
    action: str, result: str, lines: list[bytes | bytearray], redactor: Redactor
) -> ServiceError:
    """The botkit error for a tagged ``NO``/``BAD`` answer."""
    text = _last_text(lines)
    detail = redactor.scrub(f"{result} {text}".strip())[:300]
    upper = detail.upper()
    if "[AUTHENTICATIONFAILED]" in upper or "[AUTHORIZATIONFAILED]" in upper:
        return AuthenticationError(IMAP, f"{action}: {detail}", code="auth")
    if "[UNAVAILABLE]" in upper or "[INUSE]" in upper or "[LIMIT]" in upper:
        return ServiceUnavailableError(IMAP, f"{action}: {detail}", code="unavailable")
    return RequestRejectedError(IMAP, f"{action}: {detail}", code=result.lower() or None)


def _last_text(lines: list[bytes | bytearray]) -> str:
    for line in reversed(lines):
        if isinstance(line, bytes) and line.strip():
            return line.decode("utf-8", "replace").strip()
    return ""


def smtp_error(exc: BaseException, action: str, redactor: Redactor) -> ServiceError:
    """The botkit error for an SMTP failure while doing ``action`` ("sending a reply")."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        detail = redactor.scrub("; ".join(f"{r.code} {r.message}" for r in exc.recipients))
        if codes and all(400 <= c < 500 for c in codes):
            return ServiceUnavailableError(SMTP, f"{action}: {detail}"[:400], status=codes[0])
        return RequestRejectedError(
            SMTP,
            f"{action}: recipient refused: {detail}"[:400],
            status=codes[0] if codes else None,
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        detail = redactor.scrub(f"{exc.code} {exc.message}")[:300]
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or exc.code in (530, 534, 535):
            return AuthenticationError(SMTP, f"{action}: login refused: {detail}", status=exc.code)
        if exc.code in (421, 450, 451) and "rate" in exc.message.lower():
            return RateLimitError(SMTP, f"{action}: {detail}", status=exc.code)
        if 400 <= exc.code < 500 or exc.code < 0:
            return ServiceUnavailableError(SMTP, f"{action}: {detail}", status=exc.code)
        return RequestRejectedError(SMTP, f"{action}: {detail}", status=exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported) or (
        type(exc) is aiosmtplib.SMTPException and "not supported" in str(exc)
    ):
        # STARTTLS or AUTH missing: a setting (or an attack stripping STARTTLS), not
        # something a retry fixes.
        return RequestRejectedError(
            SMTP, f"{action}: {redactor.scrub(str(exc))[:300]}", code="not_supported"
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return RequestRejectedError(
            SMTP,
            f"{action}: the server's TLS certificate was refused ({exc.verify_message})",
            code="tls",
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        return ServiceUnavailableError(SMTP, f"{action}: timed out", code="timeout")
    if isinstance(exc, aiosmtplib.SMTPException | OSError):
        return ServiceUnavailableError(
            SMTP, f"{action}: {redactor.scrub(str(exc))[:300]}", code="network"
        )
    return ServiceUnavailableError(SMTP, f"{action}: {type(exc).__name__}", code="unexpected")
