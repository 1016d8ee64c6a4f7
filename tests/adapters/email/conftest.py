"""Fixtures for the email adapter: a real Dovecot, a real SMTP server, running bots."""

from __future__ import annotations

import shutil
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[3]
try:
    import botkit_email  # noqa: F401
except ImportError:  # an editable install made before the package existed does not map it
    sys.path.insert(0, str(_ROOT / "adapters"))

from botkit import Bot, Plugin, Secret  # noqa: E402
from botkit.llm import ChatModel, StandInModel  # noqa: E402
from botkit.testing import run_bot as run_test_bot  # noqa: E402
from botkit_chat import plugin as chat_plugin  # noqa: E402
from botkit_email import EmailAdapter, EmailSettings  # noqa: E402
from tests.adapters.email.servers import (  # noqa: E402
    Dovecot,
    MailAccount,
    SmtpCapture,
    TokenIntrospection,
    dovecot_binary,
    dovecot_root,
    make_certificate,
)

SettingsFactory = Callable[..., EmailSettings]
RunBot = Callable[..., Awaitable[tuple[Bot, EmailAdapter]]]

SMTP_USER = "bot-smtp"
SMTP_PASSWORD = "smtp-Pass-7f3a"
BOT_ADDRESS = "bot@example.test"


def _start_dovecot(
    tmp_path_factory: pytest.TempPathFactory, *, tls: bool, introspection_url: str | None = None
) -> Iterator[tuple[Dovecot, tuple[Path, Path] | None]]:
    binary = dovecot_binary()
    if binary is None:
        pytest.skip(
            "Dovecot is not installed (Debian: apt-get install dovecot-imapd); the IMAP "
            "tests need a real server"
        )
    root, temporary = dovecot_root(tmp_path_factory.mktemp("dovecot"))
    certificate = None
    if tls:
        certificate = make_certificate(root)
        if certificate is None:
            pytest.skip("openssl is not installed; the TLS tests need a certificate")
    server = Dovecot.start(
        binary, root, certificate=certificate, introspection_url=introspection_url
    )
    try:
        yield server, certificate
    finally:
        server.stop()
        if temporary:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def dovecot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    """Dovecot on 127.0.0.1, plain IMAP only (``ssl = no``), for the whole session."""
    for server, _ in _start_dovecot(tmp_path_factory, tls=False):
        yield server


@pytest.fixture(scope="session")
def tls_dovecot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Dovecot, tuple[Path, Path]]]:
    """Dovecot with a throwaway certificate (and its key): STARTTLS on ``port``, implicit
    TLS on ``imaps_port``."""
    for server, certificate in _start_dovecot(tmp_path_factory, tls=True):
        assert certificate is not None
        yield server, certificate


@pytest.fixture(scope="session")
def oauth2_dovecot(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Dovecot, TokenIntrospection]]:
    """Dovecot that also takes ``AUTHENTICATE XOAUTH2`` with a bearer token, checked
    against a token introspection endpoint the tests grant tokens on."""
    introspection = TokenIntrospection()
    introspection.start()
    try:
        for server, _ in _start_dovecot(
            tmp_path_factory, tls=False, introspection_url=introspection.url
        ):
            yield server, introspection
    finally:
        introspection.stop()


@pytest.fixture
def account(dovecot: Dovecot) -> MailAccount:
    """A fresh mail user with an empty Maildir."""
    return dovecot.add_account()


@pytest.fixture
def smtp() -> Iterator[SmtpCapture]:
    """aiosmtpd on a free port, requiring a login, recording every message."""
    server = SmtpCapture(SMTP_USER, SMTP_PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def tls_smtp(tls_dovecot: tuple[Dovecot, tuple[Path, Path]]) -> Iterator[SmtpCapture]:
    """aiosmtpd that requires STARTTLS, with the TLS Dovecot's certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_dovecot[1])
    server = SmtpCapture(SMTP_USER, SMTP_PASSWORD, tls_context=context)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings_for(account: MailAccount, smtp: SmtpCapture) -> SettingsFactory:
    """``EmailSettings`` for the test account and SMTP server, with quick timings."""

    def make(**overrides: Any) -> EmailSettings:
        values: dict[str, Any] = {
            "address": BOT_ADDRESS,
            "imap_host": account.host,
            "imap_port": account.port,
            "imap_tls": "none",
            "user": account.user,
            "password": Secret(account.password, source="BOTKIT_EMAIL_PASSWORD"),
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_tls": "none",
            "smtp_user": SMTP_USER,
            "smtp_password": Secret(SMTP_PASSWORD, source="BOTKIT_EMAIL_SMTP_PASSWORD"),
            "timeout": 5.0,
            "reconnect_min": 0.05,
            "reconnect_max": 0.5,
            "poll_interval": 0.2,
        }
        values.update(overrides)
        return EmailSettings(**values)

    return make


@pytest.fixture
async def run_bot(tmp_path: Path) -> AsyncIterator[RunBot]:
    """Start a real ``Bot`` (SQLite, stand-in model, the chat plugin) around an
    ``EmailAdapter``; everything started is stopped after the test."""
    running: list[Bot] = []

    async def run(
        settings: EmailSettings,
        *,
        plugins: list[Plugin] | None = None,
        database_url: str | None = None,
        name: str = "email",
        model: ChatModel | None = None,
    ) -> tuple[Bot, EmailAdapter]:
        adapter = EmailAdapter(name, settings)
        bot = run_test_bot(
            database_url=database_url or f"sqlite:///{tmp_path / 'bot.db'}",
            channels=[adapter],
            plugins=plugins if plugins is not None else [chat_plugin],
            model=model if model is not None else StandInModel(),
        ).bot
        await bot.start()
        running.append(bot)
        return bot, adapter

    try:
        yield run
    finally:
        for bot in reversed(running):
            if bot._started:  # a test may have stopped it already (a restart)
                await bot.stop()
