"""Real mail servers for the email adapter's tests: Debian's Dovecot and aiosmtpd.

Dovecot runs from a config generated per test session, listening on 127.0.0.1 only,
``ssl = no`` (a second instance with a throwaway certificate serves the TLS tests, a
third checks OAuth2 bearer tokens against ``TokenIntrospection``), with a passwd-file of
users that tests add on the fly (Dovecot re-reads the file), each with a fresh Maildir.

As root, Dovecot refuses to run its login process or to access mail as root, so the
mail is owned by ``nobody`` and the whole instance lives in a ``/tmp`` directory those
processes can reach (pytest's ``tmp_path`` is private to root). As any other user,
everything runs as that user, in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import email.policy
import imaplib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = [
    "Dovecot",
    "MailAccount",
    "SmtpCapture",
    "TokenIntrospection",
    "dovecot_binary",
    "free_port",
    "make_certificate",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def dovecot_binary() -> str | None:
    """The ``dovecot`` executable (Debian puts it in /usr/sbin), or ``None``."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")


def _dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run(
        [binary, "--version"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    major, minor = out.split()[0].split(".")[:2]
    return int(major), int(minor)


def make_certificate(directory: Path) -> tuple[Path, Path] | None:
    """A self-signed certificate for 127.0.0.1 and localhost (``openssl``), or ``None``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


@dataclass
class MailAccount:
    """One Dovecot user, with blocking IMAP helpers (call them via ``asyncio.to_thread``)."""

    host: str
    port: int
    user: str
    password: str

    @contextlib.contextmanager
    def connect(self) -> Iterator[imaplib.IMAP4]:
        """A logged-in imaplib connection."""
        imap = imaplib.IMAP4(self.host, self.port, timeout=10)
        try:
            imap.login(self.user, self.password)
            yield imap
        finally:
            with contextlib.suppress(Exception):
                imap.logout()

    def append(self, data: bytes, mailbox: str = "INBOX", flags: str = "") -> None:
        """Deliver a message by IMAP APPEND (creating the folder if needed)."""
        with self.connect() as imap:
            imap.create(_quote(mailbox))
            status, detail = imap.append(_quote(mailbox), flags or None, None, data)
            assert status == "OK", detail

    def recreate(self, mailbox: str) -> None:
        """Delete and create a folder again: its UIDVALIDITY changes."""
        with self.connect() as imap:
            imap.delete(_quote(mailbox))
            status, detail = imap.create(_quote(mailbox))
            assert status == "OK", detail

    def uidvalidity(self, mailbox: str) -> int:
        """The folder's current UIDVALIDITY."""
        with self.connect() as imap:
            status, data = imap.status(_quote(mailbox), "(UIDVALIDITY)")
            assert status == "OK", data
            raw = data[0]
            assert isinstance(raw, bytes)
            return int(raw.split(b"UIDVALIDITY")[1].strip(b" )"))

    def messages(self, mailbox: str = "INBOX") -> list[tuple[set[str], EmailMessage]]:
        """Every message in a folder with its flags, oldest first."""
        out: list[tuple[set[str], EmailMessage]] = []
        with self.connect() as imap:
            status, _ = imap.select(_quote(mailbox), readonly=True)
            if status != "OK":
                return out
            _, data = imap.uid("SEARCH", "ALL")
            found = data[0]
            uids = found.decode().split() if isinstance(found, bytes) else []
            for uid in uids:
                _, parts = imap.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                head, body = parts[0]
                flags = set(imaplib.ParseFlags(head))
                message = email.message_from_bytes(body, policy=email.policy.default)
                assert isinstance(message, EmailMessage)
                out.append(({f.decode() for f in flags}, message))
        return out


def _quote(mailbox: str) -> str:
    return f'"{mailbox}"'


@dataclass
class Dovecot:
    """A running Dovecot; :meth:`add_account` creates users with fresh Maildirs."""

    binary: str
    root: Path
    port: int
    imaps_port: int | None = None
    process: subprocess.Popen[bytes] | None = None
    _users: list[str] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        binary: str,
        root: Path,
        *,
        certificate: tuple[Path, Path] | None = None,
        introspection_url: str | None = None,
    ) -> Dovecot:
        """Write a config under ``root``, start ``dovecot -F`` and wait until it accepts.

        ``introspection_url``: also accept ``AUTHENTICATE XOAUTH2``/``OAUTHBEARER`` with a
        bearer token, checked by POSTing it there (RFC 7662 token introspection).
        """
        server = cls(binary, root, free_port(), free_port() if certificate else None)
        (root / "users").mkdir()
        config = root / "dovecot.conf"
        config.write_text(server._config(certificate, introspection_url))
        server.process = subprocess.Popen(
            [binary, "-F", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group: stop() ends all its children
        )
        server._wait_ready()
        return server

    @property
    def as_root(self) -> bool:
        return os.geteuid() == 0

    def _ids(self) -> tuple[str, int, int]:
        """The user mail is accessed as: ``nobody`` under root, else ourselves."""
        entry = pwd.getpwnam("nobody") if self.as_root else pwd.getpwuid(os.geteuid())
        return entry.pw_name, entry.pw_uid, entry.pw_gid

    def _config(self, certificate: tuple[Path, Path] | None, introspection_url: str | None) -> str:
        name, _, gid = self._ids()
        major, minor = _dovecot_version(self.binary)
        if self.as_root:
            users = "default_login_user = dovenull\ndefault_internal_user = dovecot\n"
            chroot = ""
        else:
            group = _group_name(gid)
            users = (
                f"default_login_user = {name}\ndefault_internal_user = {name}\n"
                f"default_internal_group = {group}\n"
            )
            chroot = "  chroot =\n"
        # One passwd-file per user (the path names the user), so a user added a moment
        # after the last lookup is found: Dovecot re-reads a changed file only when its
        # mtime (in seconds) moves.
        users_dir = self.root / "users"
        passwd = users_dir / ("%{user}" if (major, minor) >= (2, 4) else "%u")
        ssl_lines = "ssl = no\n"
        imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        if certificate is not None:
            cert, key = certificate
            if (major, minor) >= (2, 4):
                ssl_lines = (
                    f"ssl = yes\nssl_server_cert_file = {cert}\nssl_server_key_file = {key}\n"
                )
            else:
                ssl_lines = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
            imaps = (
                "  inet_listener imaps {\n    address = 127.0.0.1\n"
                f"    port = {self.imaps_port}\n    ssl = yes\n  }}\n"
            )
        common = (
            f"base_dir = {self.root / 'run'}\n"
            f"state_dir = {self.root / 'state'}\n"
            f"log_path = {self.root / 'dovecot.log'}\n"
            "listen = 127.0.0.1\n"
            f"{users}"
            "first_valid_uid = 1\n"
            f"{ssl_lines}"
            f"auth_mechanisms = plain login{' xoauth2 oauthbearer' if introspection_url else ''}\n"
            # Dovecot delays failed logins by 2 s; the tests try wrong passwords on purpose.
            "auth_failure_delay = 0\n"
            "imap_idle_notify_interval = 1 mins\n"
            "service imap-login {\n"
            f"{chroot}"
            "  inet_listener imap {\n    address = 127.0.0.1\n"
            f"    port = {self.port}\n  }}\n"
            f"{imaps}"
            "}\n"
            # No growing delay for an IP after failed logins: tests fail logins on purpose.
            f"service anvil {{\n{chroot}"
            "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
        )
        # The token check: RFC 7662 introspection by POST; the answer's "username" must be
        # the login and its "active" true.
        oauth2 = (
            f"introspection_mode = post\nintrospection_url = {introspection_url}\n"
            "username_attribute = username\nactive_attribute = active\nactive_value = true\n"
            "force_introspection = yes\n"
            if introspection_url
            else ""
        )
        if (major, minor) >= (2, 4):
            # 2.4: the OAuth2 mechanisms check tokens with the global oauth2_* settings,
            # without a passdb.
            oauth2_settings = "".join(f"oauth2_{line}\n" for line in oauth2.splitlines())
            return (
                "dovecot_config_version = 2.4.0\ndovecot_storage_version = 2.4.0\n"
                + common
                + oauth2_settings
                + "protocols = imap\nauth_allow_cleartext = yes\n"
                "mail_driver = maildir\nmail_path = ~/Maildir\n"
                f"passdb passwd-file {{\n  passwd_file_path = {passwd}\n"
                "  default_password_scheme = PLAIN\n}\n"
                f"userdb passwd-file {{\n  passwd_file_path = {passwd}\n}}\n"
            )
        passdbs = (
            "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {passwd}\n"
        )
        if oauth2:
            # Passwords for PLAIN/LOGIN only; tokens go to the oauth2 passdb alone.
            args = self.root / "dovecot-oauth2.conf.ext"
            args.write_text(oauth2)
            passdbs += (
                "  mechanisms = plain login\n}\n"
                "passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
                f"  args = {args}\n"
            )
        return (
            common + "protocols = imap\ndisable_plaintext_auth = no\n"
            "mail_location = maildir:~/Maildir\n"
            f"{passdbs}}}\n"
            f"userdb {{\n  driver = passwd-file\n  args = username_format=%u {passwd}\n}}\n"
        )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"dovecot exited at start: {stderr}{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.settimeout(2)
                    if sock.recv(100).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not start listening within 15 s:\n{self.log()}")

    def add_account(self, password: str | None = None) -> MailAccount:
        """A new user with an empty Maildir."""
        _, uid, gid = self._ids()
        user = f"u{uuid.uuid4().hex[:10]}@example.test"
        password = password or uuid.uuid4().hex
        home = self.root / "home" / user
        home.mkdir(parents=True)
        if self.as_root:
            os.chown(home, uid, gid)
        line = f"{user}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n"
        (self.root / "users" / user).write_text(line)
        self._users.append(user)
        return MailAccount("127.0.0.1", self.port, user, password)

    def imap_pids(self, user: str) -> list[int]:
        """The pids of the IMAP processes that served ``user``, oldest first (from the log)."""
        pattern = re.compile(rf"Login: user=<{re.escape(user)}>.*?mpid=(\d+)")
        return [int(pid) for pid in pattern.findall(self.log())]

    def log(self) -> str:
        """Dovecot's log so far (for failure messages)."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else "(no log)"

    def stop(self) -> None:
        """Stop this Dovecot (its master and the processes it started) and wait for it."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            # The whole group at once: the master alone takes seconds to wind its
            # children down one by one.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of our group only
        if process.stderr is not None:
            process.stderr.close()


class TokenIntrospection:
    """An OAuth2 token introspection endpoint (RFC 7662) for Dovecot's oauth2 passdb, on a
    free port, in a thread of its own (Dovecot asks it whatever the test's loop is doing).

    Tests grant a token to a user (``tokens[token] = user``) and revoke it (``del``); a
    POST of ``token=...`` answers ``{"active": true, "username": user}`` for a granted
    token, ``{"active": false}`` for any other. ``asked`` lists the tokens checked.
    """

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.asked: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                token = form.get("token", [""])[0]
                owner.asked.append(token)
                user = owner.tokens.get(token)
                answer = {"active": True, "username": user} if user else {"active": False}
                body = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests read ``asked``

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/introspect"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> None:
        """Start answering."""
        self._thread.start()

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._server.shutdown()
        self._server.server_close()


def _group_name(gid: int) -> str:
    import grp

    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def dovecot_root(tmp_path: Path) -> tuple[Path, bool]:
    """Where an instance lives: ``tmp_path``, or as root a fresh world-traversable /tmp dir
    (returned with ``True``: the caller removes it)."""
    if os.geteuid() != 0:
        return tmp_path, False
    root = Path(tempfile.mkdtemp(prefix="botkit-dovecot-"))
    root.chmod(0o755)
    return root, True


@dataclass
class Captured:
    """One message the SMTP server received."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    raw: bytes


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self._capture = capture

    async def auth_XOAUTH2(self, server: Any, args: list[str]) -> AuthResult:
        """``AUTH XOAUTH2 <base64>`` as Gmail answers it: a refused token gets a 334
        challenge holding a JSON error, the client's empty line, then 535."""
        capture = self._capture
        try:
            fields = base64.b64decode(args[1], validate=True).decode().split("\x01")
            user = fields[0].removeprefix("user=")
            token = fields[1].removeprefix("auth=Bearer ")
        except Exception:
            return AuthResult(success=False, handled=False, message="501 5.5.2 Bad XOAUTH2")
        capture.xoauth2_tokens.append(token)
        if capture.tokens.get(token) == user:
            return AuthResult(success=True, handled=False, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
        await server.challenge_auth(error)
        return AuthResult(
            success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
        )

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self._capture.refuse_next:
            self._capture.refuse_next -= 1
            return "451 4.3.0 Try again later"
        raw = bytes(envelope.original_content or envelope.content)
        message = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self._capture.received.append(
            Captured(envelope.mail_from, list(envelope.rcpt_tos), message, raw)
        )
        self._capture.logins.append(session.auth_data if session.authenticated else None)
        return "250 OK"


class SmtpCapture:
    """aiosmtpd on a free port that offers a login (a password, or an OAuth2 token from
    ``tokens`` with ``AUTH XOAUTH2``) and records what it receives (and who logged in, in
    ``logins``).

    Args:
        user, password: the only login it accepts.
        tls_context: offer STARTTLS with this certificate (and require it).
    """

    def __init__(self, user: str, password: str, *, tls_context: ssl.SSLContext | None = None):
        self.user = user
        self.password = password
        self.received: list[Captured] = []
        self.logins: list[Any] = []
        #: OAuth2 tokens accepted with AUTH XOAUTH2, and for which user
        self.tokens: dict[str, str] = {}
        #: every token an AUTH XOAUTH2 carried, in order
        self.xoauth2_tokens: list[str] = []
        #: answer this many messages with a temporary failure (451) before accepting
        self.refuse_next = 0
        self.port = free_port()
        self._controller = Controller(
            _Handler(self),
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self._authenticate,
            # Not auth_required: aiosmtpd warns about that without TLS, and warnings are
            # errors here. AUTH is still offered; each capture records who logged in.
            auth_require_tls=tls_context is not None,
            tls_context=tls_context,
            require_starttls=tls_context is not None,
        )

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.user
            and auth_data.password.decode() == self.password
        )
        return AuthResult(success=ok, handled=False, auth_data=self.user if ok else None)

    def start(self) -> None:
        """Start listening (in aiosmtpd's thread)."""
        self._controller.start()

    def stop(self) -> None:
        """Stop listening."""
        self._controller.stop()

    async def wait_for(self, count: int, within: float = 10.0) -> list[Captured]:
        """Wait until ``count`` messages arrived (at most ``within`` seconds)."""
        deadline = asyncio.get_running_loop().time() + within
        while len(self.received) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"expected {count} message(s), got {len(self.received)}")
            await asyncio.sleep(0.02)
        return list(self.received)
