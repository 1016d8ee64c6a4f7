"""The model as handlers use it: calls recorded for cost, and whole-conversation answers.

``respond()`` is the chat skill's engine: it loads only the newest turns (never the
whole history), adds the running summary, fits the prompt to the model's window minus
the tokens reserved for the answer, folds turns that no longer fit into the summary, and
retries once with a tighter fit if the server still says the prompt is too long.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botkit.exceptions import ContextLengthError, RequestRejectedError
from botkit.history_cache import HistoryWindow, fit_window
from botkit.llm import (
    CallRecord,
    ChatMessage,
    ChatRequest,
    Completion,
    ModelInfo,
    StandInModel,
    TextDelta,
    TokenCounter,
    Usage,
    fit_messages,
)
from botkit.llm.audio import (
    AudioModel,
    Speech,
    SpeechRequest,
    Transcript,
    TranscriptionRequest,
)
from botkit.llm.audio_length import audio_seconds
from botkit.llm.standin import STAND_IN_CANNOT_LISTEN, STAND_IN_CANNOT_SPEAK
from botkit.messages import Reply
from botkit.plugin import ModelCall
from botkit.runtime import Runtime
from botkit.store import CallRow, nanos
from botkit.tools import (
    DEFAULT_TOOL_ROUNDS,
    ContextHost,
    offered_tools,
    run_tool_loop,
    tool_choice_of,
)

if TYPE_CHECKING:
    from botkit.context import Context
    from botkit.tools import Tool

__all__ = ["ConversationLLM"]

log = logging.getLogger(__name__)

SUMMARY_PROMPT = (
    "You keep a running summary of a conversation. Merge the earlier summary (if any) "
    "and the new turns into one short summary that keeps facts, names, numbers, "
    "decisions and open questions. Answer with the summary only."
)
REFIT_FACTOR = 0.7  # our token count can be off for non-OpenAI tokenizers
RESERVATION_TTL = 900.0  # seconds a dead process's spend reservation keeps counting


class ConversationLLM:
    """The bot's model, bound to the message (if any) its calls are charged to."""

    def __init__(
        self,
        runtime: Runtime,
        ctx: Context | None,
        message_id: int | None,
        conversation_id: int | None,
    ) -> None:
        self._runtime = runtime
        self._ctx = ctx
        self._message_id = message_id
        self._conversation_id = conversation_id

    @property
    def model_name(self) -> str:
        """The model answering by default."""
        return self._runtime.model.name

    @property
    def stand_in(self) -> bool:
        """Whether the offline stand-in answers: it echoes, so it cannot plan, grade or
        follow an instruction (a skill that needs a real model says so)."""
        return isinstance(self._runtime.model, StandInModel)

    @property
    def tokens(self) -> TokenCounter:
        """Counts tokens the way the default model does (to fit text into its window)."""
        return self._runtime.tokens

    def model_info(self) -> ModelInfo:
        """The default model's context window, output limit and prices."""
        return self._runtime.model.model_info()

    async def complete(self, request: ChatRequest) -> Completion:
        """Ask the model for a whole reply; every attempt is recorded with its cost.

        Raises:
            QuotaExceededError: a guard (a budget) refused the call; nothing was sent.
        """
        request = self._fitted(request)
        try:
            return await self._complete_once(request)
        except ContextLengthError as exc:
            if request.purpose == "chat":
                raise  # respond() and the tool loop fit the conversation themselves
            # a summary or a skill's call: fitted once more, to the window the server
            # stated (learnt by the client), else to a share of what was sent
            refit = self._fitted(request)
            if refit.messages == request.messages:
                sent = self._runtime.tokens.count_messages(list(request.messages))
                output = self._output_reserve(request)
                refit = self._fitted(request, budget=refit_budget(str(exc), sent, output))
            if refit.messages == request.messages:
                raise
            return await self._complete_once(refit)

    def _output_reserve(self, request: ChatRequest) -> int:
        """The tokens of the window kept for the reply to ``request``."""
        info = self._runtime.model.model_info(request.model)
        return request.max_tokens or min(
            self._runtime.chat.reserve_output_tokens, info.max_output_tokens
        )

    async def _complete_once(self, request: ChatRequest) -> Completion:
        held = await self._guard(request)
        try:
            return await self._runtime.model.complete(request, record=held.record)
        finally:
            await held.close()

    def _fitted(self, request: ChatRequest, *, budget: int | None = None) -> ChatRequest:
        """``request`` with its oldest turns dropped (and its newest cut) to fit the
        model's window as known now (a window a server stated is learnt), or ``budget``
        prompt tokens."""
        if budget is None:
            info = self._runtime.model.model_info(request.model)
            budget = info.context_window - self._output_reserve(request)
            # the byte bound first: most calls fit without the tokenizer being loaded
            if self._runtime.tokens.at_most(request.messages) <= budget and not request.tools:
                return request
        messages = list(request.messages)
        leading = next(
            (i for i, m in enumerate(messages) if m.get("role") != "system"), len(messages)
        )
        if leading == len(messages):
            return request  # nothing but instructions: nothing to drop
        fit = fit_messages(
            messages[:leading],
            messages[leading:],
            budget=max(budget, 1),
            counter=self._runtime.tokens,
        )
        if fit.messages == messages:
            return request
        return dataclasses.replace(request, messages=fit.messages)

    async def stream(self, request: ChatRequest) -> AsyncIterator[TextDelta | Completion]:
        """Ask for a streamed reply; yields fragments, then the whole ``Completion``."""
        held = await self._guard(request)
        try:
            async for event in self._runtime.model.stream(request, record=held.record):
                yield event
        finally:
            await held.close()

    async def _guard(self, request: ChatRequest) -> _HeldCall:
        """Let every plugin's ``before_model_call`` refuse the call before it is made.

        With guards (budgets), the call's worst-case cost is reserved first, so calls
        made at once see each other: the guards count every reservation made before
        this one. The reservation is settled to the real usage once known and dropped
        when the call is stored (or not made).
        """
        if not self._runtime.model_guards:
            return _HeldCall(self, None)
        model = request.model or self._runtime.model.name
        prompt_tokens = self._runtime.tokens.count_messages(list(request.messages))
        info = self._runtime.model.model_info()
        output = request.max_tokens or min(
            self._runtime.chat.reserve_output_tokens, info.max_output_tokens
        )
        cost = info.cost(Usage(prompt_tokens, output))
        return await self._hold(request, model, prompt_tokens, prompt_tokens + output, cost)

    async def _hold(
        self,
        request: ChatRequest | SpeechRequest | TranscriptionRequest,
        model: str,
        prompt_tokens: int,
        tokens: int,
        cost: Decimal | None,
    ) -> _HeldCall:
        """Reserve a call's worst case (``tokens``, ``cost``), then run the guards."""
        message = self._ctx.message if self._ctx is not None else None
        reservation = await self._runtime.store.usage.reserve(
            model=model,
            tokens=tokens,
            cost_nanos=nanos(cost),
            channel=message.channel if message is not None else None,
            user_id=message.sender.id if message is not None else None,
            ttl=RESERVATION_TTL,
        )
        held = _HeldCall(self, reservation)
        call = ModelCall(
            request=request,
            model=model,
            prompt_tokens=prompt_tokens,
            message=message,
            conversation_id=self._conversation_id,
            reservation_id=reservation,
        )
        try:
            for guard in self._runtime.model_guards:
                await guard.func(call, guard.view)
        except BaseException:
            await held.close()
            raise
        return held

    async def speak(self, request: SpeechRequest) -> Speech:
        """Speak text with the speech endpoint; recorded with its cost (per character,
        or per minute of audio) and refused by budgets like any model call.

        Raises:
            RequestRejectedError: the model cannot speak (the offline stand-in: ``code``
                ``"stand_in"``), the text is empty or too long, or the server refused.
            QuotaExceededError: a guard (a budget) refused the call; nothing was sent.
        """
        audio = self._audio_model(STAND_IN_CANNOT_SPEAK)
        held = _HeldCall(self, None)
        if self._runtime.model_guards:
            info = self._runtime.model.model_info(request.model)
            cost = info.audio_cost(characters=len(request.text))
            held = await self._hold(request, request.model, 0, 0, cost)
        try:
            return await audio.speak(request, record=held.record)
        finally:
            await held.close()

    async def transcribe(self, request: TranscriptionRequest) -> Transcript:
        """Write down audio with the transcription endpoint; recorded with its cost (per
        minute) and refused by budgets like any model call.

        Raises:
            RequestRejectedError: the model cannot listen (the offline stand-in: ``code``
                ``"stand_in"``), the file is empty or too large, or the server refused.
            QuotaExceededError: a guard (a budget) refused the call; nothing was sent.
        """
        audio = self._audio_model(STAND_IN_CANNOT_LISTEN)
        held = _HeldCall(self, None)
        if self._runtime.model_guards:
            info = self._runtime.model.model_info(request.model)
            cost = info.audio_cost(seconds=audio_seconds(request.audio))
            held = await self._hold(request, request.model, 0, 0, cost)
        try:
            return await audio.transcribe(request, record=held.record)
        finally:
            await held.close()

    def _audio_model(self, cannot: str) -> AudioModel:
        """The bot's model as one that speaks and listens, or the error that it cannot."""
        model = self._runtime.model
        if not isinstance(model, AudioModel):
            raise RequestRejectedError("llm", cannot, code="stand_in")
        return model

    async def respond(
        self,
        *,
        system_prompt: str | None = None,
        stream: bool | None = None,
        tools: Sequence[Tool] | None = None,
        max_tool_rounds: int | None = None,
        tool_choice: str | Mapping[str, Any] | None = None,
    ) -> Reply | None:
        """Answer the current message from the conversation's history.

        Args:
            system_prompt: overrides the bot's system prompt.
            stream: stream the answer (edits in place); defaults to the bot's ``stream``
                setting. Never streamed to a channel that cannot edit: it would show the
                whole answer in one message anyway.
            tools: commands the model may call (function calling); ``None`` offers every
                command the loaded plugins declared with :func:`botkit.tool`, ``()`` none.
            max_tool_rounds: the most rounds of tool calls before the model must answer
                in words (default :data:`botkit.tools.DEFAULT_TOOL_ROUNDS`).
            tool_choice: whether the model may call tools in its first request:
                ``"auto"``, ``"none"``, ``"required"``, the name of one of ``tools`` (it
                must call that one), or a mapping in the wire format; ``None`` leaves it
                to the server (``"auto"``). Later requests of the answer never force a
                call again.

        Returns:
            The reply to send, or ``None`` when it was already streamed.

        Raises:
            ValueError: ``tool_choice`` names a tool that is not offered.
        """
        ctx = self._ctx
        if ctx is None or self._conversation_id is None:
            raise RuntimeError("respond() needs a message to answer")
        settings = self._runtime.chat
        info = self._runtime.model.model_info()
        reserve = max(1, min(settings.reserve_output_tokens, info.max_output_tokens))
        offered = offered_tools(ctx) if tools is None else list(tools)
        definitions = [tool.definition() for tool in offered]
        choice = tool_choice_of(tool_choice, offered) if offered else None
        ledger = ctx.tool_ledger()
        # the tool definitions travel with every request: keep room for them
        tool_tokens = self._runtime.tokens.count(repr(definitions)) if offered else 0
        budget = max(info.prompt_budget(reserve) - tool_tokens, 1)
        before_id = ctx.message.id + 1 if ctx.message.id is not None else None
        if before_id is None:  # not stored (a test's message): nothing to read
            window = HistoryWindow(None, [])
        else:
            window = await self._runtime.history.window(
                self._runtime.store,
                self._runtime.tokens,
                self._conversation_id,
                before_id=before_id,
                limit=settings.history_limit,
            )
        # the window's own list, not a copy: a long one costs a walk of its turns, and
        # nothing here changes it in place
        summary, turns = window.summary, window.turns
        system = _system(system_prompt or settings.system_prompt, summary)
        contributed = await self._prompt_context(ctx, system, budget)
        system += contributed
        counter = self._runtime.tokens
        fit = fit_window(
            system,
            turns,
            budget=budget,
            counter=counter,
            bound=window.bound,
            encoded=window.encoded,
        )
        if fit.dropped and settings.summarize and turns:
            dropped = turns[: len(fit.dropped)]
            summary = await self._fold(summary, fit.dropped, dropped[-1].row.id)
            system = _system(system_prompt or settings.system_prompt, summary) + contributed
            turns = turns[len(fit.dropped) :]
            fit = fit_window(system, turns, budget=budget, counter=counter)
        # a stream only where it shows: a channel that cannot edit gets the whole answer
        # in one message anyway, and a plain call costs less (and is stored with the
        # message's outcome in one transaction)
        adapter = self._runtime.adapters.get(ctx.message.channel)
        shows = adapter is not None and adapter.capabilities.edits
        use_stream = (settings.stream if stream is None else stream) and shows
        for attempt in (1, 2):
            request = ChatRequest(
                messages=fit.messages,
                max_tokens=reserve,
                temperature=settings.temperature,
                tools=definitions,
                tool_choice=choice,
                purpose="chat",
            )
            try:
                if offered:
                    rounds = DEFAULT_TOOL_ROUNDS if max_tool_rounds is None else max_tool_rounds
                    return await run_tool_loop(
                        self,
                        ContextHost(ctx),
                        request,
                        offered,
                        turn=ctx.turn,
                        stream=use_stream,
                        max_rounds=rounds,
                        ledger=ledger,
                    )
                if use_stream:
                    await ctx.stream(self._texts(request))
                    return None
                # fitted above: not bounded again
                completion = await self._complete_once(request)
                return Reply(completion.content or "")
            except ContextLengthError as exc:
                if attempt == 2:
                    raise
                # counted now: a prompt that fitted by its byte bound was not counted
                sent = self._runtime.tokens.count_messages(fit.messages)
                budget = refit_budget(str(exc), sent, reserve)
                try:
                    refit = fit_window(system, turns, budget=budget, counter=counter)
                except ContextLengthError:
                    raise exc from None  # not even the new turn alone fits: give up
                if refit.messages == fit.messages:
                    raise  # nothing left to drop: the same request would fail again
                fit = refit
        raise AssertionError("unreachable")  # pragma: no cover

    async def _prompt_context(
        self, ctx: Context, system: list[ChatMessage], budget: int
    ) -> list[ChatMessage]:
        """System messages the plugins' ``prompt_context`` functions add for this answer.

        They share at most half the room the system prompt and the new message leave,
        so the conversation's recent turns keep the other half.
        """
        entries = self._runtime.prompt_contexts
        if not entries:
            return []
        counter = self._runtime.tokens
        used = counter.at_most([*system, {"role": "user", "content": ctx.message.text}])
        room = max(0, budget - used) // 2
        added: list[ChatMessage] = []
        for entry in entries:
            if room < 1:
                break
            own = ctx.for_handler(entry.plugin, args=ctx.args, match=ctx.match)
            try:
                text = await entry.func(ctx.message, own, room)
            except Exception:  # one plugin's context must not stop the answer
                log.exception("prompt context of plugin %r failed", entry.plugin)
                continue
            if not text:
                continue
            message: ChatMessage = {"role": "system", "content": text}
            size = counter.count_message(message)
            if size > room:
                log.warning(
                    "prompt context of plugin %r left out: %d tokens, room for %d",
                    entry.plugin,
                    size,
                    room,
                )
                continue
            added.append(message)
            room -= size
        return added

    async def _texts(self, request: ChatRequest) -> AsyncIterator[str]:
        async for event in self.stream(request):
            if isinstance(event, TextDelta):
                yield event.text

    async def _fold(
        self, summary: tuple[str, int] | None, dropped: list[ChatMessage], through_id: int
    ) -> tuple[str, int]:
        """Fold turns that no longer fit into the running summary."""
        assert self._conversation_id is not None
        earlier = f"Earlier summary:\n{summary[0]}\n\n" if summary else ""
        turns = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in dropped)
        completion = await self.complete(
            ChatRequest(
                messages=[
                    {"role": "system", "content": SUMMARY_PROMPT},
                    {"role": "user", "content": f"{earlier}New turns:\n{turns}"},
                ],
                max_tokens=512,
                purpose="summary",
            )
        )
        text = (completion.content or "").strip()
        await self._runtime.store.history.save_summary(self._conversation_id, text, through_id)
        self._runtime.history.folded(self._conversation_id, (text, through_id))
        return text, through_id

    async def _record(self, record: CallRecord, reservation: int | None = None) -> None:
        message = self._ctx.message if self._ctx is not None else None
        row = CallRow(
            purpose=record.purpose,
            model=record.model,
            prompt_tokens=record.prompt_tokens,
            completion_tokens=record.completion_tokens,
            cost_nanos=nanos(record.cost),
            latency_ms=record.latency_s * 1000,
            ok=record.ok,
            error=record.error,
            attempt=record.attempt,
            usage_estimated=record.estimated,
            message_id=self._message_id,
            conversation_id=self._conversation_id,
            channel=message.channel if message is not None else None,
            user_id=message.sender.id if message is not None else None,
            reservation_id=reservation,
        )
        deferred = self._ctx.deferred_calls if self._ctx is not None else None
        if deferred is not None:
            deferred.append(row)  # stored with the message's outcome, in one transaction
            if reservation is None:
                self._runtime.store.usage.note_unsaved(row)  # budgets count it meanwhile
            # else: its reservation, settled to this usage, counts it meanwhile
        else:
            await self._runtime.store.usage.record_call(row)
        metrics = self._runtime.metrics
        metrics.model_latency.labels(record.model).observe(record.latency_s)
        if record.prompt_tokens:
            metrics.tokens.labels(record.model, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            metrics.tokens.labels(record.model, "completion").inc(record.completion_tokens)
        if record.cost:
            metrics.cost.labels(record.model).inc(float(record.cost))
        elif record.cost is None and record.ok:  # the model table has no price for it
            metrics.unpriced.labels(record.model).inc()
        if not record.ok:
            metrics.failures.labels("model").inc()
            metrics.model_errors.labels(record.model, record.error_kind or "other").inc()


class _HeldCall:
    """One model call's spend reservation, from the guards to the call's last record."""

    def __init__(self, llm: ConversationLLM, reservation: int | None) -> None:
        self._llm = llm
        self._reservation = reservation
        self._settled = False

    async def record(self, record: CallRecord) -> None:
        """Record an attempt; the one that produced the reply settles the reservation
        to its usage and is stored with it (which drops the reservation)."""
        reservation = self._reservation if record.ok and not self._settled else None
        if reservation is not None:
            self._settled = True
            tokens = (record.prompt_tokens or 0) + (record.completion_tokens or 0)
            await self._llm._runtime.store.usage.settle_reservation(
                reservation, tokens=tokens, cost_nanos=nanos(record.cost)
            )
        await self._llm._record(record, reservation)

    async def close(self) -> None:
        """No attempt produced a reply (or none was made): the hold goes."""
        if self._reservation is not None and not self._settled:
            self._settled = True
            await self._llm._runtime.store.usage.release_reservation(self._reservation)


def refit_budget(error: str, sent_tokens: int, reserve: int) -> int:
    """A smaller prompt budget after the server said the prompt was too long.

    When the server says how long the window is and how long it counted the prompt
    (OpenAI: "maximum context length is 8192 tokens. However, your messages resulted in
    9001 tokens"), scale our count of what was sent to its window; otherwise, aim for
    ``REFIT_FACTOR`` of what was sent.
    """
    window = _CONTEXT_WINDOW.search(error)
    counted = _PROMPT_TOKENS.search(error)
    if window and counted and int(counted.group(1)) > 0:
        server_budget = int(window.group(1)) - reserve
        scale = server_budget / int(counted.group(1))
        return max(1, int(sent_tokens * min(scale, REFIT_FACTOR) * 0.95))
    return max(1, int(sent_tokens * REFIT_FACTOR))


_CONTEXT_WINDOW = re.compile(r"maximum context length is (\d+)")
_PROMPT_TOKENS = re.compile(r"(?:resulted in|requested) (\d+) tokens")


def _system(prompt: str, summary: tuple[str, int] | None) -> list[ChatMessage]:
    system: list[ChatMessage] = [{"role": "system", "content": prompt}]
    if summary and summary[0]:
        system.append(
            {"role": "system", "content": f"Summary of the conversation so far:\n{summary[0]}"}
        )
    return system
