"""The errbot chat skill of the peers benchmark, as an errbot user would write one.

Every message that is not a command is answered by the model, sent with the
conversation's last 200 turns, which the plugin keeps in its own storage (errbot's
default, a shelf: on this interpreter ``dbm.dumb``). A regex command rather than
``callback_message``, so that errbot runs it in its thread pool (``BOT_ASYNC``, 10
threads by default) instead of one message at a time. ``requests``, errbot's own HTTP
dependency, with one session per pool thread.
"""

from __future__ import annotations

import threading
from typing import Any

import requests  # type: ignore[import-untyped]
from errbot import BotPlugin, re_botcmd  # type: ignore[import-not-found]

SYSTEM_PROMPT = "You are a helpful assistant. Answer concisely."
HISTORY_LIMIT = 200
MODEL = "gpt-4o-mini"


class BenchChat(BotPlugin):  # type: ignore[misc]
    """Answer every message from the model, with the conversation so far."""

    def activate(self) -> None:
        super().activate()
        self._local = threading.local()
        self._store_lock = threading.Lock()  # the shelf is not safe across threads
        self._url = self.bot_config.BENCH_MODEL_URL.rstrip("/") + "/chat/completions"

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    @re_botcmd(pattern=r"^.+$", prefixed=False, hidden=True, historize=False)  # type: ignore[untyped-decorator]
    def chat(self, msg: Any, match: Any) -> str:
        key = f"history:{msg.frm}"
        with self._store_lock:
            history: list[dict[str, str]] = self.get(key, [])
        history.append({"role": "user", "content": msg.body})
        body = {
            "model": MODEL,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, *history[-HISTORY_LIMIT:]],
        }
        response = self._session().post(self._url, json=body, timeout=60)
        response.raise_for_status()
        content: str = response.json()["choices"][0]["message"]["content"] or ""
        history.append({"role": "assistant", "content": content})
        with self._store_lock:
            self[key] = history[-HISTORY_LIMIT:]
        return content
