"""The peers scenario through errbot; runs in errbot's venv, never imported by botkit.

``python bench/_errbot_app.py MODEL_URL WORKDIR USERS WARMUP MEASURED LATENCY`` pins
itself to ``$BOTKIT_BENCH_CPU``, starts errbot with its defaults (the shelf storage in
WORKDIR, the core plugins but the version checker, a pool of 10 threads for commands)
on the bench backend (``bench/_errbot/backend``) with the chat plugin
(``bench/_errbot/plugin``), runs the closed loop of ``bench/_closed_loop.py`` and prints
its JSON line.

errbot is threaded, not asynchronous, so the loop is driven by the replies: each reply
to a user queues that user's next message, until the user has sent its share; nothing
waits in a thread of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # bench._closed_loop, stdlib only

from bench._closed_loop import (  # noqa: E402
    Measured,
    Plan,
    cpu_seconds,
    peak_rss_mib,
    pin,
    report,
    text,
)

CORE_PLUGINS = (
    "ACLs",
    "Backup",
    "ChatRoom",
    "CommandNotFoundFilter",
    "Flows",
    "Health",
    "Help",
    "Plugins",
    "TextCmds",
    "Utils",
    "Webserver",
)


class Loop:
    """The closed loop over errbot's backend: ``phase`` sends and waits for it to end."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot
        self.counter = iter(range(1, 1 << 62))
        self.lock = threading.Lock()
        self.left: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self.done = threading.Event()
        bot.on_reply = self.reply

    def _send(self, user: str) -> None:
        self.started[user] = time.monotonic()
        self.bot.incoming.put((user, text(next(self.counter))))

    def reply(self, user: str, body: str) -> None:
        now = time.monotonic()
        with self.lock:
            if user not in self.left:
                return
            self.latencies.append(now - self.started[user])
            if not body.startswith("echo:"):
                self.failures.append(body[:200])
            self.left[user] -= 1
            if self.left[user] > 0:
                self._send(user)
                return
            del self.left[user]
            if not self.left:
                self.done.set()

    def phase(self, users: list[str], each: int, *, within: float = 900) -> list[float]:
        """Every user sends ``each`` messages, one after its last reply; the latencies."""
        with self.lock:
            self.done.clear()
            self.latencies = []
            self.left = dict.fromkeys(users, each)
            for user in users:
                self._send(user)
        if not self.done.wait(timeout=within):
            raise TimeoutError(f"errbot answered too little in {within:g} s")
        if self.failures:
            raise RuntimeError(f"errbot answered with an error: {self.failures[0]}")
        return self.latencies


def _config(model_url: str, workdir: Path) -> Any:
    config = types.SimpleNamespace()
    config.__dict__.update(importlib.import_module("errbot.config-template").__dict__)
    config.BOT_DATA_DIR = str(workdir)
    config.BOT_LOG_FILE = None
    config.BOT_LOG_LEVEL = logging.WARNING
    config.BOT_EXTRA_BACKEND_DIR = str(HERE / "_errbot" / "backend")
    config.BOT_EXTRA_PLUGIN_DIR = str(HERE / "_errbot" / "plugin")
    config.BOT_ADMINS = ("admin",)
    config.BOT_IDENTITY = {"username": "errbot"}
    config.BENCH_MODEL_URL = model_url
    # every core plugin but the version checker, which asks errbot.io at start (errbot
    # skips it in its own test modes; this backend is not one of them)
    config.CORE_PLUGINS = CORE_PLUGINS
    return config


def main(args: list[str]) -> None:
    """Run the plan through errbot and print what it measured."""
    pin()  # first: errbot's threads inherit the mask
    from errbot.bootstrap import setup_bot  # type: ignore[import-not-found]

    model_url, workdir = args[0], Path(args[1])
    plan = Plan.parse(args[2:6])
    logging.basicConfig(level=logging.WARNING)
    bot = setup_bot("Bench", logging.getLogger("errbot"), _config(model_url, workdir))
    server = threading.Thread(target=bot.serve_forever, name="errbot", daemon=True)
    server.start()
    loop = Loop(bot)
    for _ in range(120):  # the plugins activate in serve_forever: wait for a first answer
        try:
            loop.phase(["ready"], 1, within=0.5)
            break
        except TimeoutError:
            pass
    users = [f"user-{i}" for i in range(plan.users)]
    warm_each, measured_each = plan.per_user
    loop.phase(users, warm_each)
    cpu, started = cpu_seconds(), time.monotonic()
    loop.phase(users, measured_each)
    seconds, cpu = time.monotonic() - started, cpu_seconds() - cpu
    latencies = loop.phase(["alone"], plan.latency) if plan.latency else []
    measured = Measured(
        messages=plan.users * measured_each,
        seconds=seconds,
        cpu_seconds=cpu,
        peak_rss_mib=peak_rss_mib(),
        latencies=latencies,
        affinity=sorted(os.sched_getaffinity(0)),
    )
    bot.incoming.put(None)
    server.join(timeout=30)
    report(measured, target="errbot")


if __name__ == "__main__":
    main(sys.argv[1:])
