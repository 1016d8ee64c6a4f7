"""OAuth2 access tokens for one mailbox: from the environment, or printed by
``token_command``, which is run when a token is first needed and again when the server
refuses the one it printed (it expired).

A token is a password: every token is handed to the ``Redactor`` before it is used, and
neither the token nor anything else the command prints (its stderr is discarded) ever
reaches a log line or an error message. A failing command is reported by its program's
name and its exit status only: its arguments may carry a client secret.
"""

from __future__ import annotations

import asyncio
import base64
import os

from botkit import ServiceUnavailableError
from botkit_email._errors import Redactor
from botkit_email.settings import EmailSettings

__all__ = ["AccessTokens", "xoauth2_response"]


def xoauth2_response(user: str, token: str) -> str:
    """The XOAUTH2 client response (Google's and Microsoft's format), base64-encoded."""
    return base64.b64encode(f"user={user}\x01auth=Bearer {token}\x01\x01".encode()).decode()


class AccessTokens:
    """The current access token of one mailbox, shared by its IMAP and SMTP logins."""

    def __init__(self, settings: EmailSettings, redactor: Redactor) -> None:
        self._command = settings.token_command
        self._timeout = settings.timeout
        self._redactor = redactor
        self._token = settings.access_token.reveal() if settings.access_token else None
        self._source = (settings.access_token.source if settings.access_token else None) or (
            "the environment"
        )
        self._lock = asyncio.Lock()  # one run of the command at a time, for every login

    @property
    def what(self) -> str:
        """Where tokens come from, for messages: ``token_command (name)`` or the variable."""
        if self._command:
            return f"token_command ({os.path.basename(self._command[0])})"
        return "the access token"

    @property
    def no_other(self) -> str:
        """Why :meth:`renew` found no other token, for the error that follows."""
        if self._command:
            return f"{self.what} printed the refused token again"
        return (
            f"the access token from {self._source} cannot be renewed; token_command can "
            "renew tokens that expire"
        )

    async def current(self, service: str) -> str:
        """The token to log in with (running ``token_command`` if there is none yet).

        Raises:
            ServiceUnavailableError: ``token_command`` failed (code ``"token_command"``).
        """
        async with self._lock:
            if self._token is None:
                self._token = await self._run(service)
            return self._token

    async def renew(self, refused: str, service: str) -> str | None:
        """Another token after the server refused ``refused``: ``None`` when there is no
        other to try (no ``token_command``, or it printed the refused token again).

        Raises:
            ServiceUnavailableError: ``token_command`` failed (code ``"token_command"``).
        """
        if not self._command:
            return None
        async with self._lock:
            if self._token is not None and self._token != refused:
                return self._token  # another login renewed it meanwhile
            self._token = None
            fresh = await self._run(service)
            self._token = fresh
        return None if fresh == refused else fresh

    async def _run(self, service: str) -> str:
        what = self.what
        try:
            process = await asyncio.create_subprocess_exec(
                *self._command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
        except OSError as exc:
            raise ServiceUnavailableError(
                service,
                f"{what} could not be started: {exc.strerror or type(exc).__name__}",
                code="token_command",
            ) from None
        try:
            output, _ = await asyncio.wait_for(process.communicate(), self._timeout)
        except TimeoutError:
            raise ServiceUnavailableError(
                service, f"{what} did not finish within {self._timeout:g} s", code="token_command"
            ) from None
        finally:
            if process.returncode is None:  # timed out or cancelled: leave nothing running
                process.kill()
                await process.wait()
        status = process.returncode or 0
        if status != 0:
            how = (
                f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            )
            raise ServiceUnavailableError(service, f"{what} {how}", code="token_command")
        token = output.decode("utf-8", "replace").strip()
        if not token or not token.isascii() or not token.isprintable() or " " in token:
            # Nothing of what it printed is shown: it may be a token after all.
            raise ServiceUnavailableError(
                service,
                f"{what} printed no access token (expected the token alone, on one line)",
                code="token_command",
            )
        self._redactor.add(token)
        return token
