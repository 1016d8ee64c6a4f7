"""``ConsoleAdapter``: a terminal REPL that streams answers, or one reply per input line.

In a terminal it shows a prompt, a spinner while the bot works, and prints the answer as
it is generated (its "edits" print only the new text); a message the bot sends on its own
(a reminder) and the end of the session start on a fresh line, never after the prompt.
When standard input is not a terminal it reads one message per line, waits for each
reply before reading the next, prints each reply (nothing else), and ends when the
input ends, so ``printf 'hi\\nbye\\n' | botkit chat`` can be scripted.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, TextIO

from botkit import (
    Adapter,
    Capabilities,
    CommandInfo,
    ConversationRef,
    Inbox,
    Message,
    Reply,
    Sender,
    SentMessage,
)

__all__ = ["ConsoleAdapter", "ConsoleSettings"]

_SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"
_ERASE_LINE = "\r\x1b[K"  # back to the line's start, and clear it


@dataclass(frozen=True, slots=True)
class ConsoleSettings:
    """``[adapters.console]``.

    Attributes:
        user: the sender id the console's messages carry.
        prompt: shown before each line in a terminal.
        bot_label: printed before each answer in a terminal.
    """

    user: str = "console"
    prompt: str = "you> "
    bot_label: str = "bot> "


class ConsoleAdapter(Adapter):
    """The terminal channel; one conversation per process run."""

    capabilities: ClassVar[Capabilities] = Capabilities(
        edits=True, threads=False, max_length=100_000, markup="markdown", edit_interval=0.0
    )
    settings_class: ClassVar[type[ConsoleSettings]] = ConsoleSettings

    def __init__(
        self,
        name: str,
        settings: ConsoleSettings | None = None,
        *,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        interactive: bool | None = None,
    ) -> None:
        super().__init__(name)
        self.settings = settings or ConsoleSettings()
        self._stdin = stdin or sys.stdin
        self._stdout = stdout or sys.stdout
        self._interactive = self._stdin.isatty() if interactive is None else interactive
        self._session = uuid.uuid4().hex[:12]
        self._conversation = ConversationRef(name, f"{self.settings.user}-{self._session}")
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sent = 0
        self._line_open = False  # the cursor is after text the bot printed
        self._prompt_shown = False  # the cursor is after the prompt, awaiting a line
        self._busy = False  # a line of the user's is being answered
        self._spinner: asyncio.Task[None] | None = None

    async def start(self, inbox: Inbox) -> None:
        """Start reading lines (in a daemon thread: reading a terminal blocks)."""
        loop = asyncio.get_running_loop()

        def read() -> None:
            for line in self._stdin:
                loop.call_soon_threadsafe(self._lines.put_nowait, line.rstrip("\r\n"))
            loop.call_soon_threadsafe(self._lines.put_nowait, None)

        threading.Thread(target=read, name="console-input", daemon=True).start()
        self._task = asyncio.create_task(self._loop(inbox))

    async def _loop(self, inbox: Inbox) -> None:
        count = 0
        try:
            while True:
                self._prompt()
                line = await self._lines.get()
                if line is None:  # Ctrl-D: the cursor is still after the prompt
                    break
                self._prompt_shown = False  # Enter took the cursor to a new line
                if not line.strip():
                    continue
                count += 1
                message = Message(
                    conversation=self._conversation,
                    sender=Sender(self.settings.user, self.settings.user),
                    text=line,
                    external_id=f"{self._session}:{count}",
                )
                self._busy = True
                self._start_spinner()
                try:
                    accepted = await inbox.accept(message)
                    await inbox.wait_done(accepted.message_id)
                finally:
                    self._busy = False
                    await self._stop_spinner()
                self._end_line()
        finally:
            self._fresh_line()
            self._done.set()

    def _prompt(self) -> None:
        if self._interactive:
            self._write(self.settings.prompt)
            self._prompt_shown = True

    def _fresh_line(self) -> None:
        """End whatever line the cursor is on (the prompt, an answer), so that what is
        printed next (a message, the shell's prompt after the exit) starts a line."""
        if self._prompt_shown or self._line_open:
            self._write("\n")
        self._prompt_shown = self._line_open = False

    def _start_spinner(self) -> None:
        if self._interactive:  # a pipe's output stays the replies alone
            self._spinner = asyncio.create_task(self._spin(), name="console-spinner")

    async def _spin(self) -> None:
        for frame in itertools.cycle(_SPINNER):
            self._write(f"\r{frame} ")
            await asyncio.sleep(0.1)

    async def _stop_spinner(self) -> None:
        spinner, self._spinner = self._spinner, None
        if spinner is not None:
            spinner.cancel()
            await asyncio.gather(spinner, return_exceptions=True)
            self._write(_ERASE_LINE)

    async def stop(self) -> None:
        """Stop reading input; the terminal is left on a fresh line."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._stop_spinner()
        self._fresh_line()
        self._done.set()

    async def finished(self) -> None:
        """Return once the input has ended."""
        await self._done.wait()

    async def send(
        self, conversation: ConversationRef, reply: Reply, *, delivery_id: str
    ) -> SentMessage:
        """Print a reply (streamed replies continue on the same line through :meth:`edit`).

        A message sent while no line is being answered (a reminder) starts on a fresh
        line, and the prompt is shown again after it."""
        self._sent += 1
        await self._stop_spinner()
        self._fresh_line()
        label = self.settings.bot_label if self._interactive else ""
        self._write(f"{label}{reply.text}")
        self._line_open = True
        if not self._busy and self._interactive:  # on its own: back to the prompt
            self._end_line()
            self._prompt()
        return SentMessage(conversation, f"{self._session}:out:{self._sent}", reply.text)

    async def edit(self, sent: SentMessage, text: str) -> SentMessage:
        """Print what was added to a streamed reply (the console cannot rewrite lines)."""
        # A terminal line cannot be rewritten: print what was added, or, if the text
        # changed rather than grew (a final reformatting), the whole text again.
        addition = text[len(sent.text) :] if text.startswith(sent.text) else "\n" + text
        await self._stop_spinner()
        if self._prompt_shown:  # a message sent on its own grew after the prompt came back
            self._fresh_line()
            addition = text
        self._write(addition)
        self._line_open = True
        return SentMessage(sent.conversation, sent.external_id, text, sent.parts)

    async def publish_commands(self, commands: Sequence[CommandInfo]) -> None:
        """Print the commands once, in a terminal."""
        if self._interactive and commands:
            names = " ".join(f"/{c.name}" for c in commands)
            self._write(f"Commands: {names}\n")

    def _end_line(self) -> None:
        if self._line_open:
            self._write("\n")
            self._line_open = False

    def _write(self, text: str) -> None:
        self._stdout.write(text)
        self._stdout.flush()
