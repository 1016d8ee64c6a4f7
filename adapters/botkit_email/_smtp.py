"""Sending one message over SMTP with aiosmtplib: implicit TLS, STARTTLS (required when
configured) or plain for local tests; a password login or ``AUTH XOAUTH2`` with an access
token; failures come out as botkit's typed errors."""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage

import aiosmtplib

from botkit import RequestRejectedError, ServiceError
from botkit_email._errors import SMTP, Redactor, smtp_error
from botkit_email._imap import tls_context
from botkit_email._oauth import AccessTokens, xoauth2_response
from botkit_email.settings import EmailSettings

__all__ = ["send_mail"]


async def send_mail(
    settings: EmailSettings,
    message: EmailMessage,
    recipients: Sequence[str],
    redactor: Redactor,
    tokens: AccessTokens | None = None,
) -> None:
    """Deliver ``message`` to ``recipients`` from ``settings.address``, logging in with the
    password, or with an access token from ``tokens`` (``auth = "oauth2"``).

    Raises:
        AuthenticationError: the login (or the access token, renewed once) was refused.
        RequestRejectedError: the server refused the message or a recipient for good,
            or STARTTLS is required and not offered.
        ServiceUnavailableError: the network failed, a timeout, a temporary (4xx) refusal.
    """
    tls = settings.smtp_tls
    host, port = settings.smtp_host, settings.smtp_port_or_default
    login = settings.smtp_login
    secret = settings.smtp_secret if login else None  # None: no login, or OAuth2 below
    client = aiosmtplib.SMTP(
        hostname=host,
        port=port,
        username=login if secret is not None else None,
        password=secret.reveal() if secret is not None else None,
        use_tls=tls == "ssl",
        start_tls=tls == "starttls",  # True: fail when not offered; False: never try
        tls_context=tls_context(settings) if tls != "none" else None,
        timeout=settings.timeout,
    )
    try:
        async with client:
            if login and settings.auth == "oauth2":
                await _login_xoauth2(client, login, tokens, redactor)
            await client.send_message(message, sender=settings.address, recipients=recipients)
    except ServiceError:
        raise  # ours already (the token command failed, XOAUTH2 not offered)
    except Exception as exc:
        # The cause is kept only when it cannot be about the login.
        error = smtp_error(exc, f"sending to {', '.join(recipients)} via {host}:{port}", redactor)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            raise error from None
        raise error from exc


async def _login_xoauth2(
    client: aiosmtplib.SMTP, login: str, tokens: AccessTokens | None, redactor: Redactor
) -> None:
    """``AUTH XOAUTH2``; a refused token is renewed once and tried again."""
    if tokens is None:
        raise RuntimeError('auth = "oauth2" needs the mailbox\'s AccessTokens')
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    if "xoauth2" not in client.server_auth_methods:
        raise RequestRejectedError(
            SMTP,
            f"{client.hostname} does not offer AUTH XOAUTH2; it cannot log in with an "
            'OAuth2 access token (auth = "oauth2")',
            code="not_supported",
        )
    token = await tokens.current(SMTP)
    redactor.add(xoauth2_response(login, token))
    try:
        await client.auth_xoauth2(login, token)
        return
    except aiosmtplib.SMTPAuthenticationError as refused:
        fresh = await tokens.renew(token, SMTP)
        if fresh is None:
            raise aiosmtplib.SMTPAuthenticationError(
                refused.code, f"{refused.message} ({tokens.no_other})"
            ) from None
    redactor.add(xoauth2_response(login, fresh))
    await client.auth_xoauth2(login, fresh)
