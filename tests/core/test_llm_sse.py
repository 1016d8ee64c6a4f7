"""The SSE parser: events come out whole whatever the byte boundaries."""

from __future__ import annotations

import json

import pytest

from botkit.llm._sse import SSEEvent, SSEParser

PAYLOAD = (
    ": keep-alive\r\n"
    'data: {"text": "héllo 🎉"}\r\n'
    "\r\n"
    "event: update\n"
    "id: 7\n"
    "data: first line\n"
    "data:second line\n"
    "\n"
    "data: carriage\r"
    "\r"
    'data: {"text": "ünïcödé ✓"}\n\n'
    "data: [DONE]\n\n"
)

EXPECTED = [
    SSEEvent('{"text": "héllo 🎉"}'),
    SSEEvent("first line\nsecond line", "update", "7"),
    SSEEvent("carriage", "message", "7"),
    SSEEvent('{"text": "ünïcödé ✓"}', "message", "7"),
]


def feed_all(chunks: list[bytes]) -> tuple[list[SSEEvent], SSEParser]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    events.extend(parser.close())
    return events, parser


def test_whole_payload_in_one_chunk_gives_every_event() -> None:
    events, parser = feed_all([PAYLOAD.encode()])
    assert events == EXPECTED
    assert parser.done


def test_payload_fed_byte_by_byte_gives_the_same_events() -> None:
    data = PAYLOAD.encode()
    events, parser = feed_all([data[i : i + 1] for i in range(len(data))])
    assert events == EXPECTED
    assert parser.done


def test_every_two_chunk_split_gives_the_same_events() -> None:
    data = PAYLOAD.encode()
    for cut in range(1, len(data)):
        events, _ = feed_all([data[:cut], data[cut:]])
        assert events == EXPECTED, f"split at byte {cut}"


def test_utf8_character_split_across_chunks_is_decoded_whole() -> None:
    data = 'data: {"t": "🎉"}\n\n'.encode()
    emoji_start = data.index("🎉".encode())
    parser = SSEParser()
    assert parser.feed(data[: emoji_start + 2]) == []
    events = parser.feed(data[emoji_start + 2 :])
    assert [json.loads(e.data) for e in events] == [{"t": "🎉"}]


def test_crlf_split_between_cr_and_lf_is_one_line_ending() -> None:
    parser = SSEParser()
    # were "\r" and "\n" two endings, the blank line would dispatch "a" and "b" apart
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r\n") == []
    assert parser.feed(b"\r\n") == [SSEEvent("a\nb")]


def test_comments_and_events_without_data_are_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b": ping\n\n: ping\n\nevent: nothing\n\n") == []


def test_done_ends_the_stream_and_later_input_is_ignored() -> None:
    parser = SSEParser()
    events = parser.feed(b"data: 1\n\ndata: [DONE]\n\ndata: 2\n\n")
    assert events == [SSEEvent("1")]
    assert parser.done
    assert parser.feed(b"data: 3\n\n") == []
    assert parser.close() == []


def test_close_dispatches_complete_lines_missing_the_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a": 1}\n') == []
    assert parser.close() == [SSEEvent('{"a": 1}')]


def test_close_drops_a_line_cut_off_mid_way() -> None:
    parser = SSEParser()
    assert parser.feed(b'data: {"a": 1}\n\ndata: {"b": ') == [SSEEvent('{"a": 1}')]
    assert parser.close() == []


def test_byte_order_mark_at_start_is_ignored() -> None:
    parser = SSEParser()
    events = parser.feed(b"\xef\xbb")
    events += parser.feed(b"\xbfdata: x\n\n")
    assert events == [SSEEvent("x")]


@pytest.mark.parametrize(
    ("line", "data"),
    [
        (b"data: spaced\n\n", "spaced"),
        (b"data:tight\n\n", "tight"),
        (b"data:  two spaces\n\n", " two spaces"),
        (b"data\n\n", ""),
    ],
)
def test_one_space_after_the_colon_is_dropped(line: bytes, data: str) -> None:
    parser = SSEParser()
    events = parser.feed(line)
    assert [e.data for e in events] == [data]


def test_many_events_in_one_chunk_come_out_in_order() -> None:
    data = b"".join(f"data: {i}\n\n".encode() for i in range(100))
    assert [e.data for e in SSEParser().feed(data)] == [str(i) for i in range(100)]
