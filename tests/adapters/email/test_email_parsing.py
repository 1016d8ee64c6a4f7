"""Parsing real, awkward mail: charsets, HTML-only, attachments, quotes, never an exception."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from botkit_email._charsets import decode_bytes, normalise_charset
from botkit_email._html import html_to_text
from botkit_email._loops import skip_reason
from botkit_email._parse import decode_header_value, message_ids, parse_mail
from botkit_email._quotes import strip_quotes
from tests.adapters.email.support import DATA

OWN = {"bot@example.test"}

# file → what a sensible parse must show.
CORPUS: dict[str, dict[str, Any]] = {
    "01-multipart-alternative-gmail-reply.eml": {
        "subject": "Sending messages include last little bit",
        "text_has": ["When sending email:", "From GMail you also get"],
        "skip": None,
        "html": False,
    },
    "03-html-only-odd-boundary-param.eml": {
        "text_has": ["Im Jahre 2007", "35 Millionen Euro"],
        "text_lacks": ["<p", "<br", "&uuml;"],
        "html": True,
        "skip": "automated_sender",  # noreply@...
    },
    "05-shift_jis-8bit-body.eml": {"text_has": ["あいうえお", "テスト用"], "skip": None},
    "09-bounce-postfix-mailer-daemon.eml": {
        "text_has": ["could not", "be delivered"],
        "skip": "auto_submitted",
        "attachments": [("message/delivery-status", None), ("message/rfc822", None)],
    },
    "14-auto-reply-auto-submitted.eml": {
        "text_has": ["currently away"],
        "skip": "auto_submitted",
    },
    "17-attachment-pdf-utf8-emoji-subject.eml": {
        "subject": "Another PDF with 🎉 Unicode chars in it 🍿",
        "text_has": ["attaching another PDF"],
        "attachments": [("application/pdf", "broken.pdf")],
        "skip": None,
    },
    "20-reply-in-reply-to-references.eml": {
        "subject": "Re: Test reply email",
        "text": "Message body",
        "in_reply_to": "<348F04F142D69C21-291E56D292BC@xxxx.net>",
        "references": ("<473FF3B8.9020707@xxx.org>", "<348F04F142D69C21-291E56D292BC@xxxx.net>"),
        "skip": None,
    },
    "30-list-id-empty-in-reply-to.eml": {"skip": "list_mail", "in_reply_to": None},
    "31-no-reply-8bit-reply-to.eml": {"skip": "automated_sender", "text": "Body Text"},
    "32-bad-encoded-subject-charset.eml": {"subject": "TEST", "skip": "no_sender"},
    "33-iso-2022-jp.eml": {"subject": "まみむめも", "text": "すみません。", "skip": None},
    "34-dsn-report-530.eml": {"text_has": ["permanent fatal errors"], "skip": "auto_submitted"},
    "40-koi8-r-base64.eml": {"subject": "Алфавит", "text": "Вопрос", "skip": None},
    "50-bogus-charsets.eml": {
        "subject": "Café über alles",
        "from_name": "Jörg Müller",
        "text": "Grüße aus Köln \u2013 die Bestellung fehlt noch.",
        "attachments": [("text/plain", "notiz.txt"), ("text/plain", "leer.txt")],
        "skip": None,
    },
    "51-iso-8859-1-outlook-reply.eml": {
        "subject": "AW: Rückfrage zur Rechnung",
        "from_name": "André König",
        "text": (
            "Hallo,\n\ndie Rechnung enthält einen Fehler: der Betrag müsste 120 EUR sein, "
            "nicht 210 EUR.\n\nGrüße\nAndré"
        ),
        "body_has": ["Buchhaltung", "welche Rechnung meinen Sie?"],
        "skip": None,
    },
    "52-html-only-gmail-quote.eml": {
        "subject": "Re: Lieferung \u2013 wann?",
        "text": (
            "Thanks & regards! Could you send the tracking number?\n- Order #4711\n- Order #4712"
        ),
        "body_has": ["> Your parcel is on its way."],
        "html": True,
        "skip": None,
    },
    "53-list-mail-precedence.eml": {"subject": "Wöchentliche News", "skip": "precedence"},
    "54-koi8-r-8bit-quoted.eml": {
        "subject": "Вопрос",
        "from_name": "Николай",
        "text": "Здравствуйте! Когда придёт заказ?",
        "body_has": ["> Ваш заказ отправлен."],
        "skip": None,
    },
}


def _files() -> list[Path]:
    return sorted(DATA.glob("*.eml"))


def test_every_corpus_file_has_expectations() -> None:
    assert {p.name for p in _files()} == set(CORPUS)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_message_parses_to_sensible_text(name: str) -> None:
    expected = CORPUS[name]
    mail = parse_mail((DATA / name).read_bytes())
    for key in ("subject", "text", "in_reply_to", "references", "html", "from_name"):
        if key in expected:
            assert getattr(mail, key) == expected[key], key
    for fragment in expected.get("text_has", []):
        assert fragment in mail.text
    for fragment in expected.get("text_lacks", []):
        assert fragment not in mail.text
    for fragment in expected.get("body_has", []):
        assert fragment in mail.body
        assert fragment not in mail.text
    if "attachments" in expected:
        found = [(a.content_type, a.name) for a in mail.attachments]
        for kind, filename in expected["attachments"]:
            assert any(k == kind and (filename is None or n == filename) for k, n in found), found
    reason = skip_reason(mail, OWN)
    if expected["skip"] is None:
        assert reason is None
    else:
        assert reason is not None
        assert reason.startswith(expected["skip"]), reason
    for value in (mail.subject, mail.text, mail.body, *(v for _, v in mail.headers)):
        value.encode("utf-8")  # no lone surrogates: storable anywhere


def test_attachment_sizes_and_imap_sections_are_recorded() -> None:
    mail = parse_mail((DATA / "17-attachment-pdf-utf8-emoji-subject.eml").read_bytes())
    (pdf,) = mail.attachments
    assert pdf.size > 500
    assert pdf.section == "2"


def test_mangled_mail_never_raises() -> None:
    rng = random.Random(1234)
    for path in _files():
        data = path.read_bytes()
        for _ in range(25):
            cut = data[: rng.randrange(len(data) + 1)]
            noisy = bytearray(cut)
            for _ in range(rng.randrange(8)):
                if noisy:
                    noisy[rng.randrange(len(noisy))] = rng.randrange(256)
            mail = parse_mail(bytes(noisy))
            mail.text.encode("utf-8")
    for garbage in (b"", b"\x00\xff\xfe", b"Content-Type: multipart/mixed\r\n\r\n--", b"\r\n" * 5):
        parse_mail(garbage)


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("Grüße".encode(), "uft-8", "Grüße"),
        ("Café".encode("cp850"), "cp-850", "Café"),
        ("Привет".encode("koi8-r"), "koi8-r", "Привет"),
        ("日本語".encode("shift_jis"), "shift_jis", "日本語"),
        ("“quoted”".encode("cp1252"), "iso-8859-1", "“quoted”"),
        ("naïve".encode(), "", "naïve"),
        ("naïve".encode("latin-1"), None, "naïve"),
        (b"caf\xe9 \x81", "x-unknown", "café \ufffd"),
        ("Grüße".encode(), "base64", "Grüße"),  # a codec, but not a text encoding
    ],
)
def test_bogus_or_missing_charsets_decode_with_fallback(
    data: bytes, charset: str | None, expected: str
) -> None:
    assert decode_bytes(data, charset) == expected


def test_charset_labels_normalise() -> None:
    assert normalise_charset("UTF8") == "utf_8"
    assert normalise_charset('"cp-850"') == "cp850"
    assert normalise_charset("rot13") is None
    assert normalise_charset("") is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=?UTF-8?B?w6TDtsO8?= =?UTF-8?B?w6TDtsO8?= end", "äöüäöü end"),
        ("=?iso-8859-1?Q?M=FCller?=, Hans", "Müller, Hans"),
        ("=?uft-8?Q?J=C3=B6rg?=", "Jörg"),
        ("Re: =?koi8-r?Q?=F7=CF=D0=D2=CF=D3?=", "Re: Вопрос"),
        ("=?NONE?B?VEVTVA=?=", "TEST"),
        ("plain\r\n folded", "plain folded"),
        ("raw \udce2\udc9c\udc93 utf-8", "raw ✓ utf-8"),
    ],
)
def test_encoded_word_headers_decode(raw: str, expected: str) -> None:
    assert decode_header_value(raw) == expected


def test_message_ids_are_extracted_and_bare_ones_bracketed() -> None:
    assert message_ids("<a@b> <c@d>\r\n <e@f>") == ["<a@b>", "<c@d>", "<e@f>"]
    assert message_ids("bare@id.example") == ["<bare@id.example>"]
    assert message_ids("") == []


QUOTE_CASES = [
    (
        "Thanks, that works!\n\nOn Mon, 1 Jan 2024 at 10:00, Ann Example <ann@example.com>\n"
        "wrote:\n> old text\n> more\n",
        "Thanks, that works!",
    ),
    ("Sure.\n\n-- \nBob\nCEO, Example Ltd", "Sure."),
    (
        "Here is what I wrote:\n- item one\n- item two",
        "Here is what I wrote:\n- item one\n- item two",
    ),
    ("On Mon, Ann wrote:\n> question?\n\nanswer here\n\n-- \nsig", "answer here"),
    ("> q1\na1\n> q2\na2", "a1\na2"),
    ("Reply\n\n-----Original Message-----\nFrom: x\nSent: y\n\nold", "Reply"),
    ("Reply\n\nFrom: Ann <a@b>\nSent: Monday\nTo: bot\nSubject: hi\n\nold", "Reply"),
    ("Antwort\n\nAm 01.01.2024 um 10:00 schrieb Ann <a@b.de>:\n> alt", "Antwort"),
    ("Réponse\n\nLe lun. 1 janv. 2024 à 10:00, Ann <a@b.fr> a écrit :\n> vieux", "Réponse"),
    ("Respuesta\n\nEl lun, 1 ene 2024 a las 10:00, Ann (<a@b.es>) escribió:\n> x", "Respuesta"),
    ("返信\n\n2024年1月1日(月) 10:00 山田 <a@b.jp>:\n> 古い", "返信"),
    ("回复\n\n在 2024年1月1日，张三 <a@b.cn> 写道：\n> 旧", "回复"),  # noqa: RUF001
    ("Ответ\n\n1 января 2024 г., в 10:00, Анна <a@b.ru> написал(а):\n> старое", "Ответ"),  # noqa: RUF001
    ("Reply\r\n\r\n________________________________\r\nFrom: x\r\nold", "Reply"),
]


@pytest.mark.parametrize(("text", "expected"), QUOTE_CASES)
def test_quoted_replies_and_signatures_are_stripped(text: str, expected: str) -> None:
    assert strip_quotes(text) == expected


def test_html_becomes_readable_text() -> None:
    html = (
        "<html><head><style>p{}</style><title>t</title><script>x()</script></head><body>"
        "<h1>Hello</h1><p>see <a href='https://x.org/a'>our site</a> &amp; more</p>"
        "<ul><li>one</li><li>two<ol><li>a</li></ol></li></ul>"
        "<table><tr><td>cell 1</td><td>cell 2</td></tr></table>"
        "<blockquote>quoted<br>text</blockquote><pre>code\n  indented</pre></body></html>"
    )
    assert html_to_text(html) == (
        "Hello\n\nsee our site (https://x.org/a) & more\n\n- one\n- two\n  1. a\n"
        "cell 1  cell 2\n> quoted\n> text\ncode\n  indented"
    )


def test_unclosed_and_broken_html_still_gives_text() -> None:
    assert html_to_text("<div><p>one<p>two<b>bold</i></div></span>&#xZZ; <").startswith("one")
    assert html_to_text("") == ""
