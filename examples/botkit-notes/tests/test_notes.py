"""The notes plugin, tested the way people and the model use it."""

from __future__ import annotations

from importlib.metadata import entry_points

from botkit_notes import plugin as notes

from botkit.testing import FakeModel, TestBot, run_bot
from botkit_chat import plugin as chat


async def test_people_keep_list_and_forget_notes(testbot: TestBot) -> None:
    assert await testbot.ask("/notes") == "No notes yet."
    assert await testbot.ask("/note buy milk") == "Noted (1): buy milk"
    assert await testbot.ask("/note call Ann") == "Noted (2): call Ann"
    assert await testbot.ask("/notes") == "1. buy milk\n2. call Ann"
    assert await testbot.ask("/forget 1") == "Forgot: buy milk"
    assert await testbot.ask("/forget 7") == "There is no note 7."
    assert await testbot.ask("/forget one") == (
        "number: 'one' is not of type 'integer'\nUsage: /forget <number>"
    )


async def test_notes_are_per_conversation_and_capped_by_the_settings(testbot: TestBot) -> None:
    for n in range(5):
        await testbot.ask(f"/note item {n}")
    assert await testbot.ask("/notes") == "1. item 2\n2. item 3\n3. item 4"
    assert await testbot.ask("/notes", chat="elsewhere") == "No notes yet."


async def test_the_model_lists_notes_by_itself_but_asks_before_adding_one(
    testbot: TestBot,
) -> None:
    await testbot.ask("/note the demo is on Friday")
    testbot.model.call_tool("notes").reply("You noted that the demo is on Friday.")
    assert await testbot.ask("what did we note?") == "You noted that the demo is on Friday."
    tool_result = testbot.model.requests[-1].messages[-1]
    assert tool_result["role"] == "tool"
    assert tool_result["content"] == "1. the demo is on Friday"

    testbot.model.call_tool("note", {"text": "book a room"})
    assert await testbot.ask("note that we need a room") == (
        'Shall I note \'book a room\'? Reply "yes" to go ahead or "no" to cancel.'
    )
    assert await testbot.ask("/notes") == "1. the demo is on Friday"
    assert await testbot.ask("yes") == "Noted (2): book a room"


async def test_without_the_fixture_a_bot_runs_in_a_with_block() -> None:
    model = FakeModel().call_tool("forget", {"number": 1})
    async with run_bot(plugins=[notes, chat], model=model) as bot:
        await bot.ask("/note temporary")
        assert await bot.ask("drop the first note") == (
            'Shall I forget note 1? Reply "yes" to go ahead or "no" to cancel.'
        )
        assert await bot.ask("no") == "Cancelled: /forget was not run."
        assert await bot.ask("/notes") == "1. temporary"


def test_the_package_registers_its_entry_point() -> None:
    [found] = [ep for ep in entry_points(group="botkit.plugins") if ep.name == "notes"]
    assert found.value == "botkit_notes:plugin"
    assert found.load() is notes
