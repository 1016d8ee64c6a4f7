"""Sending one message over SMTP with aiosmtplib: implicit TLS, STARTTLS (required when
configured) or plain for local tests; failures come out as botkit's typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib

from botkit_email._errors import Redactor, smtp_error
from botkit_email._imap import tls_context
from botkit_email.settings import EmailSettings

__all__ = ["send_mail"]


async def send_mail(
    settings: EmailSettings,
    message: EmailMessage,
    recipients: Sequence[str],
    redactor: Redactor,
) -> None:
    """Deliver ``message`` to ``recipients`` from ``settings.address``.

    Raises:
        AuthenticationError: the login was refused.
        RequestRejectedError: the server refused the message or a recipient for good,
            or STARTTLS is required and not offered.
        ServiceUnavailableError: the network failed, a timeout, a temporary (4xx) refusal.
    """
    tls = settings.smtp_tls
    host, port = settings.smtp_host, settings.smtp_port_or_default
    login = settings.smtp_login
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        username=login or None,
        password=settings.smtp_secret.reveal() if login else None,
        use_tls=tls == "ssl",
        start_tls=tls == "starttls",  # True: fail when not offered; False: never try
        tls_context=tls_context(settings) if tls != "none" else None,
        timeout=settings.timeout,
    )
    try:
        async with client:
            await client.send_message(message, sender=settings.address, recipients=recipients)
    except Exception as exc:
        # The cause is kept only when it cannot be about the login.
        error = smtp_error(exc, f"sending to {', '.join(recipients)} via {host}:{port}", redactor)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            raise error from None
        raise error from exc
