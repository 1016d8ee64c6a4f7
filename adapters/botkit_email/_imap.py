"""One IMAP connection over aioimaplib: TLS (implicit or STARTTLS), login, and the few
commands the adapter uses, each bounded by a timeout and by the connection's life."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import ssl
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aioimaplib

from botkit import (
    AuthenticationError,
    RequestRejectedError,
    ServiceError,
    ServiceUnavailableError,
)
from botkit_email._errors import IMAP, Redactor, imap_error, imap_refused
from botkit_email._imapwire import Value, fetch_responses
from botkit_email._oauth import AccessTokens, xoauth2_response
from botkit_email.settings import EmailSettings

__all__ = ["ImapSession", "MailboxStatus", "encode_mailbox", "tls_context"]

log = logging.getLogger(__name__)

T = TypeVar("T")

_UIDVALIDITY = re.compile(rb"UIDVALIDITY (\d+)")
_UIDNEXT = re.compile(rb"UIDNEXT (\d+)")
_EXISTS = re.compile(rb"^(\d+) EXISTS")
_FETCH_UID = re.compile(rb"\bUID (\d+)")
_FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
# Untagged responses during IDLE that mean the mailbox changed (not "OK Still here").
_CHANGE = re.compile(rb"^\d+ (?:EXISTS|RECENT|EXPUNGE|FETCH)")


@dataclass(frozen=True, slots=True)
class MailboxStatus:
    """What SELECT says about a folder."""

    uidvalidity: int
    uidnext: int | None
    exists: int


def tls_context(settings: EmailSettings) -> ssl.SSLContext:
    """A verifying client context (the system's CAs, or ``tls_ca_file``)."""
    return ssl.create_default_context(cafile=settings.tls_ca_file)


def encode_mailbox(name: str) -> str:
    """A folder name as an IMAP quoted string in modified UTF-7 (RFC 3501 5.1.3)."""
    out: list[str] = []
    pending: list[str] = []

    def flush() -> None:
        if pending:
            data = "".join(pending).encode("utf-16-be")
            out.append("&" + base64.b64encode(data).decode().rstrip("=").replace("/", ",") + "-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.append("&-" if char == "&" else char)
        else:
            pending.append(char)
    flush()
    encoded = "".join(out).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{encoded}"'


class _SaslCommand(aioimaplib.Command):  # type: ignore[misc]
    """``AUTHENTICATE`` with one client response: sent with the command (SASL-IR,
    RFC 4959) or after the server's first ``+``. A ``+`` after the response is the
    server's error challenge (RFC 7628 3.2.3, the XOAUTH2 JSON): it is answered with an
    empty line, so the server ends the exchange with ``NO`` instead of waiting for us."""

    def __init__(
        self,
        protocol: aioimaplib.IMAP4ClientProtocol,
        mechanism: str,
        response: str,
        *,
        initial: bool,
    ) -> None:
        arguments = (mechanism, response) if initial else (mechanism,)
        super().__init__("AUTHENTICATE", protocol.new_tag(), *arguments, loop=protocol.loop)
        self._protocol = protocol
        self._pending: str | None = None if initial else response

    def flush(self) -> None:
        # aioimaplib calls this for each continuation request of a pending command.
        data, self._pending = self._pending or "", None
        self._protocol.transport.write(data.encode("ascii") + b"\r\n")


class ImapSession:
    """A logged-in IMAP connection. Open with :meth:`open`; always :meth:`close`."""

    def __init__(
        self,
        client: aioimaplib.IMAP4,
        settings: EmailSettings,
        redactor: Redactor,
        lost: asyncio.Event,
        tokens: AccessTokens | None = None,
    ) -> None:
        self._client = client
        self._settings = settings
        self._redactor = redactor
        self._lost = lost
        self._tokens = tokens
        self._timeout = settings.timeout

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    async def open(
        cls, settings: EmailSettings, redactor: Redactor, tokens: AccessTokens | None = None
    ) -> ImapSession:
        """Connect, secure the connection as configured, and log in: with the password,
        or with ``AUTHENTICATE XOAUTH2`` and an access token from ``tokens``
        (``auth = "oauth2"``).

        Raises:
            AuthenticationError: the login (or the access token, renewed once) was refused.
            RequestRejectedError: STARTTLS is required but not offered, the certificate
                was refused, or the server forbids logging in.
            ServiceUnavailableError: the network failed or the server timed out.
        """
        host, port = settings.imap_host, settings.imap_port_or_default
        lost = asyncio.Event()
        context = tls_context(settings) if settings.imap_tls == "ssl" else None
        client = aioimaplib.IMAP4(
            host,
            port,
            timeout=settings.timeout,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=context,
        )
        session = cls(client, settings, redactor, lost, tokens)
        redactor.attach()  # aioimaplib logs the LOGIN line at debug level
        try:
            await client.wait_hello_from_server()
            session._keepalive()
            if settings.imap_tls == "starttls":
                await session._starttls()
            if settings.auth == "oauth2":
                await session._login_xoauth2()
            else:
                await session._login()
        except ServiceError:
            await session.close()
            raise
        except BaseException as exc:
            await session.close()
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            # Not "from exc": an aioimaplib error raised during LOGIN can carry the
            # command line, password included, in its str(); the mapped error is scrubbed.
            raise imap_error(exc, f"connecting to {host}:{port}", redactor) from None
        finally:
            redactor.detach()
        return session

    def _keepalive(self) -> None:
        """TCP keepalive, so a peer that vanished while we idle is noticed in minutes."""
        transport = self._client.protocol.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            for option, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
                if hasattr(socket, option):
                    sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
        except OSError:  # not every platform or socket type allows it
            pass

    async def _starttls(self) -> None:
        protocol = self._client.protocol
        if "STARTTLS" not in protocol.capabilities:
            raise RequestRejectedError(
                IMAP,
                f"{self._settings.imap_host} does not offer STARTTLS; refusing to log in "
                'without TLS (imap_tls = "starttls")',
                code="starttls_unavailable",
            )
        command = aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
        response = await self._call("starting TLS", protocol.execute(command))
        if response.result != "OK":
            raise imap_refused("starting TLS", response.result, response.lines, self._redactor)
        loop = asyncio.get_running_loop()
        transport = await asyncio.wait_for(
            loop.start_tls(
                protocol.transport,
                protocol,
                tls_context(self._settings),
                server_hostname=self._settings.imap_host,
            ),
            self._timeout,
        )
        protocol.transport = transport
        # RFC 3501 6.2.1: capabilities learned before TLS must be discarded.
        await self._call("reading capabilities", protocol.capability())

    async def _login_xoauth2(self) -> None:
        tokens = self._tokens
        if tokens is None:
            raise RuntimeError('auth = "oauth2" needs the mailbox\'s AccessTokens')
        if not self.has("AUTH=XOAUTH2"):
            raise RequestRejectedError(
                IMAP,
                f"{self._settings.imap_host} does not offer AUTHENTICATE XOAUTH2; it cannot "
                'log in with an OAuth2 access token (auth = "oauth2")',
                code="not_supported",
            )
        action = f"logging in as {self._settings.login} with an OAuth2 access token"
        token = await tokens.current(IMAP)
        try:
            await self._authenticate_xoauth2(action, token)
        except AuthenticationError as refused:
            # Expired, most likely: a renewable token is renewed once and tried again.
            fresh = await tokens.renew(token, IMAP)
            if fresh is None:
                raise AuthenticationError(
                    IMAP,
                    f"{refused.reason} ({tokens.no_other})",
                    code=refused.code,
                ) from None
            await self._authenticate_xoauth2(action, fresh)
        await self._call("reading capabilities", self._client.protocol.capability())

    async def _authenticate_xoauth2(self, action: str, token: str) -> None:
        protocol = self._client.protocol
        response = xoauth2_response(self._settings.login, token)
        self._redactor.add(response)
        command = _SaslCommand(
            protocol, "XOAUTH2", response, initial="SASL-IR" in protocol.capabilities
        )
        result = await self._call(
            action, protocol.execute(command, scrub=response), sensitive=True
        )
        if result.result != "OK":
            error = imap_refused(action, result.result, result.lines, self._redactor)
            if result.result == "NO" and not error.retryable:
                # Not every server says [AUTHENTICATIONFAILED] (Exchange: "AUTHENTICATE
                # failed."); a NO here is the token refused.
                error = AuthenticationError(IMAP, error.reason, code="auth")
            raise error
        async with protocol.state_condition:  # as aioimaplib's own login does
            protocol.state = aioimaplib.AUTH
            protocol.state_condition.notify_all()

    async def _login(self) -> None:
        password = self._settings.password
        if password is None:
            raise RuntimeError('auth = "password" needs a password (EmailSettings.check)')
        capabilities = self._client.protocol.capabilities
        if "LOGINDISABLED" in capabilities:
            raise RequestRejectedError(
                IMAP,
                f"{self._settings.imap_host} does not allow logging in on this connection "
                "(LOGINDISABLED); use TLS",
                code="login_disabled",
            )
        response = await self._call(
            f"logging in as {self._settings.login}",
            self._client.protocol.login(self._settings.login, password.reveal()),
            sensitive=True,
        )
        if response.result != "OK":
            raise imap_refused(
                f"logging in as {self._settings.login}",
                response.result,
                response.lines,
                self._redactor,
            )
        await self._call("reading capabilities", self._client.protocol.capability())

    # -- commands ------------------------------------------------------------------------

    def has(self, capability: str) -> bool:
        """Whether the server announced a capability (after login)."""
        return capability.upper() in {c.upper() for c in self._client.protocol.capabilities}

    async def select(self, mailbox: str) -> MailboxStatus:
        """SELECT a folder; its UIDVALIDITY, UIDNEXT and message count."""
        response = await self._ok(f"selecting {mailbox}", self._protocol_select(mailbox))
        uidvalidity = uidnext = None
        exists = 0
        for line in response.lines:
            if not isinstance(line, bytes):
                continue
            if found := _UIDVALIDITY.search(line):
                uidvalidity = int(found.group(1))
            if found := _UIDNEXT.search(line):
                uidnext = int(found.group(1))
            if found := _EXISTS.match(line):
                exists = int(found.group(1))
        if uidvalidity is None:
            raise ServiceUnavailableError(
                IMAP, f"selecting {mailbox}: the server sent no UIDVALIDITY", code="protocol"
            )
        return MailboxStatus(uidvalidity, uidnext, exists)

    async def _protocol_select(self, mailbox: str) -> Any:
        return await self._client.protocol.select(encode_mailbox(mailbox))

    async def uid_search(self, *criteria: str) -> list[int]:
        """UIDs matching a UID SEARCH, ascending."""
        response = await self._ok(
            "searching", self._client.protocol.search(*criteria, charset=None, by_uid=True)
        )
        # aioimaplib hands over "* SEARCH 1 2 3" as b"1 2 3" (or whole); the last line
        # is the tagged completion text.
        uids: set[int] = set()
        for line in response.lines[:-1]:
            if isinstance(line, bytes):
                tokens = line.split()
                if tokens[:1] == [b"SEARCH"]:
                    tokens = tokens[1:]
                uids.update(int(token) for token in tokens if token.isdigit())
        return sorted(uids)

    async def size(self, uid: int) -> int | None:
        """The size in octets of the message with this UID (``RFC822.SIZE``), without
        reading it; ``None`` when it is gone (expunged meanwhile)."""
        response = await self._ok(
            f"reading the size of UID {uid}",
            self._client.protocol.fetch(
                str(uid), "(UID RFC822.SIZE)", by_uid=True, timeout=self._timeout
            ),
        )
        for line in response.lines:
            if not isinstance(line, bytes) or (size := _FETCH_SIZE.search(line)) is None:
                continue
            found = _FETCH_UID.search(line)
            if found is None or int(found.group(1)) == uid:  # not another mail's update
                return int(size.group(1))
        return None

    async def fetch(self, uid: int, *, header_only: bool = False) -> bytes | None:
        """The whole message with this UID, or only its header (``BODY.PEEK``: the
        \\Seen flag is untouched); ``None`` when it is gone (expunged meanwhile)."""
        section = "HEADER" if header_only else ""
        response = await self._ok(
            f"fetching UID {uid}",
            self._client.protocol.fetch(
                str(uid), f"(UID BODY.PEEK[{section}])", by_uid=True, timeout=self._timeout
            ),
        )
        lines = response.lines
        for i, line in enumerate(lines):
            if isinstance(line, bytearray) and i > 0:
                head = lines[i - 1]
                found = _FETCH_UID.search(head) if isinstance(head, bytes) else None
                if found is None or int(found.group(1)) == uid:
                    return bytes(line)
        return None

    async def fetch_items(self, uid: int, items: str) -> dict[str, Value] | None:
        """``UID FETCH uid (items)``, parsed: the items by name in upper case
        (``BODYSTRUCTURE``, ``BODY[1.MIME]``); ``None`` when the mail is gone.

        Raises:
            ImapSyntaxError: the server's answer could not be parsed.
        """
        response = await self._ok(
            f"fetching UID {uid}",
            self._client.protocol.fetch(
                str(uid), f"({items})", by_uid=True, timeout=self._timeout
            ),
        )
        found: dict[str, Value] | None = None
        for fetched in fetch_responses(response.lines):
            if fetched.uid == uid:  # not another mail's flag update
                found = {**(found or {}), **fetched.items}
        return found

    async def add_flags(self, uid: int, *flags: str) -> None:
        """Set flags (``\\Seen``, a keyword) on one message."""
        await self._ok(
            f"flagging UID {uid}",
            self._client.protocol.store(
                str(uid), "+FLAGS.SILENT", f"({' '.join(flags)})", by_uid=True
            ),
        )

    async def move(self, uid: int, mailbox: str) -> None:
        """Move one message to another folder (MOVE, else COPY + \\Deleted + UID EXPUNGE)."""
        target = encode_mailbox(mailbox)
        if self.has("MOVE"):
            await self._ok(
                f"moving UID {uid} to {mailbox}",
                self._client.protocol.move(str(uid), target, by_uid=True),
            )
            return
        await self._ok(
            f"copying UID {uid} to {mailbox}",
            self._client.protocol.copy(str(uid), target, by_uid=True),
        )
        await self.add_flags(uid, "\\Deleted")
        if self.has("UIDPLUS"):
            await self._ok(
                f"expunging UID {uid}",
                self._client.protocol.expunge(str(uid), by_uid=True),
            )
        else:
            # A plain EXPUNGE would also remove mail a person marked deleted; leave it.
            log.warning("UID %d copied to %s and marked \\Deleted (no UIDPLUS)", uid, mailbox)

    async def create(self, mailbox: str) -> None:
        """Create a folder; no error when it exists."""
        response = await self._call(
            f"creating {mailbox}",
            self._client.protocol.simple_command("CREATE", encode_mailbox(mailbox)),
        )
        if response.result != "OK":
            log.debug("CREATE %s: %s (it probably exists)", mailbox, response.result)

    async def append(self, mailbox: str, data: bytes, flags: str) -> None:
        """Store a message in a folder (APPEND)."""
        await self._ok(
            f"saving to {mailbox}",
            self._client.protocol.append(
                data, encode_mailbox(mailbox), flags, None, timeout=self._timeout
            ),
        )

    async def noop(self) -> None:
        """NOOP: proves the connection is alive and lets the server report changes."""
        await self._ok("NOOP", self._client.protocol.simple_command("NOOP"))

    async def idle(self, renew: float, stop: asyncio.Event) -> bool:
        """Wait in IDLE until the folder changes, ``renew`` seconds pass, or ``stop`` is set.

        IDLE is always ended with DONE and its completion awaited within the timeout:
        a connection that died silently fails there, not hours later.

        Returns:
            Whether the server reported a change.

        Raises:
            ServiceUnavailableError: the connection was lost or stopped answering.
        """
        client = self._client
        queue = client.protocol.idle_queue
        while not queue.empty():
            queue.get_nowait()
        try:
            idle = await asyncio.wait_for(client.idle_start(timeout=renew), self._timeout)
        except Exception as exc:
            raise imap_error(exc, "starting IDLE", self._redactor) from exc
        changed = False
        deadline = asyncio.get_running_loop().time() + renew
        try:
            while not changed and not stop.is_set() and not self._lost.is_set():
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    break
                lines = await self._first(client.wait_server_push(timeout=left), stop)
                if lines is None or lines == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                changed = any(isinstance(x, bytes) and _CHANGE.match(x) for x in lines)
        finally:
            if not self._lost.is_set() and client.has_pending_idle():
                client.idle_done()
        if self._lost.is_set():
            idle.cancel()
            raise ServiceUnavailableError(IMAP, "the connection was lost while idling")
        response = await self._call("ending IDLE", idle)
        if response.result != "OK":
            raise imap_refused("ending IDLE", response.result, response.lines, self._redactor)
        return changed

    async def _first(self, push: Awaitable[Any], stop: asyncio.Event) -> Any:
        """The server's next push, or ``None`` on stop, timeout or a lost connection."""
        tasks = [
            asyncio.ensure_future(push),
            asyncio.ensure_future(stop.wait()),
            asyncio.ensure_future(self._lost.wait()),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks[1:]:
                task.cancel()
        if not tasks[0].done():
            tasks[0].cancel()
            await asyncio.gather(tasks[0], return_exceptions=True)
            return None
        try:
            return tasks[0].result()
        except TimeoutError:
            return None

    async def close(self) -> None:
        """Log out (briefly) and drop the connection; never raises."""
        protocol = self._client.protocol
        try:
            if not self._lost.is_set() and protocol.state in ("AUTH", "SELECTED"):
                await asyncio.wait_for(protocol.logout(), min(self._timeout, 5.0))
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                self._abort()
                raise
            log.debug("IMAP logout failed: %s", type(exc).__name__)
        self._abort()

    def abort(self) -> None:
        """Drop the connection at once, without logging out (the work was cancelled)."""
        self._abort()

    def _abort(self) -> None:
        transport = self._client.protocol.transport
        if transport is not None and not transport.is_closing():
            transport.close()
        for task in list(self._client.tasks) + list(self._client.protocol.tasks):
            task.cancel()
        if not self._client._client_task.done():
            self._client._client_task.cancel()

    # -- plumbing ------------------------------------------------------------------------

    async def _ok(self, action: str, command: Awaitable[Any]) -> Any:
        response = await self._call(action, command)
        if response.result != "OK":
            raise imap_refused(action, response.result, response.lines, self._redactor)
        return response

    async def _call(self, action: str, command: Awaitable[T], *, sensitive: bool = False) -> T:
        """Run one command, bounded by the timeout and by the connection's life.

        ``sensitive``: the command carries a secret, so the vendor's exception (whose
        ``str()`` may quote the command) is not chained as the cause.
        """
        task = asyncio.ensure_future(command)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost}, timeout=self._timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
        if task in done:
            try:
                return task.result()
            except Exception as exc:
                error = imap_error(exc, action, self._redactor)
                if sensitive:
                    raise error from None
                raise error from exc
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        if self._lost.is_set():
            raise ServiceUnavailableError(IMAP, f"{action}: the connection was lost")
        raise ServiceUnavailableError(IMAP, f"{action}: timed out", code="timeout")
