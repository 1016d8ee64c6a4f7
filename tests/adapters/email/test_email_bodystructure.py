"""The IMAP response reader and the BODYSTRUCTURE parser: real Dovecot answers, every
syntax the grammar allows (nested lists, quoted strings, literals, NIL, extension data),
and malformed input refused with an error that says where."""

from __future__ import annotations

import pytest

from botkit_email._imapwire import ImapSyntaxError, fetch_responses, parse_values
from botkit_email._partial import assemble, decoded_size
from botkit_email._structure import BodyPart, BodyStructureError, parse_bodystructure

# Answers Dovecot 2.3 gave for mails of the corpus (data/09, data/17, data/01).
BOUNCE = (
    b'(("text" "plain" ("charset" "us-ascii") NIL "Notification" "7bit" 598 15 NIL NIL NIL '
    b'NIL)("message" "delivery-status" NIL NIL "Delivery report" "7bit" 434 NIL NIL NIL NIL)'
    b'("message" "rfc822" NIL NIL "Undelivered Message" "7bit" 0 (NIL NIL NIL NIL NIL NIL NIL '
    b'NIL NIL NIL) ("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 0 0 NIL NIL NIL NIL) '
    b'0 NIL NIL NIL NIL) "report" ("report-type" "delivery-status" "boundary" '
    b'"FFFFFFFFFFFF.0000000000000/p351355.pool.example.ne.jp") NIL NIL NIL)'
)
PDF = (
    b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 129 2 NIL '
    b'("inline" NIL) NIL NIL)("application" "pdf" ("name" "broken.pdf") NIL NIL "base64" 1402 '
    b'NIL ("attachment" ("filename" "broken.pdf")) NIL NIL) "mixed" ("boundary" '
    b'"----=_Part_2192_32400445.1115745999735") NIL NIL NIL)'
)
ALTERNATIVE = (
    b'(("text" "plain" ("charset" "ISO-8859-1") NIL NIL "7bit" 265 6 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "ISO-8859-1") NIL NIL "quoted-printable" 397 8 NIL NIL NIL '
    b'NIL) "alternative" ("boundary" "00c09fa216eb1bfc0a0479bba823") NIL NIL NIL)'
)


def _structure(data: bytes) -> BodyPart:
    (value,) = parse_values(data)
    return parse_bodystructure(value)


# -- the response reader -----------------------------------------------------------------


def test_values_atoms_strings_nil_and_nested_lists() -> None:
    assert parse_values(b'UID 7 (a "b c" NIL ("NIL" ())) x') == [
        "UID",
        "7",
        ["a", b"b c", None, [b"NIL", []]],  # "NIL" quoted is a string, not nil
        "x",
    ]


def test_quoted_strings_unescape_backslashes_and_keep_8bit() -> None:
    assert parse_values(b'"a \\"q\\" \\\\ b" "caf\xc3\xa9"') == [b'a "q" \\ b', b"caf\xc3\xa9"]


def test_literals_are_read_by_their_length_whatever_they_hold() -> None:
    data = b'(BODY[HEADER] {12}\r\n(x) "y\r\nz)\r\n BINARY[2] ~{3}\r\n\x00\x01\x02 NAME {0}\r\n)'
    assert parse_values(data) == [
        ["BODY[HEADER]", b'(x) "y\r\nz)\r\n', "BINARY[2]", b"\x00\x01\x02", "NAME", b""]
    ]


def test_section_atoms_keep_their_brackets_spaces_and_origin() -> None:
    assert parse_values(b"BODY[HEADER.FIELDS (TO CC)]<0> 5 \\Seen") == [
        "BODY[HEADER.FIELDS (TO CC)]<0>",
        "5",
        "\\Seen",
    ]


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"(a b", "unclosed list"),
        (b'"abc', "unterminated quoted string"),
        (b'"a\r\nb"', "line break in a quoted string"),
        (b"{10}\r\nabc", "cut short"),
        (b"{x}\r\nabc", "malformed literal"),
        (b"{3}abc", "malformed literal"),
        (b")", "unexpected character"),
        (b"BODY[1", r"unclosed \["),
        (b"caf\xc3\xa9", "8-bit byte in an atom"),
        (b"(" * 300 + b")" * 300, "nested too deeply"),
    ],
)
def test_malformed_response_data_is_refused_saying_where(data: bytes, complaint: str) -> None:
    with pytest.raises(ImapSyntaxError, match=complaint) as caught:
        parse_values(data)
    assert "at byte" in str(caught.value)


def test_fetch_responses_rejoin_aioimaplibs_pieces_around_literals() -> None:
    # aioimaplib's Response.lines: text up to each literal, the literal as a bytearray,
    # the text after it, ..., and last the tagged completion text.
    lines: list[bytes | bytearray] = [
        b"4 FETCH (UID 9 BODY[1.MIME] {8}",
        bytearray(b"A: b\r\n\r\n"),
        b" BODY[HEADER] {5}",
        bytearray(b"X: y\n"),
        b")",
        b"5 FETCH (FLAGS (\\Seen))",  # another mail's update, no UID
        b"FETCH completed (0.001 + 0.000 secs).",
    ]
    first, second = fetch_responses(lines)
    assert (first.number, first.uid) == (4, 9)
    assert first.items == {"UID": "9", "BODY[1.MIME]": b"A: b\r\n\r\n", "BODY[HEADER]": b"X: y\n"}
    assert (second.number, second.uid, second.items) == (5, None, {"FLAGS": ["\\Seen"]})


def test_fetch_responses_refuse_an_item_without_a_value() -> None:
    with pytest.raises(ImapSyntaxError, match="without a value"):
        fetch_responses([b"1 FETCH (UID 1 RFC822.SIZE)", b"done"])


# -- BODYSTRUCTURE -----------------------------------------------------------------------


def test_a_bounce_with_a_message_part_is_read_as_a_tree_of_sections() -> None:
    tree = _structure(BOUNCE)
    assert (tree.section, tree.content_type, tree.params["report-type"]) == (
        "",
        "multipart/report",
        "delivery-status",
    )
    assert [(p.section, p.content_type, p.size) for p in tree.parts] == [
        ("1", "text/plain", 598),
        ("2", "message/delivery-status", 434),
        ("3", "message/rfc822", 0),
    ]
    assert tree.parts[2].parts == ()  # the enclosed mail is an attachment: not descended


def test_dispositions_parameters_and_encodings_are_kept() -> None:
    tree = _structure(PDF)
    text, pdf = tree.parts
    assert (text.encoding, text.disposition, text.params) == (
        "quoted-printable",
        "inline",
        {"charset": "ISO-8859-1"},
    )
    assert (pdf.section, pdf.encoding, pdf.size, pdf.disposition) == (
        "2",
        "base64",
        1402,
        "attachment",
    )
    assert tree.find("2") is pdf
    assert tree.find("3") is None


def test_nested_multiparts_are_numbered_as_rfc_3501_says() -> None:
    data = (
        b'((("TEXT" "PLAIN" NIL NIL NIL NIL 5 1)("TEXT" "HTML" NIL NIL NIL "BASE64" 8 1) '
        b'"ALTERNATIVE")("IMAGE" "PNG" ("NAME" {5}\r\na b.c) "<id>" NIL "BASE64" 100 NIL '
        b'("INLINE" ("FILENAME" "a b.c")) "en" "http://x") "RELATED" ("BOUNDARY" "x") '
        b'("inline" NIL) ("de" "en") "loc" (1 "ext" (2 3)))'
    )
    tree = _structure(data)
    assert [(p.section, p.content_type) for p in tree.walk()] == [
        ("", "multipart/related"),
        ("1", "multipart/alternative"),
        ("1.1", "text/plain"),
        ("1.2", "text/html"),
        ("2", "image/png"),
    ]
    image = tree.parts[1]
    assert (image.params, image.disposition) == ({"name": "a b.c"}, "inline")
    assert tree.parts[0].parts[0].encoding == "7bit"  # NIL encoding: the default
    assert tree.disposition == "inline"


def test_a_single_part_mail_is_section_1_with_or_without_extension_data() -> None:
    for data in (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 155 4)',
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 155 4 NIL NIL NIL NIL)',
        b'("application" "pdf" NIL NIL NIL "base64" 780)',
    ):
        tree = _structure(data)
        assert (tree.section, tree.parts) == ("1", ())


def test_a_multipart_without_extension_data_parses() -> None:
    tree = _structure(b'(("text" "plain" NIL NIL NIL "7bit" 1 1) "mixed")')
    assert (tree.content_type, tree.params, [p.section for p in tree.parts]) == (
        "multipart/mixed",
        {},
        ["1"],
    )


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b'"text"', "is not a list"),
        (b"()", "empty body"),
        (b'("text" "plain" NIL NIL NIL "7bit")', "6 fields, at least 7"),
        (b'("text" "plain" NIL NIL NIL "7bit" "many" 1)', "size: a number was expected"),
        (b'("text" "plain" NIL NIL NIL "7bit" 5)', "needs a line count"),
        (b'("text" "plain" ("charset") NIL NIL "7bit" 5 1)', "name/value pairs"),
        (b'(NIL "plain" NIL NIL NIL "7bit" 5 1)', "type: a string was expected"),
        (b'("message" "rfc822" NIL NIL NIL "7bit" 5 NIL NIL 1)', "an envelope and a body"),
        (b'(("text" "plain" NIL NIL NIL "7bit" 5 1))', "no subtype after its parts"),
        (b'("image" "png" NIL NIL NIL "base64" 5 NIL "attachment")', "malformed disposition"),
        (
            b'(("text" "plain" NIL NIL NIL "7bit" 5 1)(("x" "y" NIL NIL NIL "7bit" -1)) "mixed")',
            "part 2.1 size",
        ),
    ],
)
def test_malformed_bodystructure_is_refused_saying_which_part(data: bytes, complaint: str) -> None:
    with pytest.raises(BodyStructureError, match=complaint):
        _structure(data)


# -- putting a mail back together ----------------------------------------------------------


def test_the_frame_holds_headers_and_chosen_bodies_and_leaves_other_parts_empty() -> None:
    tree = _structure(PDF)
    header = b'Subject: x\r\nContent-Type: multipart/mixed; boundary="b1"\r\n\r\n'
    mime = {
        "1": b"Content-Type: text/plain\r\n\r\n",
        "2": b"Content-Type: application/pdf\r\n",  # a header without its empty line
    }
    frame = assemble(tree, header, mime, {"1": b"Hello"})
    assert frame == (
        header + b"\r\n--b1\r\nContent-Type: text/plain\r\n\r\nHello"
        b"\r\n--b1\r\nContent-Type: application/pdf\r\n\r\n"
        b"\r\n--b1--\r\n"
    )


@pytest.mark.parametrize(
    ("encoding", "size", "decoded"),
    [("7bit", 120, 120), ("quoted-printable", 50, 50), ("base64", 78 * 10, 57 * 10)],
)
def test_sizes_without_binary_are_estimated_from_the_encoded_size(
    encoding: str, size: int, decoded: int
) -> None:
    part = BodyPart("2", "application/pdf", encoding=encoding, size=size)
    assert decoded_size(part) == decoded
