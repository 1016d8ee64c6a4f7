"""Scenario 4: fitting a 128K-token history into gpt-4-turbo's window; counting tokens.

The history is made-up chat (seeded, so every run fits the same text): turns of 20 to
300 common English words, alternating user and assistant, until they add up to 128,000
tokens or more (``cl100k_base``, gpt-4-turbo's encoding). ``fit`` times ``fit_messages``
with nothing counted beforehand, against the budget the chat skill uses (the window
minus the default 1,024 tokens kept for the answer). ``tokens`` compares botkit's
``TokenCounter`` with calling the ``bpe_openai`` encoder directly on the same text.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from bench._util import Options, median, ms
from botkit.llm import ChatMessage, ModelTable, TokenCounter, fit_messages

MODEL = "gpt-4-turbo"
HISTORY_TOKENS = 128_000
RESERVE = 1024
TARGET_FIT = 0.050

_WORDS = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "you",
    "that",
    "it",
    "he",
    "was",
    "for",
    "on",
    "are",
    "as",
    "with",
    "his",
    "they",
    "at",
    "be",
    "this",
    "have",
    "from",
    "or",
    "one",
    "had",
    "by",
    "word",
    "but",
    "not",
    "what",
    "all",
    "were",
    "we",
    "when",
    "your",
    "can",
    "said",
    "there",
    "use",
    "an",
    "each",
    "which",
    "she",
    "do",
    "how",
    "their",
    "if",
    "will",
    "up",
    "other",
    "about",
    "out",
    "many",
    "then",
    "them",
    "these",
    "so",
    "some",
    "her",
    "would",
    "make",
    "like",
    "him",
    "into",
    "time",
    "has",
    "look",
    "two",
    "more",
    "write",
    "go",
    "see",
    "number",
    "no",
    "way",
    "could",
    "people",
    "my",
    "than",
    "first",
    "water",
    "been",
    "call",
    "who",
    "oil",
    "its",
    "now",
    "find",
    "long",
    "down",
    "day",
    "did",
    "get",
    "come",
    "made",
    "may",
    "part",
    "over",
    "new",
    "sound",
    "take",
    "only",
    "little",
    "work",
    "know",
    "place",
    "year",
    "live",
    "me",
    "back",
    "give",
    "most",
    "very",
    "after",
    "thing",
    "our",
    "just",
    "name",
    "good",
    "sentence",
    "man",
    "think",
    "say",
    "great",
    "where",
    "help",
    "through",
    "much",
    "before",
    "line",
    "right",
    "too",
    "mean",
    "old",
    "any",
    "same",
    "tell",
    "boy",
    "follow",
    "came",
    "want",
    "show",
    "also",
    "around",
    "form",
    "three",
    "small",
    "set",
    "put",
    "end",
    "does",
    "another",
    "well",
    "large",
    "must",
    "big",
    "even",
    "such",
    "because",
    "turn",
    "here",
    "why",
    "ask",
    "went",
    "men",
    "read",
    "need",
    "land",
    "different",
    "home",
    "us",
    "move",
    "try",
    "kind",
    "hand",
    "picture",
    "again",
    "change",
    "off",
    "play",
    "spell",
    "air",
    "away",
    "animal",
    "house",
    "point",
    "page",
    "letter",
    "mother",
    "answer",
    "found",
    "study",
    "still",
    "learn",
    "should",
    "America",
    "world",
    "high",
    "every",
    "near",
    "add",
    "food",
    "between",
    "own",
    "below",
    "country",
    "plant",
    "last",
    "school",
    "father",
    "keep",
    "tree",
    "never",
    "start",
    "city",
    "earth",
    "eye",
    "light",
    "thought",
    "head",
    "under",
    "story",
    "saw",
    "left",
    "don't",
    "few",
    "while",
    "along",
    "might",
    "close",
    "something",
    "seem",
    "next",
    "hard",
    "open",
    "example",
    "begin",
    "life",
    "always",
    "those",
    "both",
    "paper",
    "together",
    "got",
    "group",
    "often",
    "run",
    "important",
]


def make_history(counter: TokenCounter, tokens: int = HISTORY_TOKENS) -> list[ChatMessage]:
    """Chat turns adding up to at least ``tokens`` tokens, the same on every run."""
    rng = random.Random(20240409)
    history: list[ChatMessage] = []
    total = 0
    while total < tokens:
        words = rng.choices(_WORDS, k=rng.randint(20, 300))
        text = " ".join(words).capitalize() + rng.choice(".?!")
        message: ChatMessage = {
            "role": "user" if len(history) % 2 == 0 else "assistant",
            "content": text,
        }
        history.append(message)
        total += counter.count_message(message)
    return history


def _interleaved(calls: list[Callable[[], object]], repeats: int) -> list[float]:
    """The median time of each call, run in turn ``repeats`` times (so noise hits all)."""
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(repeats):
        for call, seen in zip(calls, times, strict=True):
            started = time.perf_counter()
            call()
            seen.append(time.perf_counter() - started)
    return [median(t) for t in times]


async def run_fit(opts: Options) -> str:
    """``fit``: a 128K-token history fitted to gpt-4-turbo's window.

    Judged with nothing counted beforehand: a counter that remembers no counts. The
    next turn's fit, whose counter remembers the history it counted, is shown beside it.
    """
    info = ModelTable().lookup(MODEL)
    cold = TokenCounter(info.encoding, remember=0)
    history = make_history(cold)
    warm = TokenCounter(info.encoding)
    system: list[ChatMessage] = [{"role": "system", "content": "You are a helpful assistant."}]
    budget = info.context_window - RESERVE
    result = fit_messages(system, history, budget=budget, counter=cold)  # warm-up
    fit_messages(system, history, budget=budget, counter=warm)  # the turn before
    took, again = _interleaved(
        [
            lambda: fit_messages(system, history, budget=budget, counter=cold),
            lambda: fit_messages(system, history, budget=budget, counter=warm),
        ],
        3 if opts.quick else 15,
    )
    return (
        f"{ms(took)} = {took / TARGET_FIT:.2f}x the target (<= {ms(TARGET_FIT)})  "
        f"{len(history):,} turns, {sum(map(cold.count_message, history)):,} tokens "
        f"fitted to {budget:,}: {len(result.dropped)} oldest dropped, {result.tokens:,} kept  "
        f"next turn, counts remembered: {ms(again)}"
    )


async def run_tokens(opts: Options) -> str:
    """``tokens``: counting throughput, botkit's counter against the bare encoder."""
    import bpe_openai

    counter = TokenCounter("cl100k_base", remember=0)  # counting, not remembering
    history = make_history(counter)
    encoder = bpe_openai.get_encoding("cl100k_base")
    texts = [str(m["content"]) for m in history]
    whole = "\n".join(texts)
    repeats = 5 if opts.quick else 21
    tokens = len(encoder.encode_ordinary(whole))
    per_message, bare_per_message, one_text, bare_one_text = _interleaved(
        [
            lambda: [counter.count_message(m) for m in history],
            lambda: [len(encoder.encode_ordinary(t)) for t in texts],
            lambda: counter.count(whole),
            lambda: len(encoder.encode_ordinary(whole)),
        ],
        repeats,
    )

    def rate(seconds: float) -> str:
        return f"{tokens / seconds / 1e6:.2f}M tokens/s"

    return (
        f"messages {rate(per_message)} = {bare_per_message / per_message:.2f}x the bare "
        f"encoder ({rate(bare_per_message)})  one {len(whole) // 1000}K-character text "
        f"{rate(one_text)} = {bare_one_text / one_text:.2f}x the bare encoder "
        f"({rate(bare_one_text)})  [{len(history)} messages, {tokens:,} tokens, cl100k_base]"
    )
