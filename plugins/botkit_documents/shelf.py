"""The documents of each conversation, kept in the plugin's persisted state.

A conversation's index (``docs:<conversation id>``) lists its documents, oldest first;
each document's passages are stored under ``passages:<conversation id>:<document id>``.
A document belongs to the conversation while the message that brought it is part of
the conversation's history: after ``/reset`` it is forgotten (and dropped from the
state the next time the conversation's documents are read).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from botkit import KeyValueState

__all__ = ["Document", "Shelf"]


class _History(Protocol):
    async def history(
        self, conversation_id: int, *, before_id: int | None, limit: int, after_id: int = 0
    ) -> Sequence[object]: ...


@dataclass(frozen=True, slots=True)
class Document:
    """One document of a conversation.

    Attributes:
        id: unique in its conversation (``"<message id>.<n>"``).
        message_id: the message that brought it.
        title: its title, or its file name.
        source: the link it was read from, or the file's name.
        summary: the summary the bot gave of it.
        passages: how many passages it was cut into.
    """

    id: str
    message_id: int
    title: str
    source: str
    summary: str
    passages: int

    @property
    def label(self) -> str:
        """How the bot names it: the title and, for a link, where it is."""
        if self.title and self.title != self.source:
            return f"{self.title} ({self.source})"
        return self.source


class Shelf:
    """Documents in a plugin's state.

    Args:
        state: the plugin's own state (``ctx.state``).
        store: what the plugin may read of the store (``ctx.store``), to tell which
            documents a ``/reset`` forgot.
        keep: the most documents kept per conversation; the oldest go first.
    """

    def __init__(self, state: KeyValueState, store: _History, *, keep: int) -> None:
        self._state = state
        self._store = store
        self._keep = keep

    async def add(self, conversation_id: int, document: Document, passages: Sequence[str]) -> None:
        """Keep ``document`` with its passages, dropping the oldest beyond ``keep``."""
        await self._state.set(_passages_key(conversation_id, document.id), list(passages))
        index = [d for d in await self._index(conversation_id) if d.id != document.id]
        index.append(document)
        for old in index[: max(0, len(index) - self._keep)]:
            await self._state.delete(_passages_key(conversation_id, old.id))
        await self._save(conversation_id, index[-self._keep :])

    async def documents(self, conversation_id: int) -> list[Document]:
        """The conversation's documents still in its history, oldest first."""
        index = await self._index(conversation_id)
        for position, document in enumerate(index):
            if await self._in_history(conversation_id, document.message_id):
                # history starts before this one: every later document is in it too
                if position:
                    await self._forget(conversation_id, index[:position], index[position:])
                return index[position:]
        if index:
            await self._forget(conversation_id, index, [])
        return []

    async def passages(self, conversation_id: int, document: Document) -> list[str]:
        """A document's passages, in order."""
        stored = await self._state.get(_passages_key(conversation_id, document.id), [])
        return [str(p) for p in stored] if isinstance(stored, list) else []

    async def _in_history(self, conversation_id: int, message_id: int) -> bool:
        rows = await self._store.history(
            conversation_id, before_id=message_id + 1, after_id=message_id - 1, limit=1
        )
        return bool(rows)

    async def _forget(
        self, conversation_id: int, gone: list[Document], kept: list[Document]
    ) -> None:
        for document in gone:
            await self._state.delete(_passages_key(conversation_id, document.id))
        await self._save(conversation_id, kept)

    async def _index(self, conversation_id: int) -> list[Document]:
        stored = await self._state.get(_index_key(conversation_id), [])
        documents: list[Document] = []
        for item in stored if isinstance(stored, list) else []:
            try:
                documents.append(Document(**item))
            except TypeError:  # written by another version: skip rather than fail
                continue
        return documents

    async def _save(self, conversation_id: int, index: list[Document]) -> None:
        if index:
            value: list[dict[str, Any]] = [asdict(d) for d in index]
            await self._state.set(_index_key(conversation_id), value)
        else:
            await self._state.delete(_index_key(conversation_id))


def _index_key(conversation_id: int) -> str:
    return f"docs:{conversation_id}"


def _passages_key(conversation_id: int, document_id: str) -> str:
    return f"passages:{conversation_id}:{document_id}"
