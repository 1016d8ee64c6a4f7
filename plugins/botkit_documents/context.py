"""The documents' text added to the prompt of an answer: the passages that share the
most telling words with the question (BM25), then the documents' summaries, as far as
the room allows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from botkit_documents.relevance import rank
from botkit_documents.shelf import Document

__all__ = ["HEADER", "prompt_text"]

HEADER = (
    "Documents shared earlier in this conversation, with the passages that seem to bear "
    "on the latest message. Answer from them when they help, and say so when they do "
    "not hold the answer."
)
_GAP = "[…]"


class _Counter(Protocol):
    def count(self, text: str) -> int: ...


def prompt_text(
    question: str,
    documents: Sequence[tuple[Document, Sequence[str]]],
    room: int,
    counter: _Counter,
) -> str | None:
    """The system text for ``question`` (at most ``room`` tokens), or ``None`` when
    not even the header and one document's name fit."""
    used = counter.count(HEADER) + 8
    labels = [f"Document {n}: {d.label}" for n, (d, _) in enumerate(documents, 1)]
    used += sum(counter.count(label) + 2 for label in labels)
    if used > room:
        return None
    flat = [(d, p) for d, (_, passages) in enumerate(documents) for p in range(len(passages))]
    texts = [documents[d][1][p] for d, p in flat]
    chosen: set[tuple[int, int]] = set()
    for _, index in rank(question, texts):
        size = counter.count(texts[index]) + 4
        if used + size <= room:
            chosen.add(flat[index])
            used += size
    summaries: dict[int, str] = {}
    for d, (document, _) in enumerate(documents):
        line = f"Summary: {document.summary}"
        size = counter.count(line) + 2
        if document.summary and used + size <= room:
            summaries[d] = line
            used += size
    parts = [HEADER]
    for d, (_, passages) in enumerate(documents):
        block = [labels[d]]
        if d in summaries:
            block.append(summaries[d])
        picked = sorted(p for dd, p in chosen if dd == d)
        if picked:
            block.append("Passages:")
            previous = None
            for p in picked:
                if previous is not None and p != previous + 1:
                    block.append(_GAP)
                block.append(passages[p])
                previous = p
        parts.append("\n".join(block))
    return "\n\n".join(parts)
