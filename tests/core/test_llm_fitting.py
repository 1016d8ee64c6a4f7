"""Fitting history into the window: system kept, oldest dropped, tool pairs together."""

from __future__ import annotations

import time
from typing import Any

import pytest

from botkit.exceptions import ContextLengthError
from botkit.llm import ChatMessage, TokenCounter, fit_messages
from botkit.llm.fitting import TRUNCATION_MARKER

SYSTEM = [{"role": "system", "content": "You are a terse assistant."}]


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter("cl100k_base")


def user(text: str) -> ChatMessage:
    return {"role": "user", "content": text}


def assistant(text: str) -> ChatMessage:
    return {"role": "assistant", "content": text}


def call(*ids: str) -> ChatMessage:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": i, "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            for i in ids
        ],
    }


def result(call_id: str, text: str = "forty-two") -> ChatMessage:
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def turns(n: int) -> list[ChatMessage]:
    return [user(f"question {i}") if i % 2 == 0 else assistant(f"answer {i}") for i in range(n)]


def test_everything_fits_nothing_is_dropped(counter: TokenCounter) -> None:
    history = turns(6)
    fit = fit_messages(SYSTEM, history, budget=10_000, counter=counter)
    assert fit.messages == [*SYSTEM, *history]
    assert fit.dropped == []
    assert fit.tokens >= counter.count_messages(fit.messages)  # the byte bound
    assert not fit.truncated


@pytest.mark.parametrize("encoding", ["cl100k_base", "o200k_base", None])
def test_a_prompt_far_inside_the_window_is_fitted_without_loading_the_tokenizer(
    encoding: str | None,
) -> None:
    fresh = TokenCounter(encoding)
    history = [*turns(6), {"role": "user", "content": "ünïcödé 你好 🙂"}]
    fit = fit_messages(SYSTEM, history, budget=10_000, counter=fresh)
    assert fit.messages == [*SYSTEM, *history]
    assert not fresh.loaded
    # the bound is a bound, whatever the script
    assert fit.tokens >= fresh.count_messages(fit.messages)
    assert fresh.loaded


def test_a_prompt_near_the_window_is_counted_exactly(counter: TokenCounter) -> None:
    history = turns(10)
    exact = counter.count_messages([*SYSTEM, *history])
    fit = fit_messages(SYSTEM, history, budget=exact, counter=counter)
    assert fit.messages == [*SYSTEM, *history]
    assert fit.tokens == exact


def test_oldest_turns_are_dropped_first_and_system_is_kept(counter: TokenCounter) -> None:
    history = turns(10)
    keep_last_four = counter.count_messages([*SYSTEM, *history[-4:]])
    fit = fit_messages(SYSTEM, history, budget=keep_last_four, counter=counter)
    assert fit.messages == [*SYSTEM, *history[-4:]]
    assert fit.dropped == history[:-4]
    assert fit.tokens == keep_last_four


def test_one_token_short_drops_one_more_turn(counter: TokenCounter) -> None:
    history = turns(10)
    keep_last_four = counter.count_messages([*SYSTEM, *history[-4:]])
    fit = fit_messages(SYSTEM, history, budget=keep_last_four - 1, counter=counter)
    assert fit.messages == [*SYSTEM, *history[-3:]]
    assert fit.tokens <= keep_last_four - 1


def test_a_tool_call_and_its_results_are_dropped_together(counter: TokenCounter) -> None:
    history = [
        user("old"),
        call("a", "b"),
        result("a"),
        result("b"),
        assistant("done"),
        user("new question"),
    ]
    # room for the call's last result but not for the call itself
    budget = counter.count_messages([*SYSTEM, *history[3:]])
    fit = fit_messages(SYSTEM, history, budget=budget, counter=counter)
    assert fit.messages == [*SYSTEM, *history[4:]]
    assert fit.dropped == history[:4]


def test_a_tool_call_and_its_results_are_kept_together(counter: TokenCounter) -> None:
    history = [user("old"), call("a"), result("a"), assistant("done"), user("new question")]
    budget = counter.count_messages([*SYSTEM, *history[1:]])
    fit = fit_messages(SYSTEM, history, budget=budget, counter=counter)
    assert fit.messages == [*SYSTEM, *history[1:]]
    assert fit.dropped == [history[0]]


def test_orphan_tool_results_and_unanswered_calls_are_never_sent(counter: TokenCounter) -> None:
    history = [
        result("gone"),  # its call was dropped before
        user("q1"),
        call("x", "y"),
        result("x"),  # "y" never answered
        user("q2"),
    ]
    fit = fit_messages(SYSTEM, history, budget=10_000, counter=counter)
    assert fit.messages == [*SYSTEM, history[1], history[4]]
    assert fit.dropped == [history[0], history[2], history[3]]


def test_a_pending_tool_round_at_the_end_is_kept_whole(counter: TokenCounter) -> None:
    history = [*turns(4), user("weather?"), call("w"), result("w", "sunny")]
    fit = fit_messages(SYSTEM, history, budget=10_000, counter=counter)
    assert fit.messages[-3:] == history[-3:]


def test_new_turn_is_kept_even_when_only_it_fits(counter: TokenCounter) -> None:
    history = [*turns(6), user("the new turn")]
    budget = counter.count_messages([*SYSTEM, history[-1]])
    fit = fit_messages(SYSTEM, history, budget=budget, counter=counter)
    assert fit.messages == [*SYSTEM, history[-1]]
    assert fit.dropped == history[:-1]


def test_new_turn_too_long_alone_is_cut_from_the_front(counter: TokenCounter) -> None:
    long_text = " ".join(f"word{i}" for i in range(3000)) + " THE END"
    history = [*turns(4), user(long_text)]
    budget = 500
    fit = fit_messages(SYSTEM, history, budget=budget, counter=counter)
    last = fit.messages[-1]
    assert fit.truncated
    assert fit.messages[:-1] == SYSTEM
    assert last["content"].startswith(TRUNCATION_MARKER)
    assert last["content"].endswith("THE END")
    assert long_text.endswith(last["content"].removeprefix(TRUNCATION_MARKER))
    assert fit.tokens <= budget
    assert fit.tokens == counter.count_messages(fit.messages)
    # it uses most of the room rather than cutting far too much
    assert fit.tokens > budget * 0.8
    assert history[-1]["content"] == long_text  # the caller's message is not changed


def test_system_prompt_larger_than_the_budget_is_a_context_length_error(
    counter: TokenCounter,
) -> None:
    system = [{"role": "system", "content": "rules " * 500}]
    with pytest.raises(ContextLengthError, match="system prompt"):
        fit_messages(system, [user("hi")], budget=100, counter=counter)


def test_precomputed_counts_are_used_instead_of_counting(counter: TokenCounter) -> None:
    history = turns(4)
    # pretend the second message is huge: it and everything older must go
    counts = [5, 5_000, 5, 5]
    fit = fit_messages(SYSTEM, history, budget=100, counter=counter, counts=counts)
    assert fit.messages == [*SYSTEM, *history[2:]]


def test_counts_of_the_wrong_length_are_refused(counter: TokenCounter) -> None:
    with pytest.raises(ValueError, match="counts"):
        fit_messages(SYSTEM, turns(3), budget=100, counter=counter, counts=[1, 2])


def test_no_history_gives_just_the_system_prompt(counter: TokenCounter) -> None:
    fit = fit_messages(SYSTEM, [], budget=100, counter=counter)
    assert fit.messages == SYSTEM
    assert fit.tokens == counter.count_messages(SYSTEM)


class CountingCounter(TokenCounter):
    """Counts how often each message is counted."""

    def __init__(self) -> None:
        super().__init__("cl100k_base")
        self.calls = 0

    def count_message(self, message: dict[str, Any]) -> int:
        self.calls += 1
        return super().count_message(message)


def test_each_message_is_counted_once() -> None:
    counter = CountingCounter()
    history = turns(300)
    fit_messages(SYSTEM, history, budget=200, counter=counter)
    assert counter.calls == len(SYSTEM) + len(history)


def test_a_128k_token_history_fits_in_well_under_50_ms(counter: TokenCounter) -> None:
    sentence = "The meeting moved to Thursday because the venue was double booked again. "
    history = [user(sentence * 5) if i % 2 == 0 else assistant(sentence * 5) for i in range(2_000)]
    counts = [counter.count_message(m) for m in history]
    assert sum(counts) > 128_000
    best = float("inf")
    for _ in range(3):  # CPU time of this thread: other processes' load does not count
        started = time.thread_time()
        fit = fit_messages(SYSTEM, history, budget=120_000, counter=counter, counts=counts)
        best = min(best, time.thread_time() - started)
    assert fit.tokens <= 120_000
    assert fit.dropped
    assert best < 0.05
