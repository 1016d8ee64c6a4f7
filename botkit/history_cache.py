"""The recent turns of active conversations, kept in memory, so that an answer costs the
same at any conversation length.

Without it every message read the newest ``history_limit`` turns (up to 200 rows),
rendered them as chat messages and bounded their tokens again. The cache keeps, per
conversation, the turns that can no longer change (a handled message, a delivered
reply) rendered, with their token bound and, once fitting needed it, their exact token
count. An answer then reads only the turns since the first one that could still change
(its own message, the previous reply if still on its way): a few rows through the
(conversation, id) index. The same read brings where history starts, the running
summary and when the conversation last changed out of order (``/reset``, a held message
released), so what another process did is seen and the entry rebuilt.

On SQLite that read is made in the transaction that accepts the message (the inbox asks
:meth:`HistoryCache.plan`), so the answer itself reads nothing: one transaction fewer
per message. It is used only if nothing it holds can have changed since (see
:meth:`HistoryCache.plan`); else the answer reads as above.

Entries are per process, bounded by count and by the bytes of text they hold (each
turn's text, and its message as JSON, encoded once for every request that sends it),
and dropped when idle; a miss costs one read of the newest turns, as before.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from sys import intern

from botkit.llm import ChatMessage, FitResult, TokenCounter, fit_messages
from botkit.llm.encoded import EncodedMessages, encode
from botkit.store import ContextPlan, ContextRead, HistoryTurn, Store

__all__ = [
    "CachedTurn",
    "HistoryCache",
    "HistoryWindow",
    "ReadAhead",
    "TurnRow",
    "fit_window",
]

# statuses after which a history turn never changes again: its text and its place in
# history are final (pending, processing, sending and streaming turns may still change
# or drop out, so they are read again until they settle)
SETTLED_IN = frozenset({"done", "context"})
SETTLED_OUT = frozenset({"delivered"})

MAX_CONVERSATIONS = 4096
MAX_BYTES = 64 * 1024 * 1024  # of turn text and its JSON, over every cached conversation
MAX_IDLE = 900.0  # seconds a conversation stays cached without a message


@dataclass(frozen=True, slots=True)
class TurnRow:
    """What a cached turn keeps of its stored message (not its metadata: memory)."""

    id: int
    direction: str
    sender_id: str | None
    sender_name: str | None
    text: str


@dataclass(slots=True)
class CachedTurn:
    """One history turn as the model is sent it.

    Attributes:
        row: the stored message, what of it the prompt needs.
        message: the chat message it becomes.
        bound: an upper bound of its tokens (``TokenCounter.at_most`` without the reply
            priming), found without the tokenizer.
        tokens: its exact token count, once fitting needed it (counted once).
        size: the bytes it takes in its conversation's encoded turns (its JSON and a
            comma).
    """

    row: TurnRow
    message: ChatMessage
    bound: int
    tokens: int | None = None
    size: int = 0

    def count(self, counter: TokenCounter) -> int:
        """Its exact token count, counted on first use."""
        if self.tokens is None:
            self.tokens = counter.count_message(self.message)
        return self.tokens


@dataclass(frozen=True, slots=True)
class HistoryWindow:
    """The history an answer is built from: the summary and the turns after it.

    ``encoded`` is the turns' messages as JSON, each after a comma but the first (what
    goes inside a JSON array), or ``None`` when not made.
    """

    summary: tuple[str, int] | None
    turns: Sequence[CachedTurn]
    bound: int = 0  # the sum of the turns' bounds
    encoded: bytes | None = None

    @property
    def messages(self) -> list[ChatMessage]:
        """The turns as chat messages, oldest first."""
        return [turn.message for turn in self.turns]


def fit_window(
    system: Sequence[ChatMessage],
    turns: Sequence[CachedTurn],
    *,
    budget: int,
    counter: TokenCounter,
    bound: int | None = None,
    encoded: bytes | None = None,
) -> FitResult:
    """:func:`~botkit.llm.fit_messages` over cached turns: their bounds (summed, unless
    ``bound`` is their sum) decide whether everything fits (no tokenizer, nothing
    counted); otherwise each turn is counted once and the fit drops the oldest.

    When all fits and ``encoded`` holds the turns' JSON (``HistoryWindow.encoded``), the
    prompt is :class:`~botkit.llm.encoded.EncodedMessages`: its body is that JSON with
    the system messages' before it.
    """
    if bound is None:
        bound = sum(turn.bound for turn in turns)
    bound += counter.at_most(system)
    if bound <= budget:
        if encoded is not None:
            return FitResult(_encoded_prompt(system, turns, encoded), [], bound)
        return FitResult([*system, *(turn.message for turn in turns)], [], bound)
    history = [turn.message for turn in turns]
    counts = [turn.count(counter) for turn in turns]
    return fit_messages(system, history, budget=budget, counter=counter, counts=counts)


def _encoded_prompt(
    system: Sequence[ChatMessage], turns: Sequence[CachedTurn], encoded: bytes
) -> EncodedMessages:
    """The system messages and the turns, with the turns' JSON made already."""
    head = encode(list(system))[:-1]  # "[" and the system messages
    comma = b"," if system and turns else b""
    return EncodedMessages(
        (*system, *(turn.message for turn in turns)), b"".join((head, comma, encoded, b"]"))
    )


@dataclass(slots=True)
class _Entry:
    start: int
    summary: tuple[str, int] | None
    changed_at: datetime | None
    settled: list[CachedTurn]  # oldest first, every one settled
    through: int  # every history turn at or below this id is in ``settled`` (or older)
    named: bool  # whether ``settled`` was rendered with speakers' names
    speakers: Counter[str] = field(default_factory=Counter)
    size: int = 0
    bound: int = 0  # the sum of the settled turns' bounds
    used: float = 0.0
    version: int = 0  # grows with every change: a read planned before one is not used
    # the settled turns' messages as JSON, each followed by a comma: a request's body
    # copies it, instead of encoding every turn again (``CachedTurn.size`` each)
    encoded: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True, slots=True)
class _Planned:
    """A read planned for the transaction that accepts a message (see :meth:`plan`)."""

    entry: _Entry
    version: int
    changes: int  # the store's context_changes when it was planned
    plan: ContextPlan


@dataclass(frozen=True, slots=True)
class _Prefetched:
    """The turns read with a message as it was accepted, for its answer."""

    planned: _Planned
    before_id: int
    read: ContextRead


@dataclass(frozen=True, slots=True)
class ReadAhead:
    """What the inbox needs to read an answer's new turns in the transaction that
    accepts its message (SQLite; see :meth:`HistoryCache.plan`).

    Attributes:
        cache: the bot's history cache.
        limit: the history limit answers use (``[bot] history_limit``).
    """

    cache: HistoryCache
    limit: int


class HistoryCache:
    """Per-process memory of active conversations' settled turns (see the module)."""

    def __init__(
        self,
        *,
        max_conversations: int = MAX_CONVERSATIONS,
        max_bytes: int = MAX_BYTES,
        max_idle: float = MAX_IDLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._max_conversations = max_conversations
        self._max_bytes = max_bytes
        self._max_idle = max_idle
        self._clock = clock
        self._bytes = 0
        self._planned: dict[int, _Planned] = {}
        self._prefetched: dict[int, _Prefetched] = {}
        self.hits = 0
        self.misses = 0
        self.read_ahead = 0  # hits answered from the read made as the message was accepted

    def __len__(self) -> int:
        return len(self._entries)

    async def window(
        self,
        store: Store,
        counter: TokenCounter,
        conversation_id: int,
        *,
        before_id: int,
        limit: int,
    ) -> HistoryWindow:
        """The summary and the newest ``limit`` history turns before ``before_id``.

        What :meth:`HistoryStore.recent_turns` reads, rendered; read from the
        database only from the first turn this process has not seen settle.
        """
        now = self._clock()
        ahead = self._prefetched.pop(conversation_id, None)
        entry = self._entries.get(conversation_id)
        if entry is not None and (now - entry.used > self._max_idle or before_id <= entry.through):
            # idle too long, or an older message answered again: its history ends earlier
            self._drop(conversation_id)
            entry = None
        if entry is None:
            self.misses += 1
            read = await store.history.recent_turns(
                conversation_id, before_id=before_id, limit=limit
            )
            entry = _Entry(read.start, read.summary, read.changed_at, [], 0, False)
        else:
            self.hits += 1
            if ahead is not None and _current(ahead, entry, before_id, limit, store):
                self.read_ahead += 1
                read = ahead.read
            else:
                read = await store.history.recent_turns(
                    conversation_id, before_id=before_id, limit=limit, after_id=entry.through
                )
            if read.changed_at != entry.changed_at or len(read.turns) >= limit:
                # changed out of order, or more new turns than a window holds: the read
                # holds everything after its start (or the whole window) by itself
                if read.changed_at != entry.changed_at:
                    self.hits -= 1
                    self.misses += 1
                    read = await store.history.recent_turns(
                        conversation_id, before_id=before_id, limit=limit
                    )
                self._drop(conversation_id)
                entry = _Entry(read.start, read.summary, read.changed_at, [], 0, False)
            else:
                self._drop(conversation_id)
                self._forget_older(entry, read)
        entry.used = now
        turns, bound, encoded = self._merge(entry, read.turns, counter, limit)
        entry.version += 1
        self._keep(conversation_id, entry)
        return HistoryWindow(entry.summary, turns, bound, encoded)

    def plan(self, conversation_id: int | None, *, limit: int, changes: int) -> ContextPlan | None:
        """The turns to read as a message of the conversation is accepted, so that its
        answer need not read them again; ``None`` when nothing of it is kept.

        For SQLite only: a turn stored after that read has a higher id than the message
        (one writer, ids in commit order), so it is not in the answer's history anyway.
        The read is used by :meth:`window` only if nothing changed meanwhile: the entry,
        the store's ``context_changes`` (``changes`` now), and every turn before the
        message was settled when read.
        """
        if conversation_id is None:
            return None
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        plan = ContextPlan(conversation_id, entry.through, limit)
        self._planned[conversation_id] = _Planned(entry, entry.version, changes, plan)
        return plan

    def prefetched(
        self, conversation_id: int, before_id: int, plan: ContextPlan, read: ContextRead
    ) -> None:
        """What :meth:`plan` asked for was read, for the answer to the message just
        below ``before_id``."""
        planned = self._planned.pop(conversation_id, None)
        if planned is not None and planned.plan is plan:
            self._prefetched[conversation_id] = _Prefetched(planned, before_id, read)

    def folded(self, conversation_id: int, summary: tuple[str, int]) -> None:
        """The turns through ``summary[1]`` were folded into ``summary`` by this process."""
        entry = self._entries.get(conversation_id)
        if entry is not None:
            self._drop(conversation_id)
            entry.summary = summary
            self._trim(entry, lambda turn: turn.row.id <= summary[1])
            entry.version += 1
            self._keep(conversation_id, entry)

    def forget(self, conversation_id: int) -> None:
        """Drop what is kept of a conversation (it is read afresh next time)."""
        self._drop(conversation_id)

    def _forget_older(self, entry: _Entry, read: ContextRead) -> None:
        """Drop kept turns that a new start or summary (from any process) left out."""
        floor = max(read.start, read.summary[1] if read.summary else 0)
        entry.start, entry.summary = read.start, read.summary
        if entry.settled and entry.settled[0].row.id <= floor:
            self._trim(entry, lambda turn: turn.row.id <= floor)

    def _merge(
        self, entry: _Entry, rows: list[HistoryTurn], counter: TokenCounter, limit: int
    ) -> tuple[list[CachedTurn], int, bytes]:
        """Add the settled turns read to the entry's; returns the window's turns, the
        sum of their bounds, and their JSON (``HistoryWindow.encoded``)."""
        # the settled prefix of what was read joins the kept turns; the first turn that
        # may still change, and all after it, are read again next time
        if entry.settled:  # another answer in this conversation added some meanwhile
            newest = entry.settled[-1].row.id
            rows = [row for row in rows if row.id > newest]
        cut = next((i for i, row in enumerate(rows) if not _settled(row)), len(rows))
        for row in rows[:cut]:
            self._add(entry, *_turn(row, entry.named, counter))
        if cut < len(rows):
            entry.through = max(entry.through, rows[cut].id - 1)
        elif rows:
            entry.through = max(entry.through, rows[-1].id)
        unsettled = rows[cut:]
        room = max(limit - len(unsettled), 0)
        if len(entry.settled) > room:
            oldest_kept = entry.settled[len(entry.settled) - room].row.id if room else None
            self._trim(entry, lambda t: oldest_kept is None or t.row.id < oldest_kept)
        # speakers are named when several people talk in the window
        speakers = entry.speakers + Counter(_speaker(r) for r in unsettled if r.direction == "in")
        named = len(speakers) > 1
        if named != entry.named:
            renamed = [_turn(t.row, named, counter) for t in entry.settled]
            entry.size -= sum(t.size for t in entry.settled)
            entry.settled = [turn for turn, _ in renamed]
            entry.encoded = bytearray(b"".join(encoded + b"," for _, encoded in renamed))
            entry.size += len(entry.encoded)
            entry.bound = sum(t.bound for t in entry.settled)
            entry.named = named
        opened = [_turn(row, named, counter) for row in unsettled]
        open_turns = [turn for turn, _ in opened]
        if opened:
            encoded = b"".join((entry.encoded, b",".join(json for _, json in opened)))
        else:
            encoded = bytes(entry.encoded[:-1])  # without its last comma
        bound = entry.bound + sum(t.bound for t in open_turns)
        return [*entry.settled, *open_turns], bound, encoded

    def _add(self, entry: _Entry, turn: CachedTurn, encoded: bytes) -> None:
        entry.settled.append(turn)
        entry.encoded += encoded
        entry.encoded += b","
        entry.size += len(turn.row.text) + turn.size
        entry.bound += turn.bound
        if turn.row.direction == "in":
            entry.speakers[_speaker(turn.row)] += 1

    def _trim(self, entry: _Entry, gone: Callable[[CachedTurn], bool]) -> None:
        """Drop the oldest settled turns while ``gone`` says so."""
        cut = encoded = 0
        while cut < len(entry.settled) and gone(entry.settled[cut]):
            turn = entry.settled[cut]
            entry.size -= len(turn.row.text) + turn.size
            entry.bound -= turn.bound
            encoded += turn.size
            if turn.row.direction == "in":
                entry.speakers[_speaker(turn.row)] -= 1
            cut += 1
        if cut:
            del entry.settled[:cut]
            del entry.encoded[:encoded]
            entry.speakers = +entry.speakers

    def _keep(self, conversation_id: int, entry: _Entry) -> None:
        """Store the entry as the most recently used, evicting the least recent ones."""
        self._bytes += entry.size
        self._entries[conversation_id] = entry
        self._entries.move_to_end(conversation_id)
        while self._entries and (
            len(self._entries) > self._max_conversations or self._bytes > self._max_bytes
        ):
            oldest = next(iter(self._entries))
            self._drop(oldest)

    def _drop(self, conversation_id: int) -> None:
        self._planned.pop(conversation_id, None)
        self._prefetched.pop(conversation_id, None)
        entry = self._entries.pop(conversation_id, None)
        if entry is not None:
            self._bytes -= entry.size


def _current(ahead: _Prefetched, entry: _Entry, before_id: int, limit: int, store: Store) -> bool:
    """Whether the turns read ahead are what a read now would find (see ``plan``)."""
    planned = ahead.planned
    return (
        planned.entry is entry
        and planned.version == entry.version
        and planned.changes == store.inbound.context_changes
        and ahead.before_id == before_id
        and planned.plan.limit == limit
        and planned.plan.after_id == entry.through
        # the message itself may still be pending; a turn before it that was not
        # settled may have changed since
        and all(_settled(row) for row in ahead.read.turns if row.id < before_id - 1)
    )


def _speaker(row: TurnRow | HistoryTurn) -> str:
    return row.sender_id or ""


def _settled(row: HistoryTurn) -> bool:
    return row.status in (SETTLED_IN if row.direction == "in" else SETTLED_OUT)


def _shared(text: str | None) -> str | None:
    # every row read brings its own copy of the same few names: one copy for all turns
    return None if text is None else intern(text)


def _turn(
    row: TurnRow | HistoryTurn, named: bool, counter: TokenCounter
) -> tuple[CachedTurn, bytes]:
    """A stored turn as a chat message, and that message's JSON; speakers are named
    when several people talk."""
    message: ChatMessage
    if row.direction == "out":
        message = {"role": "assistant", "content": row.text}
    else:
        text = f"{row.sender_name or row.sender_id}: {row.text}" if named else row.text
        message = {"role": "user", "content": text}
    kept = (
        row
        if isinstance(row, TurnRow)
        else TurnRow(
            row.id,
            intern(row.direction),
            _shared(row.sender_id),
            _shared(row.sender_name),
            row.text,
        )
    )
    encoded = encode(message)
    bound = counter.at_most([message]) - counter.reply_priming()
    return CachedTurn(kept, message, bound, size=len(encoded) + 1), encoded
