"""RFC 3834 loop safety, rate limits, threading and the mail botkit writes, without servers."""

from __future__ import annotations

import email
import email.policy
from typing import Any

import pytest

from botkit import Attachment, Reply, Secret
from botkit.testing import MemoryState
from botkit_email import EmailSettings
from botkit_email._compose import build_notification, build_reply, derive_message_id
from botkit_email._intake import SKIPPED, Intake, external_id_of
from botkit_email._ledger import Ledger, state_key
from botkit_email._loops import allowed, is_automated_address, reply_target, skip_reason
from botkit_email._markdown import looks_like_markdown, markdown_to_html
from botkit_email._parse import parse_mail
from botkit_email._threads import normalise_subject, reply_subject, strip_reply_prefixes
from tests.adapters.email.support import make_mail, new_id
from tests.fakes.audio_files import mp3_silence

OWN = frozenset({"bot@example.test", "help@example.test"})


def settings(**overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "address": "bot@example.test",
        "aliases": ("help@example.test",),
        "imap_host": "127.0.0.1",
        "smtp_host": "127.0.0.1",
        "password": Secret("pw-123456"),
    }
    values.update(overrides)
    return EmailSettings(**values)


# -- RFC 3834: every case that must never be answered automatically --------------------

SKIP_CASES = [
    ({"Auto-Submitted": "auto-replied"}, None, "auto_submitted"),
    ({"Auto-Submitted": "auto-generated; type=vacation"}, None, "auto_submitted"),
    ({"Auto-Submitted": "auto-notified"}, None, "auto_submitted"),
    ({"Precedence": "bulk"}, None, "precedence"),
    ({"Precedence": "list"}, None, "precedence"),
    ({"Precedence": "junk"}, None, "precedence"),
    ({"List-Id": "Users <users.lists.example.org>"}, None, "list_mail"),
    ({"List-Unsubscribe": "<mailto:leave@lists.example.org>"}, None, "list_mail"),
    ({"Return-Path": "<>"}, None, "bounce"),
    ({"X-Auto-Response-Suppress": "All"}, None, "auto_response_suppressed"),
    ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, None, "auto_response_suppressed"),
    ({"X-Autoreply": "yes"}, None, "auto_submitted"),
    ({}, "MAILER-DAEMON@mx.example.org", "automated_sender"),
    ({}, "postmaster@example.org", "automated_sender"),
    ({}, "no-reply@example.org", "automated_sender"),
    ({}, "noreply@example.org", "automated_sender"),
    ({}, "do-not-reply@example.org", "automated_sender"),
    ({}, "donotreply@example.org", "automated_sender"),
    ({}, "notifications-noreply@example.org", "automated_sender"),
    ({}, "bounces+123@example.org", "automated_sender"),
    ({}, "bot@example.test", "own_address"),
    ({}, "Help Desk <HELP@example.test>", "own_address"),
    ({"Reply-To": "bot@example.test"}, None, "own_address"),
    ({"Reply-To": "no-reply@example.org"}, "no-reply@example.org", "automated_sender"),
]


@pytest.mark.parametrize(("headers", "sender", "code"), SKIP_CASES)
def test_rfc3834_mail_is_never_answered(
    headers: dict[str, str], sender: str | None, code: str
) -> None:
    raw = make_mail(sender=sender or "Ann <ann@example.org>", headers=headers)
    reason = skip_reason(parse_mail(raw), OWN)
    assert reason is not None
    assert reason.startswith(code), reason


def test_multipart_report_is_a_bounce_even_without_headers() -> None:
    raw = (
        b"From: Mail System <system@mx.example.org>\r\nTo: bot@example.test\r\n"
        b"Subject: Delivery failed\r\nMessage-ID: <dsn@mx.example.org>\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--b--\r\n"
    )
    reason = skip_reason(parse_mail(raw), OWN)
    assert reason is not None
    assert reason.startswith("bounce")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Auto-Submitted": "no"},
        {"Precedence": "first-class"},
        {"X-Auto-Response-Suppress": "None"},
        {"Return-Path": "<ann@example.org>"},
    ],
)
def test_a_person_writing_is_answerable(headers: dict[str, str]) -> None:
    assert skip_reason(parse_mail(make_mail(headers=headers)), OWN) is None


def test_reply_goes_to_reply_to_unless_it_is_us_or_a_machine() -> None:
    mail = parse_mail(make_mail(headers={"Reply-To": "Team <team@example.org>"}))
    assert reply_target(mail, OWN) == "team@example.org"
    mail = parse_mail(make_mail(headers={"Reply-To": "bot@example.test"}))
    assert reply_target(mail, OWN) == "ann@example.org"


def test_automated_addresses_are_recognised() -> None:
    for addr in ("mailer-daemon@x.org", "owner-list@x.org", "list-request@x.org", "noreply@x"):
        assert is_automated_address(addr), addr
    for addr in ("ann@x.org", "norbert@x.org", "replies@x.org", "bouncer.ann@x.org"):
        assert not is_automated_address(addr), addr


def test_allowlists_by_address_and_domain() -> None:
    assert allowed("ann@example.org", (), ())
    assert allowed("Ann@Example.org", ("ann@example.org",), ())
    assert allowed("bob@sub.example.org", (), ("example.org",))
    assert allowed("bob@example.org", ("@example.org",), ())
    assert not allowed("eve@evil.example", ("ann@example.org",), ("example.org",))
    assert not allowed("eve@notexample.org", (), ("example.org",))


# -- intake decisions: once per mail, rate limited per sender and per thread -----------


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


async def _prepare(intake: Intake, raw: bytes, uid: int = 1) -> Any:
    return await intake.prepare(raw, "INBOX", 7, uid)


async def test_one_automatic_reply_per_sender_per_period() -> None:
    clock = Clock()
    intake = Intake("email", settings(), Ledger(MemoryState()), clock=clock)
    first = await _prepare(intake, make_mail(subject="One"))
    second = await _prepare(intake, make_mail(subject="Two"))
    clock.now += 3600
    third = await _prepare(intake, make_mail(subject="Three"))
    clock.now += 86400
    next_day = await _prepare(intake, make_mail(subject="Four"))
    assert SKIPPED not in first.metadata
    assert second.metadata[SKIPPED].startswith("rate_limited: sender ann@example.org")
    assert third.metadata[SKIPPED].startswith("rate_limited")
    assert SKIPPED not in next_day.metadata


async def test_one_automatic_reply_per_thread_per_period() -> None:
    intake = Intake("email", settings(), Ledger(MemoryState()), clock=Clock())
    root = new_id()
    first = await _prepare(intake, make_mail(message_id=root))
    other = await _prepare(
        intake,
        make_mail(
            sender="Bob <bob@example.org>",
            subject="Re: Opening hours",
            headers={"In-Reply-To": root, "References": root},
        ),
    )
    assert SKIPPED not in first.metadata
    assert other.conversation == first.conversation
    assert other.metadata[SKIPPED].startswith("rate_limited: thread")


async def test_the_same_mail_seen_again_gets_the_same_decision() -> None:
    intake = Intake("email", settings(), Ledger(MemoryState()), clock=Clock())
    raw = make_mail()
    first = await _prepare(intake, raw, uid=1)
    again = await _prepare(intake, raw, uid=99)  # a new UID after UIDVALIDITY changed
    assert first.external_id == again.external_id
    assert SKIPPED not in again.metadata


async def test_draft_and_notify_modes_are_not_rate_limited() -> None:
    for mode in ("draft", "notify"):
        extra = {"notify_to": "boss@example.org"} if mode == "notify" else {}
        intake = Intake(
            "email", settings(mode=mode, **extra), Ledger(MemoryState()), clock=Clock()
        )
        for subject in ("One", "Two", "Three"):
            message = await _prepare(intake, make_mail(subject=subject))
            assert SKIPPED not in message.metadata


async def test_sender_off_the_allowlist_is_stored_but_skipped() -> None:
    intake = Intake(
        "email",
        settings(allowed_domains=("example.com",)),
        Ledger(MemoryState()),
        clock=Clock(),
    )
    message = await _prepare(intake, make_mail())
    assert message.metadata[SKIPPED].startswith("sender_not_allowed")
    assert message.text == "Opening hours\n\nHello, when are you open on Saturday?"


async def test_message_carries_thread_sender_attachments_and_full_body() -> None:
    intake = Intake("email", settings(), Ledger(MemoryState()), clock=Clock())
    body = "Yes please.\n\nOn Mon, Bot <bot@example.test> wrote:\n> Shall I book it?"
    message = await _prepare(intake, make_mail(body=body))
    assert message.text == "Opening hours\n\nYes please."  # a new thread: subject first
    assert message.raw is not None
    assert "> Shall I book it?" in message.raw["body"]
    assert message.sender.id == "ann@example.org"
    assert message.sender.name == "Ann Example"
    assert message.conversation.chat_id == "bot@example.test"
    assert message.conversation.thread_id == message.external_id
    assert message.metadata["subject"] == "Opening hours"


async def test_the_subject_leads_only_the_first_mail_of_a_thread() -> None:
    intake = Intake("email", settings(autoreply_period=0), Ledger(MemoryState()), clock=Clock())
    root = new_id()
    reply = await _prepare(
        intake,
        make_mail(subject="Re: Opening hours", body="Thanks!", headers={"In-Reply-To": root}),
    )
    assert reply.text == "Thanks!"
    repeated = await _prepare(intake, make_mail(subject="Help", body="Help me with this"))
    assert repeated.text == "Help me with this"
    plain = Intake("email", settings(include_subject=False), Ledger(MemoryState()), clock=Clock())
    assert (await _prepare(plain, make_mail(body="Body only"))).text == "Body only"


def test_external_id_is_the_message_id_or_a_digest() -> None:
    raw = make_mail(message_id="<abc@example.org>")
    assert external_id_of(parse_mail(raw), raw) == "<abc@example.org>"
    bare = b"From: a@example.org\r\nSubject: x\r\n\r\nbody\r\n"
    assert external_id_of(parse_mail(bare), bare).startswith("sha256:")
    long_id = "<" + "x" * 300 + "@example.org>"
    raw = make_mail(message_id=long_id)
    assert external_id_of(parse_mail(raw), raw).startswith("sha256:")


def test_long_state_keys_are_hashed() -> None:
    assert state_key("mail", "<a@b>") == "mail:<a@b>"
    assert len(state_key("mail", "x" * 1000)) < 255


# -- threads ----------------------------------------------------------------------------


async def test_thread_is_joined_by_references_even_out_of_order() -> None:
    ledger = Ledger(MemoryState())
    intake = Intake("email", settings(autoreply_period=0), ledger, clock=Clock())
    root, middle = new_id(), new_id()
    # The newest reply arrives first: it names the root in References.
    late = await _prepare(
        intake,
        make_mail(
            subject="Re: Re: Plan",
            headers={"In-Reply-To": middle, "References": f"{root} {middle}"},
        ),
    )
    first = await _prepare(intake, make_mail(subject="Plan", message_id=root))
    assert late.conversation.thread_id == root == first.conversation.thread_id


async def test_mail_without_references_falls_back_to_subject_and_participants() -> None:
    intake = Intake("email", settings(autoreply_period=0), Ledger(MemoryState()), clock=Clock())
    first = await _prepare(intake, make_mail(subject="Invoice 42"))
    again = await _prepare(intake, make_mail(subject="RE: AW: Invoice 42"))
    other_person = await _prepare(
        intake, make_mail(sender="bob@example.org", subject="Re: Invoice 42")
    )
    untitled = await _prepare(intake, make_mail(subject=""))
    untitled_too = await _prepare(intake, make_mail(subject=""))
    assert again.conversation == first.conversation
    assert other_person.conversation != first.conversation
    assert untitled.conversation != untitled_too.conversation


def test_subjects_get_exactly_one_re() -> None:
    assert reply_subject("Hello") == "Re: Hello"
    assert reply_subject("RE: Re[2]: AW: Hello") == "Re: Hello"
    assert reply_subject("Fwd: Hello") == "Re: Fwd: Hello"
    assert reply_subject("回复\uff1a你好") == "Re: 你好"
    assert reply_subject("") == "Re: your message"
    assert strip_reply_prefixes("Re:Re: x") == "x"
    assert normalise_subject("[users] Re: Fwd: Hello  World") == "hello world"


# -- what botkit writes -------------------------------------------------------------------


RECORD = {
    "message_id": "<orig@example.org>",
    "subject": "Re: Opening hours",
    "from": "ann@example.org",
    "from_name": "Ann",
    "recipient": "ann@example.org",
    "references": ["<root@example.org>"],
    "date": "2024-03-04T10:00:00+00:00",
    "text": "When are you open?",
}


def test_reply_headers_thread_and_mark_it_automatic() -> None:
    message_id = derive_message_id("botkit-7", "salt", "example.test")
    message = build_reply(
        settings(), RECORD, Reply("We open at **9**."), message_id, to="ann@example.org"
    )
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Re: Opening hours"
    assert parsed["In-Reply-To"] == "<orig@example.org>"
    assert parsed["References"] == "<root@example.org> <orig@example.org>"
    assert parsed["Message-ID"] == message_id
    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["To"] == "ann@example.org"
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",))
    html = parsed.get_body(("html",))
    assert plain is not None
    assert html is not None
    assert "We open at **9**." in plain.get_content()
    assert "> When are you open?" in plain.get_content()
    assert "<strong>9</strong>" in html.get_content()


def test_plain_reply_has_no_html_part() -> None:
    message = build_reply(
        settings(), RECORD, Reply("Nine o'clock.", markup="plain"), "<x@y>", to="a@b.c"
    )
    assert message.get_content_type() == "text/plain"
    message = build_reply(settings(), RECORD, Reply("Nine o'clock."), "<x@y>", to="a@b.c")
    assert message.get_content_type() == "text/plain"  # Markdown in name only


def test_message_id_is_stable_per_delivery_and_on_our_domain() -> None:
    first = derive_message_id("botkit-7", "salt", "example.test")
    assert first == derive_message_id("botkit-7", "salt", "example.test")
    assert first != derive_message_id("botkit-8", "salt", "example.test")
    assert first != derive_message_id("botkit-7", "other-install", "example.test")
    assert first.startswith("<botkit.botkit-7.")
    assert first.endswith("@example.test>")


def test_notification_names_the_sender_and_carries_the_answer() -> None:
    message = build_notification(
        settings(mode="notify", notify_to="boss@example.org"),
        RECORD,
        Reply("Draft answer"),
        "<n@example.test>",
        to="boss@example.org",
    )
    assert message["To"] == "boss@example.org"
    assert message["Auto-Submitted"] == "auto-generated"
    assert "Ann" in str(message["Subject"])
    body = message.get_body(("plain",))
    assert body is not None
    assert "Draft answer" in body.get_content()


def test_markdown_is_escaped_and_rendered() -> None:
    html = markdown_to_html(
        "Hi <script>alert(1)</script> [x](https://a.example/?q=1&r=2)\n\n- a\n- b"
    )
    assert "<script>" not in html
    assert '<a href="https://a.example/?q=1&amp;r=2">x</a>' in html
    assert "<ul><li>a</li><li>b</li></ul>" in html
    assert looks_like_markdown("**bold**")
    assert not looks_like_markdown("3 * 4 = 12")
    assert "href" not in markdown_to_html("[x](javascript:alert(1))")


def test_markdown_blocks_render() -> None:
    html = markdown_to_html(
        "# Title\n\n```\n<code> & more\n```\n\n> quoted **bold**\n> line\n\n"
        "1. one\n2. two\n\n---\npara `x<y>` and *it* and _em_ and __strong__\nnext line"
    )
    assert "<h1>Title</h1>" in html
    assert "<pre><code>&lt;code&gt; &amp; more</code></pre>" in html
    assert "<blockquote><p>quoted <strong>bold</strong><br>\nline</p></blockquote>" in html
    assert "<ol><li>one</li><li>two</li></ol>" in html
    assert "<hr>" in html
    assert "<code>x&lt;y&gt;</code>" in html
    assert "<em>it</em>" in html
    assert "<em>em</em>" in html
    assert "<strong>strong</strong>" in html
    assert "snake_case" in markdown_to_html("snake_case_name")


def test_only_uids_above_the_last_one_are_new() -> None:
    from botkit_email._watch import new_uids

    assert new_uids([7], 7) == []  # `UID SEARCH UID 8:*` answers the last old mail
    assert new_uids([9, 8, 8], 7) == [8, 9]


async def test_overlong_ids_and_names_fit_the_store() -> None:
    intake = Intake("email", settings(), Ledger(MemoryState()), clock=Clock())
    long_ref = "<" + "r" * 400 + "@example.org>"
    message = await _prepare(
        intake,
        make_mail(
            sender=f"{'N' * 300} <{'a' * 300}@example.org>",
            headers={"In-Reply-To": long_ref, "References": long_ref},
        ),
    )
    assert message.conversation.thread_id is not None
    assert len(message.conversation.thread_id) <= 255
    assert len(message.sender.id) <= 255
    assert message.sender.name is not None
    assert len(message.sender.name) <= 255


def test_a_spoken_reply_carries_its_audio_as_an_attachment_of_the_same_mail() -> None:
    audio = mp3_silence(1.0)
    reply = Reply(
        "We open at **9**.",
        attachments=(Attachment("reply.mp3", "audio/mpeg", len(audio), data=audio),),
    )
    message = build_reply(settings(), RECORD, reply, "<x@y>", to="ann@example.org")
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/mixed"
    plain = parsed.get_body(("plain",))
    assert plain is not None
    assert "We open at **9**." in plain.get_content()
    [part] = list(parsed.iter_attachments())
    assert (part.get_content_type(), part.get_filename()) == ("audio/mpeg", "reply.mp3")
    assert part.get_content() == audio
