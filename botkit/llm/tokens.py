"""Counting tokens the way the model will, to fit prompts into the context window.

Counts come from ``bpe_openai``, which has the ``cl100k_base`` and ``o200k_base``
encodings compiled in (exact against tiktoken, nothing downloaded). Special-token text
such as ``<|endoftext|>`` in a message is counted as ordinary text, as the API does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botkit.llm.models import ModelInfo
    from botkit.llm.types import ChatMessage

__all__ = ["KNOWN_ENCODINGS", "TokenCounter"]

KNOWN_ENCODINGS = ("cl100k_base", "o200k_base")

# OpenAI's documented chat overhead (the "How to count tokens" cookbook, gpt-3.5/4/4o):
_PER_MESSAGE = 3  # <|start|>{role}\n ... <|end|> around every message
_PER_NAME = 1  # a "name" field costs one more token
_REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>

# An image part, counted as one 1024x1024 high-detail image (765 tokens) unless it asks
# for low detail (85); the real cost depends on the image's size, which we do not fetch.
_IMAGE_TOKENS = 765
_IMAGE_TOKENS_LOW = 85

# Text longer than this is encoded in pieces cut at spaces: bpe_openai refuses inputs of
# 1,000,000 characters or of more than 200,000 tokens, and a character is at most 4 UTF-8
# bytes, so at most 4 tokens: 40,000 characters stay well under both limits.
_CHUNK_CHARS = 40_000

# Models without a known encoding: cl100k_base count x 1.15, rounded up.
_ESTIMATE_PERCENT = 115

# Counts of recent texts, kept: every prompt recounts its roles, the system prompt and
# the history it resends (encoding costs ~10 us per short text, a lookup ~0.1 us). Texts
# up to _MEMO_CHARS long, at most `remember` of them (then it starts over).
_MEMO_CHARS = 4_000
REMEMBER = 4_096


class TokenCounter:
    """Counts tokens in text and in chat messages for one encoding.

    For a model with no known encoding (Llama, Mistral, Qwen... served by Ollama or
    vLLM) the count is an estimate: the ``cl100k_base`` count x 1.15, rounded up. Those
    tokenizers split most text into somewhat more pieces than cl100k_base; the 15% margin
    keeps a fitted prompt inside the window in practice, but it is not exact.

    The encoding is loaded on first use and kept by this instance, with the counts of
    recent texts up to a few thousand characters (prompts resend the same system prompt
    and history turn after turn).

    Args:
        encoding: ``"cl100k_base"``, ``"o200k_base"``, or ``None`` to estimate.
        chunk_chars: text longer than this is encoded in pieces cut before spaces (the
            default suits ``bpe_openai``'s input limits; tests make it small).
        remember: how many recent texts' counts to keep (0: none, every text is encoded
            each time it is counted).

    Raises:
        ValueError: an encoding ``bpe_openai`` does not have.
    """

    __slots__ = ("_chunk_chars", "_encoder", "_encoding", "_memo", "_remember")

    def __init__(
        self, encoding: str | None, *, chunk_chars: int = _CHUNK_CHARS, remember: int = REMEMBER
    ) -> None:
        if encoding is not None and encoding not in KNOWN_ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}; known: {', '.join(KNOWN_ENCODINGS)}")
        if chunk_chars < 2:
            raise ValueError("chunk_chars must be at least 2")
        if remember < 0:
            raise ValueError("remember must not be negative")
        self._encoding = encoding
        self._chunk_chars = chunk_chars
        self._encoder: Any = None
        self._memo: dict[str, int] = {}
        self._remember = remember

    @classmethod
    def for_model(cls, info: ModelInfo) -> TokenCounter:
        """A counter for the model ``info`` describes."""
        return cls(info.encoding)

    @property
    def encoding(self) -> str | None:
        """The encoding's name, ``None`` when counts are estimates."""
        return self._encoding

    @property
    def loaded(self) -> bool:
        """Whether the encoding's tables are in memory (they are loaded on first use)."""
        return self._encoder is not None

    @property
    def exact(self) -> bool:
        """Whether counts are exact (a known encoding) rather than estimates."""
        return self._encoding is not None

    def count(self, text: str) -> int:
        """Tokens in ``text`` (an estimate when the encoding is unknown, see the class)."""
        raw = self._encoded_length(text)
        if self._encoding is None:
            return -(-raw * _ESTIMATE_PERCENT // 100)
        return raw

    def count_message(self, message: ChatMessage) -> int:
        """Tokens one message adds to a prompt, its per-message overhead included.

        Every string field counts (role, content, name, tool_call_id), plus 3 tokens of
        framing and 1 more for a ``name``; an assistant message's tool calls count their
        function names and arguments; content parts count their text, and images a flat
        765 tokens (85 for ``detail: "low"``).
        """
        total = _PER_MESSAGE
        for key, value in message.items():
            if isinstance(value, str):
                total += self.count(value)
                if key == "name":
                    total += _PER_NAME
            elif key == "content" and isinstance(value, list):
                total += sum(self._count_part(part) for part in value)
            elif key == "tool_calls" and isinstance(value, list):
                total += sum(self._count_tool_call(call) for call in value)
        return total

    def at_most(self, messages: Sequence[ChatMessage]) -> int:
        """An upper bound of :meth:`count_messages`, found without the tokenizer: every
        token covers at least one byte of UTF-8. A prompt whose bound fits a budget fits
        it, and nothing has to be loaded or encoded to know."""
        total = _REPLY_PRIMING
        for message in messages:
            total += _PER_MESSAGE
            for key, value in message.items():
                if isinstance(value, str):
                    total += _byte_bound(value) + (_PER_NAME if key == "name" else 0)
                else:  # content parts, tool calls: their JSON is longer than their text
                    total += _byte_bound(repr(value)) + 765 * str(value).count("image_url")
        return -(-total * _ESTIMATE_PERCENT // 100) if self._encoding is None else total

    def count_messages(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens a prompt of ``messages`` takes, the 3 tokens priming the reply included."""
        return sum(self.count_message(message) for message in messages) + _REPLY_PRIMING

    @staticmethod
    def reply_priming() -> int:
        """The tokens every prompt spends priming the reply (added once per request)."""
        return _REPLY_PRIMING

    def _count_part(self, part: Any) -> int:
        """Tokens in one content part."""
        if not isinstance(part, dict):
            return self.count(str(part))
        kind = part.get("type")
        if kind == "text":
            return self.count(str(part.get("text", "")))
        if kind == "image_url":
            image = part.get("image_url")
            low = isinstance(image, dict) and image.get("detail") == "low"
            return _IMAGE_TOKENS_LOW if low else _IMAGE_TOKENS
        return self.count(json.dumps(part, ensure_ascii=False))

    def _count_tool_call(self, call: Any) -> int:
        """Tokens in one entry of an assistant message's ``tool_calls``."""
        if not isinstance(call, dict):
            return 0
        function = call.get("function")
        if not isinstance(function, dict):
            return 0
        name = function.get("name")
        arguments = function.get("arguments")
        return (self.count(name) if isinstance(name, str) else 0) + (
            self.count(arguments) if isinstance(arguments, str) else 0
        )

    def _encoded_length(self, text: str) -> int:
        """The exact token count of ``text`` in this encoding (cl100k_base when unknown)."""
        if not text:
            return 0
        known = self._memo.get(text)
        if known is not None:
            return known
        encoder = self._load()
        if len(text) > self._chunk_chars:
            return sum(
                len(encoder.encode_ordinary(piece)) for piece in _pieces(text, self._chunk_chars)
            )
        length = len(encoder.encode_ordinary(text))
        if self._remember and len(text) <= _MEMO_CHARS:
            if len(self._memo) >= self._remember:
                self._memo.clear()
            self._memo[text] = length
        return length

    def warm(self) -> None:
        """Load the encoding now (it takes up to a second the first time in a process),
        so the first message after a start is not the one that waits for it."""
        self._load()

    def _load(self) -> Any:
        """The encoder, loaded on first use."""
        if self._encoder is None:
            # imported here: loading bpe_openai takes most of a second, and `import botkit`
            # should not pay for it when nothing is counted
            import bpe_openai

            self._encoder = bpe_openai.get_encoding(self._encoding or "cl100k_base")
        return self._encoder


def _pieces(text: str, size: int) -> Iterator[str]:
    """Cut ``text`` into pieces of at most ``size`` characters that encode independently.

    A cut goes just before a space that follows a non-space character: both encodings'
    pre-tokenizers start a new piece there (" word"), so the counts add up exactly. Only
    text with no such space in half a piece is cut elsewhere (off by a token or so).
    """
    start = 0
    length = len(text)
    while length - start > size:
        end = start + size
        floor = start + size // 2
        cut = text.rfind(" ", floor, end)
        while cut > floor and text[cut - 1].isspace():
            cut = text.rfind(" ", floor, cut)
        if cut <= floor:
            cut = end
        yield text[start:cut]
        start = cut
    yield text[start:]


def _byte_bound(text: str) -> int:
    """The UTF-8 length of ``text`` (its length when it is ASCII, without encoding it)."""
    return len(text) if text.isascii() else len(text.encode("utf-8"))
