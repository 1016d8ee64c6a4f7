"""Token counts: exact against known token ids, with OpenAI's chat overhead."""

from __future__ import annotations

import math
from typing import Any

import bpe_openai
import pytest

from botkit.llm import ModelTable, TokenCounter

# OpenAI's cookbook example; the API itself counted 129 prompt tokens for gpt-4-0613
# and 124 for gpt-4o ("How to count tokens with tiktoken").
COOKBOOK = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on "
        "opportunities for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

PROSE = (
    "The quick brown fox jumps over the lazy dog. Sphinx of black quartz, judge my vow! "
    "Pack my box with five dozen liquor jugs; how vexingly quick daft zebras jump. "
) * 40


@pytest.mark.parametrize(
    ("encoding", "text", "ids"),
    [
        ("cl100k_base", "hello world", [15339, 1917]),
        ("o200k_base", "hello world", [24912, 2375]),
        ("cl100k_base", "tiktoken is great!", [83, 1609, 5963, 374, 2294, 0]),
    ],
)
def test_counts_match_known_token_ids(encoding: str, text: str, ids: list[int]) -> None:
    assert bpe_openai.get_encoding(encoding).encode(text) == ids
    assert TokenCounter(encoding).count(text) == len(ids)


@pytest.mark.parametrize(("encoding", "expected"), [("cl100k_base", 129), ("o200k_base", 124)])
def test_message_count_matches_what_the_api_counted(encoding: str, expected: int) -> None:
    assert TokenCounter(encoding).count_messages(COOKBOOK) == expected


def test_message_overhead_is_three_per_message_one_per_name_three_for_priming() -> None:
    counter = TokenCounter("cl100k_base")
    plain = {"role": "user", "content": "hello world"}
    named = {"role": "user", "content": "hello world", "name": "bob"}
    # 3 framing + "user" (1) + "hello world" (2)
    assert counter.count_message(plain) == 6
    assert counter.count_message(named) == 6 + counter.count("bob") + 1
    assert counter.count_messages([plain, plain]) == 6 + 6 + 3


def test_tool_calls_count_their_names_and_arguments() -> None:
    counter = TokenCounter("o200k_base")
    arguments = '{"city": "Oslo", "unit": "celsius"}'
    call = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "c1",
                "type": "function",
                "function": {"name": "weather", "arguments": arguments},
            }
        ],
    }
    bare = {"role": "assistant", "content": None}
    added = counter.count_message(call) - counter.count_message(bare)
    assert added == counter.count("weather") + counter.count(arguments)


def test_image_parts_count_a_flat_estimate_and_text_parts_their_text() -> None:
    counter = TokenCounter("o200k_base")
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
        ],
    }
    assert counter.count_message(message) == 3 + 1 + counter.count("what is this?") + 85


def test_unknown_encoding_estimates_cl100k_times_1_15_rounded_up() -> None:
    exact = TokenCounter("cl100k_base").count(PROSE)
    estimate = TokenCounter(None)
    assert not estimate.exact
    assert estimate.count(PROSE) == math.ceil(exact * 1.15)
    assert estimate.count("hello world") == 3  # 2 x 1.15 = 2.3, rounded up


def test_text_counted_in_pieces_adds_up_exactly() -> None:
    for encoding in ("cl100k_base", "o200k_base"):
        whole = TokenCounter(encoding).count(PROSE)
        assert TokenCounter(encoding, chunk_chars=64).count(PROSE) == whole
        assert TokenCounter(encoding, chunk_chars=1000).count(PROSE) == whole


def test_text_over_a_million_characters_is_counted() -> None:
    counter = TokenCounter("cl100k_base")
    text = "hello world " * 100_000  # 1.2M characters, over bpe_openai's single-input limit
    # "hello", then " world" and " hello" alternating, then the final " ": 2N + 1
    assert counter.count(text) == 200_001


def test_special_token_text_is_counted_as_plain_text() -> None:
    counter = TokenCounter("cl100k_base")
    assert counter.count("<|endoftext|>") > 1


def test_counter_for_a_model_uses_its_encoding() -> None:
    table = ModelTable()
    assert TokenCounter.for_model(table.lookup("gpt-4o-mini")).encoding == "o200k_base"
    assert TokenCounter.for_model(table.lookup("gpt-4")).encoding == "cl100k_base"
    assert TokenCounter.for_model(table.lookup("llama3")).encoding is None


def test_unknown_encoding_name_is_refused() -> None:
    with pytest.raises(ValueError, match="p50k"):
        TokenCounter("p50k_base")


def test_empty_text_is_zero_tokens() -> None:
    assert TokenCounter("cl100k_base").count("") == 0


class _CountingEncoder:
    """The real encoder, counting the texts it is asked to encode."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.calls = 0

    def encode_ordinary(self, text: str) -> list[int]:
        self.calls += 1
        result: list[int] = self.real.encode_ordinary(text)
        return result


def test_recent_texts_are_encoded_once_and_what_is_kept_stays_bounded() -> None:
    counter = TokenCounter("cl100k_base", remember=3)
    counter.warm()
    encoder = _CountingEncoder(counter._encoder)
    counter._encoder = encoder
    fresh = TokenCounter("cl100k_base", remember=0)
    prompt = "You are a helpful assistant. Answer concisely."
    assert counter.count(prompt) == fresh.count(prompt)
    assert counter.count(prompt) == fresh.count(prompt)
    assert encoder.calls == 1  # the second count was remembered
    texts = [f"turn {i}: " + "word " * i for i in range(10)]
    for text in [*texts, *reversed(texts)]:
        assert counter.count(text) == fresh.count(text)
    assert len(counter._memo) <= 3  # it started over instead of growing
    long = "word " * 1_000  # 5,000 characters: counted, not kept
    assert counter.count(long) == fresh.count(long)
    assert long not in counter._memo


def test_a_counter_that_remembers_nothing_encodes_every_time() -> None:
    counter = TokenCounter("o200k_base", remember=0)
    counter.warm()
    encoder = _CountingEncoder(counter._encoder)
    counter._encoder = encoder
    counter.count("the same text")
    counter.count("the same text")
    assert encoder.calls == 2
    with pytest.raises(ValueError, match="remember"):
        TokenCounter("o200k_base", remember=-1)
