"""``EmailSettings``: the ``[adapters.email]`` table, parsed once at start."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from botkit import ConfigError, Secret

__all__ = ["IDLE_LIMIT", "MAX_MESSAGE_BYTES", "EmailSettings", "TlsMode"]

TlsMode = Literal["ssl", "starttls", "none"]

#: The default largest mail read whole: 10 MB as mail servers count it (decimal), the
#: mail as stored, attachments base64-encoded (about 7 MB of files).
MAX_MESSAGE_BYTES = 10_000_000

#: RFC 2177: servers may drop a client that idles 30 minutes; re-issue IDLE before 29.
IDLE_LIMIT = 29 * 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EmailSettings:
    """One mailbox the bot reads over IMAP and answers over SMTP.

    To serve several mailboxes, enable the adapter several times under different names
    (``[adapters.support]`` with ``use = "botkit_email:EmailAdapter"``); each one has its
    own mode, folders and allowlists.

    Attributes:
        address: the mailbox's address; replies are sent from it and mail from it is
            never answered.
        imap_host: the IMAP server.
        smtp_host: the SMTP server.
        auth: how to log in to IMAP and SMTP: ``"password"`` (LOGIN, AUTH PLAIN/LOGIN)
            or ``"oauth2"`` (``AUTHENTICATE XOAUTH2`` and ``AUTH XOAUTH2`` with an access
            token, as Microsoft 365 and Google Workspace require).
        password: the login password (``auth = "password"``), from
            ``BOTKIT_EMAIL_PASSWORD`` unless ``password_env`` names another variable.
            Never logged.
        access_token: the OAuth2 access token (``auth = "oauth2"``), from
            ``BOTKIT_EMAIL_ACCESS_TOKEN`` unless ``access_token_env`` names another
            variable. It cannot be renewed: use ``token_command`` for tokens that expire.
        token_command: with ``auth = "oauth2"``, a program and its arguments (no shell)
            that prints a current access token; run when a token is first needed and
            again, once, when the server refuses the one it printed (expired). Its
            output is never logged; a failure is reported by its exit status only.
        user: the login name for IMAP and SMTP; defaults to ``address``.
        smtp_user: the SMTP login when it differs from ``user``; ``""`` sends without
            logging in (a local relay).
        smtp_password: the SMTP password when it differs, from
            ``BOTKIT_EMAIL_SMTP_PASSWORD``; defaults to ``password``. With
            ``auth = "oauth2"`` SMTP logs in with the access token instead.
        imap_port: defaults to 993 with ``ssl``, else 143.
        imap_tls: ``"ssl"`` (implicit TLS), ``"starttls"`` (refuses to log in when the
            server does not offer it) or ``"none"`` (local testing only; logs a warning).
        smtp_port: defaults to 465 with ``ssl``, 587 with ``starttls``, else 25.
        smtp_tls: as ``imap_tls``, for SMTP.
        tls_ca_file: a PEM file of CA certificates to trust instead of the system's
            (a self-hosted server with its own CA).
        display_name: the name shown in the From of replies.
        aliases: more addresses that are this mailbox (never answered either).
        mailbox: the IMAP folder watched for new mail.
        after_accept: what marks a stored mail on the server: ``"seen"`` sets ``\\Seen``,
            ``"flag"`` sets the keyword ``flag``, ``"move"`` moves it to ``move_to``.
        flag: the IMAP keyword set when ``after_accept = "flag"``.
        move_to: the folder mail is moved to when ``after_accept = "move"``.
        mode: ``"reply"`` sends answers; ``"draft"`` saves them in ``drafts_folder`` for
            a person to review and send; ``"notify"`` mails a summary (the mail and the
            bot's answer) to ``notify_to`` instead of answering the sender.
        drafts_folder: where ``draft`` mode saves replies (created when missing).
        notify_to: the address ``notify`` mode writes to.
        allowed_senders: when this or ``allowed_domains`` is set, only these addresses
            (and domains) are answered; other mail is stored and skipped.
        allowed_domains: domains whose senders are answered (subdomains included).
        autoreply_period: seconds during which one sender, and one thread, get at most
            one automatic reply (RFC 3834); default one day. ``reply`` mode only.
        initial_sync: on the very first start: ``"unhandled"`` reads the unread mail
            already there (without the ``flag`` keyword, in ``flag`` mode), ``"new"``
            reads only mail arriving from then on. After the server renumbered the folder
            (UIDVALIDITY changed), unread mail is read again and recognised by its
            Message-ID, so nothing is answered twice.
        include_subject: put the subject above the text of a mail that starts a thread
            (not of replies), so the model sees what the mail is about.
        idle: use IMAP IDLE when the server offers it; otherwise poll.
        idle_renew: seconds after which IDLE is ended and re-issued, which also proves
            the connection is alive; at most 29 minutes (RFC 2177).
        poll_interval: seconds between checks when not idling.
        timeout: seconds before one IMAP or SMTP operation is given up (a silently
            dropped connection is noticed within this).
        reconnect_min: the first wait before reconnecting after a failure.
        reconnect_max: the longest wait between reconnection attempts.
        quote_original: quote the answered mail (its new text) below the reply.
        message_id_domain: the domain of the Message-IDs botkit writes; defaults to the
            domain of ``address``.
        max_message_bytes: the largest mail read whole (its size on the server, as
            ``RFC822.SIZE`` reports it); a larger one is not downloaded: only its headers
            are, and it is stored as skipped with the reason, never answered.
    """

    address: str
    imap_host: str
    smtp_host: str
    auth: Literal["password", "oauth2"] = "password"
    password: Secret | None = field(default=None, metadata={"env": "BOTKIT_EMAIL_PASSWORD"})
    access_token: Secret | None = field(
        default=None, metadata={"env": "BOTKIT_EMAIL_ACCESS_TOKEN"}
    )
    token_command: tuple[str, ...] = ()
    user: str | None = None
    smtp_user: str | None = None
    smtp_password: Secret | None = field(
        default=None, metadata={"env": "BOTKIT_EMAIL_SMTP_PASSWORD"}
    )
    imap_port: int | None = None
    imap_tls: TlsMode = "ssl"
    smtp_port: int | None = None
    smtp_tls: TlsMode = "starttls"
    tls_ca_file: str | None = None
    display_name: str | None = None
    aliases: tuple[str, ...] = ()
    mailbox: str = "INBOX"
    after_accept: Literal["seen", "flag", "move"] = "seen"
    flag: str = "$Botkit"
    move_to: str = "Processed"
    mode: Literal["reply", "draft", "notify"] = "reply"
    drafts_folder: str = "Drafts"
    notify_to: str | None = None
    allowed_senders: tuple[str, ...] = ()
    allowed_domains: tuple[str, ...] = ()
    autoreply_period: float = 86400.0
    initial_sync: Literal["unhandled", "new"] = "unhandled"
    idle: bool = True
    idle_renew: float = 600.0
    poll_interval: float = 60.0
    timeout: float = 30.0
    reconnect_min: float = 1.0
    reconnect_max: float = 300.0
    quote_original: bool = True
    include_subject: bool = True
    message_id_domain: str | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES

    @property
    def login(self) -> str:
        """The IMAP login name."""
        return self.user or self.address

    @property
    def smtp_login(self) -> str:
        """The SMTP login name; empty for a relay that takes no login."""
        return self.login if self.smtp_user is None else self.smtp_user

    @property
    def smtp_secret(self) -> Secret | None:
        """The SMTP password (``None`` with ``auth = "oauth2"``)."""
        if self.auth == "oauth2":
            return None
        return self.smtp_password if self.smtp_password is not None else self.password

    @property
    def imap_port_or_default(self) -> int:
        """The IMAP port, defaulted from the TLS mode."""
        if self.imap_port is not None:
            return self.imap_port
        return 993 if self.imap_tls == "ssl" else 143

    @property
    def smtp_port_or_default(self) -> int:
        """The SMTP port, defaulted from the TLS mode."""
        if self.smtp_port is not None:
            return self.smtp_port
        return {"ssl": 465, "starttls": 587, "none": 25}[self.smtp_tls]

    @property
    def own_addresses(self) -> frozenset[str]:
        """Every address that is this mailbox, lowercased."""
        return frozenset(a.strip().lower() for a in (self.address, *self.aliases) if a.strip())

    @property
    def id_domain(self) -> str:
        """The domain of the Message-IDs botkit writes."""
        return self.message_id_domain or self.address.rpartition("@")[2].strip().lower()

    def problems(self, prefix: str) -> Iterator[ConfigError]:
        """Combinations the TOML types alone cannot catch, found when the table is parsed.

        Args:
            prefix: the table's dotted name, e.g. ``"adapters.email"``.

        Yields:
            ConfigError: naming the key at fault, one for each problem.
        """
        for key in ("address", *(("notify_to",) if self.notify_to is not None else ())):
            value = getattr(self, key)
            local, at, domain = value.strip().rpartition("@")
            if not at or not local or "." not in domain or any(c.isspace() for c in value):
                yield ConfigError(f"{prefix}.{key}", f"is not an email address: {value!r}")
        yield from self._auth_problems(prefix)
        for key in ("imap_host", "smtp_host", "mailbox"):
            if not getattr(self, key).strip():
                yield ConfigError(f"{prefix}.{key}", "must not be empty")
        for key in ("imap_port", "smtp_port"):
            port = getattr(self, key)
            if port is not None and not 1 <= port <= 65535:
                yield ConfigError(f"{prefix}.{key}", "must be a port number (1-65535)")
        if self.mode == "notify" and not self.notify_to:
            yield ConfigError(f"{prefix}.notify_to", 'is required with mode = "notify"')
        if self.after_accept == "move" and not self.move_to.strip():
            yield ConfigError(f"{prefix}.move_to", 'is required with after_accept = "move"')
        if self.after_accept == "move" and self.move_to == self.mailbox:
            yield ConfigError(f"{prefix}.move_to", "must differ from mailbox")
        if self.after_accept == "flag" and not _is_keyword(self.flag):
            yield ConfigError(
                f"{prefix}.flag", f"is not an IMAP keyword (letters, digits, $, _): {self.flag!r}"
            )
        if not 0 < self.idle_renew <= IDLE_LIMIT:
            yield ConfigError(
                f"{prefix}.idle_renew", "must be a positive number of seconds, at most 1740"
            )
        for key in ("poll_interval", "timeout", "reconnect_min", "reconnect_max"):
            if getattr(self, key) <= 0:
                yield ConfigError(f"{prefix}.{key}", "must be a positive number of seconds")
        if self.reconnect_max < self.reconnect_min:
            yield ConfigError(f"{prefix}.reconnect_max", "must not be less than reconnect_min")
        if self.autoreply_period < 0:
            yield ConfigError(f"{prefix}.autoreply_period", "must not be negative")
        if self.max_message_bytes <= 0:
            yield ConfigError(f"{prefix}.max_message_bytes", "must be a positive number of bytes")

    def _auth_problems(self, prefix: str) -> Iterator[ConfigError]:
        if self.auth == "password":
            if not self.password:
                yield ConfigError(
                    f"{prefix}.password",
                    'is required with auth = "password": set the environment variable '
                    "BOTKIT_EMAIL_PASSWORD, or name another with password_env",
                )
            if self.token_command:
                yield ConfigError(f"{prefix}.token_command", 'is only used with auth = "oauth2"')
            return
        if self.token_command and self.access_token:
            yield ConfigError(
                f"{prefix}.token_command",
                "and access_token are both set; use one source for the access token "
                f"(access_token comes from {self.access_token.source or 'the environment'})",
            )
        elif not self.token_command and not self.access_token:
            yield ConfigError(
                f"{prefix}.access_token",
                'is required with auth = "oauth2": set the environment variable '
                "BOTKIT_EMAIL_ACCESS_TOKEN (or name another with access_token_env), or set "
                "token_command to a program that prints one",
            )
        if self.token_command:
            program = self.token_command[0]
            if not program.strip():
                yield ConfigError(f"{prefix}.token_command", "must start with a program")
            elif shutil.which(program) is None:
                yield ConfigError(
                    f"{prefix}.token_command",
                    f"{program!r} was not found (give a path to a program, or one on PATH)",
                )

    def check(self, prefix: str) -> None:
        """Raise every problem :meth:`problems` finds, together.

        Raises:
            ConfigError: naming the key at fault (``ConfigErrors``: several).
        """
        ConfigError.raise_any(self.problems(prefix))


def _is_keyword(flag: str) -> bool:
    return bool(flag) and all(c.isalnum() or c in "$_-." for c in flag) and flag.isascii()
