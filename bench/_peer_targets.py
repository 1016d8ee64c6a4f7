"""The peers scenario's hand-written baselines: one aiohttp call and one SQLite insert
per message, with or without the conversation's history.

What someone writes by hand for an OpenAI chat bot with no framework: the standard
``sqlite3`` module on the event loop (WAL, ``synchronous=FULL``: the same durability
botkit's default promises), one table of turns, one ``INSERT`` and commit per message
after the model answered, one aiohttp session whose pool holds as many connections as
botkit's model client has (``bot.max_in_flight``, 32 by default). ``history`` turns
(0: none) of the conversation are read back and sent with every message, newest last.
Nothing else: no inbox, no outbox, no order within a conversation beyond the user's
own closed loop.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import aiohttp

SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."  # botkit's default
MODEL = "gpt-4o-mini"  # botkit's default
POOL = 32  # botkit's model client: as many connections as bot.max_in_flight (default 32)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    conversation TEXT NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS turns_by_conversation ON turns (conversation, id);
"""


class HandWritten:
    """The baseline: ``history`` is how many turns (questions and answers) to send."""

    def __init__(self, path: Path, model_url: str, *, history: int = 0) -> None:
        self.path = path
        self.url = model_url.rstrip("/") + "/chat/completions"
        self.history = history
        self._db: sqlite3.Connection | None = None
        self._http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        """Open the database (creating the table) and the HTTP session."""
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(_SCHEMA)
        self._db = db
        self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=POOL))

    async def close(self) -> None:
        """Close both."""
        if self._http is not None:
            await self._http.close()
        if self._db is not None:
            self._db.close()

    def _past(self, conversation: str) -> list[dict[str, str]]:
        """The newest ``history`` turns of the conversation, oldest first."""
        assert self._db is not None
        rows = self._db.execute(
            "SELECT question, answer FROM turns WHERE conversation = ? ORDER BY id DESC LIMIT ?",
            (conversation, (self.history + 1) // 2),
        ).fetchall()
        past: list[dict[str, str]] = []
        for question, answer in reversed(rows):
            past += [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer},
            ]
        return past[-self.history :]

    async def one(self, conversation: str, text: str, external_id: str) -> float:
        """Answer one message; seconds until the reply was handed to the channel."""
        assert self._db is not None
        assert self._http is not None
        started = time.monotonic()
        past = self._past(conversation) if self.history else []
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            *past,
            {"role": "user", "content": text},
        ]
        body = json.dumps({"model": MODEL, "messages": messages})
        async with self._http.post(
            self.url, data=body, headers={"Content-Type": "application/json"}
        ) as response:
            response.raise_for_status()
            reply: dict[str, Any] = await response.json()
        answer = reply["choices"][0]["message"]["content"] or ""
        with self._db:  # one transaction, committed
            self._db.execute(
                "INSERT INTO turns (conversation, question, answer, created_at) "
                "VALUES (?, ?, ?, ?)",
                (conversation, text, answer, time.time()),
            )
        return time.monotonic() - started  # "sent": the in-memory channel takes it at once
