"""Attachments are not read into memory unless a plugin asks: intake fetches a mail's
BODYSTRUCTURE, header and text part only, and gives the same ``Message`` as parsing the
whole mail did; ``ctx.fetch_attachment`` then reads one file's exact bytes. All against
the real Dovecot."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
import os
import re
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.message import Message as MimeMessage
from typing import Any

import pytest

from botkit import Attachment, Context, Message, Plugin, Reply, RequestRejectedError
from botkit.testing import MemoryState
from botkit_console import ConsoleAdapter
from botkit_email import EmailSettings
from botkit_email._attachments import AttachmentReader, decode_transfer
from botkit_email._errors import Redactor
from botkit_email._imap import ImapSession
from botkit_email._imapwire import Value
from botkit_email._intake import Intake
from botkit_email._ledger import Ledger
from botkit_email._partial import read_mail
from botkit_email._structure import BodyPart, BodyStructureError, parse_bodystructure
from tests.adapters.email.conftest import RunBot, SettingsFactory
from tests.adapters.email.servers import Dovecot, MailAccount
from tests.adapters.email.support import DATA, deliver, new_id, settle

LIMIT = 10_000_000


def _crlf(message: EmailMessage) -> bytes:
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def _base(subject: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ann Example <ann@example.org>"
    message["To"] = "bot@example.test"
    message["Subject"] = subject
    message["Message-ID"] = new_id()
    return message


def _nested() -> bytes:
    """mixed[alternative[plain, related[html, inline image]], notes, forwarded mail,
    a file with an RFC 2231 name, a quoted-printable CSV]."""
    message = _base("Everything at once")
    message.set_content("The new text.\n\nOn Monday Ann wrote:\n> old text\n")
    message.add_alternative("<p>The new <b>text</b>.</p>", subtype="html")
    html = list(message.iter_parts())[1]
    html.add_related(b"\x89PNG" + os.urandom(300), "image", "png", cid="<logo@x>")
    message.add_attachment("line 1\nline 2\n", filename="notes.txt")
    forwarded = _base("Forwarded")
    forwarded.set_content("An older mail.")
    message.add_attachment(forwarded)
    message.add_attachment(
        os.urandom(2000), maintype="application", subtype="octet-stream", filename="Grüße €.bin"
    )
    message.add_attachment(
        "a;b;é\n1;2;ü\n" * 20, subtype="csv", filename="table.csv", cte="quoted-printable"
    )
    return _crlf(message)


def _blank_plain_with_html() -> bytes:
    message = _base("Only HTML says it")
    message.set_content("   \n")
    message.add_alternative("<p>Hello from <i>HTML</i></p>", subtype="html")
    return _crlf(message)


def _only_a_file() -> bytes:
    message = _base("A file, no text")
    message.set_content(os.urandom(5000), maintype="application", subtype="pdf")
    return _crlf(message)


def _text_file_at_top() -> bytes:
    message = _base("Notes")
    message.set_content("just the notes\n")
    message["Content-Disposition"] = 'attachment; filename="notes.txt"'
    return _crlf(message)


SYNTHETIC = {
    "nested": _nested,
    "blank-plain-with-html": _blank_plain_with_html,
    "only-a-file": _only_a_file,
    "text-file-at-top": _text_file_at_top,
}
MAILS = [p.name for p in sorted(DATA.glob("*.eml"))] + sorted(SYNTHETIC)


def _mail(name: str) -> bytes:
    return SYNTHETIC[name]() if name in SYNTHETIC else (DATA / name).read_bytes()


@pytest.fixture
async def session(
    account: MailAccount, settings_for: SettingsFactory
) -> AsyncIterator[tuple[ImapSession, EmailSettings]]:
    settings = settings_for()
    opened = await ImapSession.open(settings, Redactor([]))
    try:
        yield opened, settings
    finally:
        await opened.close()


def _section_payloads(raw: bytes) -> dict[str, bytes]:
    """Every leaf part's decoded bytes by IMAP section, as the email package reads them."""
    found: dict[str, bytes] = {}

    def walk(part: MimeMessage, section: str) -> None:
        payload = part.get_payload()
        if part.get_content_maintype() == "multipart" and isinstance(payload, list):
            for i, child in enumerate(payload, 1):
                walk(child, f"{section}.{i}" if section else str(i))
            return
        decoded = part.get_payload(decode=True)
        if isinstance(decoded, bytes):
            found[section or "1"] = decoded

    walk(email.message_from_bytes(raw, policy=email.policy.default), "")
    return found


def _comparable(message: Message) -> dict[str, Any]:
    out = dataclasses.asdict(message)
    out.pop("received_at")
    return out


@pytest.mark.parametrize("name", MAILS)
async def test_a_mail_read_in_parts_gives_the_message_parsing_it_whole_gave(
    name: str,
    account: MailAccount,
    session: tuple[ImapSession, EmailSettings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap, settings = session
    await deliver(account, _mail(name))
    status = await imap.select("INBOX")
    (uid,) = await imap.uid_search("ALL")
    whole = await imap.fetch(uid)
    assert whole is not None

    with caplog.at_level(logging.WARNING, logger="botkit_email"):
        fetched = await read_mail(imap, uid, LIMIT)
    assert fetched is not None
    assert not fetched.whole, caplog.text
    assert "read whole" not in caplog.text

    where = ("INBOX", status.uidvalidity, uid)
    old = await Intake("email", settings, Ledger(MemoryState())).prepare(whole, *where)
    new = await Intake("email", settings, Ledger(MemoryState())).prepare(fetched, *where)
    before, after = _comparable(old), _comparable(new)
    if old.metadata["message_id"] is None:
        # No Message-ID: the id is a digest of what was read, which differs by design.
        assert new.external_id.startswith("sha256:")
        for data in (before, after):
            data.pop("external_id")
            data["conversation"].pop("thread_id")
            data["metadata"].pop("thread")
    # Sizes come from BODYSTRUCTURE, nothing of a file being read: exact for 7bit and
    # 8bit; base64 estimated (within 1%: line length and padding are not known);
    # quoted-printable the encoded size, an upper bound. The whole-mail parse measured a
    # forwarded mail with its MIME header; BODYSTRUCTURE gives what fetch_attachment returns.
    encodings = {a.name: _encoding(whole, a) for a in new.attachments}
    for was, now in zip(before["attachments"], after["attachments"], strict=True):
        encoding = encodings[now["name"]]
        if now["content_type"].startswith("message/"):
            pass
        elif encoding == "base64":
            assert abs(now["size"] - was["size"]) <= max(2, was["size"] // 100), now
        elif encoding == "quoted-printable":
            assert now["size"] >= was["size"], now
        else:
            assert now["size"] == was["size"], now
        was.pop("size")
        now.pop("size")
    # Each attachment is read on demand: exactly its bytes.
    reader = AttachmentReader(settings, Redactor([]), Ledger(MemoryState()))
    payloads = _section_payloads(whole)
    for attachment in new.attachments:
        content = await reader.read(attachment)
        if attachment.content_type.startswith("message/"):
            assert len(content) == attachment.size, attachment.name
        else:
            assert content == payloads[_section(attachment)], attachment.name


def _section(attachment: Attachment) -> str:
    return (attachment.url or "").rsplit("=", 1)[1]


def _encoding(raw: bytes, attachment: Attachment) -> str:
    """The Content-Transfer-Encoding of an attachment's part in the whole mail."""
    section = _section(attachment)
    part: Any = email.message_from_bytes(raw, policy=email.policy.default)
    for number in section.split(".") if part.is_multipart() else []:
        part = part.get_payload()[int(number) - 1]
    return str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()


async def test_the_html_part_is_read_only_when_the_plain_text_is_blank(
    account: MailAccount, session: tuple[ImapSession, EmailSettings]
) -> None:
    imap, _ = session
    await deliver(account, _nested())
    await deliver(account, _blank_plain_with_html())
    await imap.select("INBOX")
    with_text, blank = await imap.uid_search("ALL")
    nested = await read_mail(imap, with_text, LIMIT)
    assert nested is not None
    assert b"The new text." in nested.raw
    assert b"<b>text</b>" not in nested.raw  # the HTML alternative was not needed
    html = await read_mail(imap, blank, LIMIT)
    assert html is not None
    assert b"Hello from <i>HTML</i>" in html.raw


async def test_an_unreadable_bodystructure_falls_back_to_the_whole_mail_and_says_so(
    account: MailAccount,
    session: tuple[ImapSession, EmailSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap, _ = session
    raw = _nested()
    await deliver(account, raw)
    await imap.select("INBOX")
    (uid,) = await imap.uid_search("ALL")

    def broken(value: object) -> object:
        raise BodyStructureError("part 2: 6 fields, at least 7 expected")

    monkeypatch.setattr("botkit_email._partial.parse_bodystructure", broken)
    with caplog.at_level(logging.WARNING, logger="botkit_email"):
        fetched = await read_mail(imap, uid, LIMIT)
    assert fetched is not None
    assert fetched.whole
    assert len(fetched.raw) == fetched.size
    assert "cannot be read in parts (part 2: 6 fields, at least 7 expected)" in caplog.text


async def test_a_tree_the_headers_contradict_falls_back_to_the_whole_mail(
    account: MailAccount,
    session: tuple[ImapSession, EmailSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap, _ = session
    await deliver(account, _nested())
    await imap.select("INBOX")
    (uid,) = await imap.uid_search("ALL")

    def flattened(value: Value) -> BodyPart:
        # The server's tree with part 1 (multipart/alternative in the mail) as a leaf.
        tree = parse_bodystructure(value)
        leaf = BodyPart("1", "text/plain")
        return dataclasses.replace(tree, parts=(leaf, *tree.parts[1:]))

    monkeypatch.setattr("botkit_email._partial.parse_bodystructure", flattened)
    with caplog.at_level(logging.WARNING, logger="botkit_email"):
        fetched = await read_mail(imap, uid, LIMIT)
    assert fetched is not None
    assert fetched.whole
    assert "its headers describe another MIME tree than the server's" in caplog.text


async def test_a_part_the_server_refuses_falls_back_to_the_whole_mail(
    account: MailAccount,
    session: tuple[ImapSession, EmailSettings],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap, _ = session
    await deliver(account, _nested())
    await imap.select("INBOX")
    (uid,) = await imap.uid_search("ALL")
    real = imap.fetch_items

    async def refusing(uid: int, items: str) -> dict[str, Value] | None:
        if ".MIME]" in items:
            raise RequestRejectedError("imap", "fetching UID 1: NO [SERVERBUG] oops")
        return await real(uid, items)

    monkeypatch.setattr(imap, "fetch_items", refusing)
    with caplog.at_level(logging.WARNING, logger="botkit_email"):
        fetched = await read_mail(imap, uid, LIMIT)
    assert fetched is not None
    assert fetched.whole
    assert "[SERVERBUG] oops); reading it whole" in caplog.text


def _with_file(data: bytes, name: str = "scan.pdf") -> bytes:
    message = _base("Scan attached")
    message.set_content("Please look at the scan.")
    message.add_attachment(data, maintype="application", subtype="pdf", filename=name)
    return _crlf(message)


def _sessions(dovecot: Dovecot, user: str) -> list[dict[str, int]]:
    """What each of ``user``'s finished IMAP sessions received and sent, oldest login
    first, from Dovecot's log (``in``, ``out``, and ``body_bytes``: message text sent)."""
    stats = {
        int(pid): {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", line)}
        for pid, line in re.findall(
            rf"imap\({re.escape(user)}\)<(\d+)><[^>]*>: Info: Disconnected: (.*)", dovecot.log()
        )
    }
    return [stats[pid] for pid in dovecot.imap_pids(user) if pid in stats]


async def _finished_sessions(
    dovecot: Dovecot, user: str, count: int, *, sent_under: int
) -> list[dict[str, int]]:
    """``count`` finished sessions that sent Dovecot less than ``sent_under`` bytes; Dovecot
    logs a session's end a moment after the client logged out."""
    for _ in range(100):
        found = [s for s in _sessions(dovecot, user) if s["in"] < sent_under]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {count} finished sessions:\n{dovecot.log()[-2000:]}")


async def test_a_large_attachment_is_not_transferred_until_a_plugin_asks_for_it(
    account: MailAccount,
    dovecot: Dovecot,
    settings_for: SettingsFactory,
    run_bot: RunBot,
) -> None:
    file = os.urandom(5_000_000)  # under the default max_message_bytes, encoded too
    raw = _with_file(file)
    seen: list[Message] = []
    fetched: list[bytes] = []
    reader = Plugin("reader")

    @reader.on_message()
    async def read(message: Message, ctx: Context) -> Reply:
        seen.append(message)
        fetched.append(await ctx.fetch_attachment(message.attachments[0]))
        return Reply("Got it.")

    bot, adapter = await run_bot(settings_for(timeout=30.0), plugins=[reader])  # a busy CI
    await deliver(account, raw)
    await settle(bot, adapter)
    await bot.stop()  # log out, so Dovecot logs what each session sent

    (message,) = seen
    assert message.text == "Scan attached\n\nPlease look at the scan."  # subject first
    (attachment,) = message.attachments
    assert (attachment.name, attachment.content_type) == ("scan.pdf", "application/pdf")
    assert attachment.size is not None
    assert len(file) <= attachment.size <= len(file) + 2  # from BODYSTRUCTURE, base64
    assert attachment.data is None
    assert fetched == [file]
    # Leave out the session that delivered the mail (it sent it to Dovecot).
    intake, plugin = await _finished_sessions(dovecot, account.user, 2, sent_under=len(raw))
    assert intake["out"] < 10_000  # the watcher: structure, headers and the text, no file
    assert intake["body_bytes"] < 1_000
    assert len(raw) * 0.95 < plugin["out"] < len(raw) * 1.05  # the file, once, when asked


async def test_an_attachment_of_a_moved_mail_is_found_by_its_message_id(
    account: MailAccount, settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    file = os.urandom(3000)
    attachments: list[Attachment] = []
    keeper = Plugin("keeper")

    @keeper.on_message()
    async def keep(message: Message, ctx: Context) -> None:
        attachments.extend(message.attachments)

    settings = settings_for(after_accept="move", move_to="Handled")
    bot, adapter = await run_bot(settings, plugins=[keeper])
    await deliver(account, _with_file(file))
    await settle(bot, adapter)
    assert await asyncio.to_thread(account.messages) == []  # moved away from INBOX

    (attachment,) = attachments
    assert "/INBOX;" in (attachment.url or "")
    assert await adapter.fetch_attachment(attachment) == file

    with pytest.raises(RequestRejectedError) as too_large:
        await adapter.fetch_attachment(attachment, max_bytes=1000)
    assert too_large.value.code == "too_large"
    assert "over the limit (1,000)" in str(too_large.value)

    await asyncio.to_thread(account.recreate, "Handled")  # the mail is gone
    with pytest.raises(RequestRejectedError) as gone:
        await adapter.fetch_attachment(attachment)
    assert gone.value.code == "attachment_gone"


async def test_an_attachment_from_elsewhere_is_refused(
    settings_for: SettingsFactory, run_bot: RunBot
) -> None:
    _, adapter = await run_bot(settings_for(), plugins=[])
    for url in (None, "https://example.org/a.pdf", "imap://mail.example.org:993/INBOX;"
                "UIDVALIDITY=1/;UID=1/;SECTION=2"):  # fmt: skip
        with pytest.raises(RequestRejectedError) as refused:
            await adapter.fetch_attachment(Attachment("a.pdf", "application/pdf", url=url))
        assert refused.value.code == "unknown_attachment"
    data = Attachment("a.txt", "text/plain", data=b"already here")
    assert await adapter.fetch_attachment(data) == b"already here"


@pytest.mark.parametrize(
    ("data", "encoding", "expected"),
    [
        (b"aGVsbG8g\r\nd29ybGQ=\r\n", "base64", b"hello world"),
        (b"aGVsbG8gd29ybGQ", "BASE64", b"hello world"),  # padding missing
        (b"aGVs!bG8g*d29y\r\nbGQ=", "base64", b"hello world"),  # stray characters
        (b"caf=C3=A9 =\r\nau lait", "quoted-printable", "café au lait".encode()),
        (b"\x00\x01raw", "binary", b"\x00\x01raw"),
    ],
)
def test_parts_are_decoded_from_their_transfer_encoding_leniently(
    data: bytes, encoding: str, expected: bytes
) -> None:
    assert decode_transfer(data, encoding) == expected


async def test_channels_without_files_on_demand_say_so() -> None:
    console = ConsoleAdapter("console")
    with pytest.raises(NotImplementedError, match="cannot fetch attachments"):
        await console.fetch_attachment(Attachment("a.txt", "text/plain"))
    assert await console.fetch_attachment(Attachment("a", "text/plain", data=b"x")) == b"x"
