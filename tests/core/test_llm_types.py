"""The llm value types and the package's public names."""

from __future__ import annotations

import dataclasses

import pytest

import botkit.llm
from botkit.exceptions import InvalidResponseError
from botkit.llm import ChatRequest, Completion, ToolCall, Usage


def test_usage_total_is_prompt_plus_completion() -> None:
    assert Usage(12, 30).total_tokens == 42


def test_tool_call_arguments_decode_to_a_dict() -> None:
    call = ToolCall("call_1", "get_weather", '{"city": "Oslo", "days": 2}')
    assert call.parsed_arguments() == {"city": "Oslo", "days": 2}
    assert ToolCall("call_2", "now", "").parsed_arguments() == {}


@pytest.mark.parametrize("arguments", ['{"city": "Oslo"', "[1, 2]", "nope"])
def test_tool_call_bad_arguments_raise_invalid_response(arguments: str) -> None:
    with pytest.raises(InvalidResponseError, match="get_weather"):
        ToolCall("call_1", "get_weather", arguments).parsed_arguments()


def test_chat_request_copies_its_messages_so_later_appends_do_not_change_it() -> None:
    messages = [{"role": "user", "content": "hi"}]
    request = ChatRequest(messages)
    messages.append({"role": "user", "content": "again"})
    assert len(request.messages) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.model = "other"  # type: ignore[misc]


def test_completion_as_message_carries_tool_calls_in_wire_format() -> None:
    completion = Completion(
        None, (ToolCall("call_1", "f", '{"x": 1}'),), "tool_calls", Usage(1, 1), "gpt-4o"
    )
    assert completion.as_message() == {
        "role": "assistant",
        "content": "",  # never null: llama.cpp's server refuses it
        "tool_calls": [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "f", "arguments": '{"x": 1}'},
            }
        ],
    }


def test_public_names_are_sorted_and_all_exist() -> None:
    names = botkit.llm.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(botkit.llm, name), name
