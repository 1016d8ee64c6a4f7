"""Which passages of the documents answer a question: BM25 over the passages' words.

Pure Python and quick enough for a few documents of a few hundred passages each;
nothing is indexed ahead, the scores are computed for each question.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

__all__ = ["rank", "words"]

_WORD = re.compile(r"\w+", re.UNICODE)
# words that say nothing about which passage is meant
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "for",
        "from",
        "had",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "about",
        "tell",
        "please",
        "say",
        "says",
        "said",
    ]
)
K1 = 1.5
B = 0.75


def words(text: str) -> list[str]:
    """The words of ``text`` that can tell passages apart: lower case, no stop words,
    no single letters."""
    return [w for w in _WORD.findall(text.lower()) if len(w) > 1 and w not in _STOP]


def rank(question: str, passages: Sequence[str]) -> list[tuple[float, int]]:
    """``(score, index)`` of each passage that shares a word with ``question``, best
    first (ties: the earlier passage first)."""
    asked = set(words(question))
    if not asked or not passages:
        return []
    counts = [Counter(words(p)) for p in passages]
    lengths = [sum(c.values()) for c in counts]
    average = (sum(lengths) / len(lengths)) or 1.0
    total = len(passages)
    frequency = {w: sum(1 for c in counts if w in c) for w in asked}
    scored: list[tuple[float, int]] = []
    for index, (count, length) in enumerate(zip(counts, lengths, strict=True)):
        score = 0.0
        for word in asked:
            tf = count.get(word, 0)
            if not tf:
                continue
            df = frequency[word]
            idf = math.log(1 + (total - df + 0.5) / (df + 0.5))
            score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * length / average))
        if score > 0:
            scored.append((score, index))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored
