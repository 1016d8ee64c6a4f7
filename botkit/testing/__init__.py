"""The test kit: a fake model, an in-memory channel and a real bot to talk to.

Test a plugin the way a person would use it: send a message, read the replies. The bot
is a real :class:`~botkit.Bot` (store, dispatcher, outbox, middlewares, budgets) on a
temporary SQLite database; only the model and the channel are fakes::

    from botkit.testing import FakeModel, run_bot

    async def test_translate() -> None:
        model = FakeModel().reply("Bonjour")
        async with run_bot(plugins=[translate.plugin], model=model) as bot:
            assert await bot.ask("/translate hello") == "Bonjour"
        assert "hello" in model.requests[0].messages[-1]["content"]

With pytest, make a fixture once in ``conftest.py`` (pytest-asyncio is needed)::

    from botkit.testing import bot_fixture
    from my_package.translate import plugin

    testbot = bot_fixture(plugins=[plugin], settings={"translate": {"language": "German"}})

    async def test_translate(testbot: TestBot) -> None:
        testbot.model.reply("Hallo")
        assert await testbot.ask("/translate hello") == "Hallo"

Scheduled jobs (``ctx.schedule``, ``on_schedule``) run on a :class:`FakeClock`: time
moves for them only when the test says so, and :meth:`TestBot.advance` returns once
everything that fell due has fired and its messages were sent::

    await bot.send("/remind in 10 minutes stretch")
    await bot.advance(timedelta(minutes=10))
    assert bot.sent[-1].text == "Reminder: stretch"

Channels fail on demand, as real ones do: ``InMemoryChannel().fail_sends(error)`` and
``.fail_edits(error)`` script what the coming sends and edits raise, and the channel
counts every attempt (``send_attempts``, ``edit_attempts``, ``change_times``). botkit's
own tests use the same kit: ``run_bot(database_url=...)`` runs the bot on SQLite or
PostgreSQL, ``model="config"`` builds the model from the ``[llm]`` table, and any
adapter can stand among ``channels``.

The kit is one package: ``model`` (:class:`FakeModel`, :class:`Scripted`), ``channel``
(:class:`InMemoryChannel`, :class:`SentReply`), ``clock`` (:class:`FakeClock`) and ``bot``
(:class:`TestBot`, :func:`run_bot`, :func:`bot_fixture`); import them from here. It needs
no pytest unless :func:`bot_fixture` is called, and is not imported by ``import botkit``.
"""

from botkit.testing.bot import TestBot, bot_fixture, run_bot
from botkit.testing.channel import InMemoryChannel, SentReply
from botkit.testing.clock import FakeClock
from botkit.testing.model import FakeModel, Responder, Scripted
from botkit.testing.state import MemoryState

__all__ = [
    "FakeClock",
    "FakeModel",
    "InMemoryChannel",
    "MemoryState",
    "Responder",
    "Scripted",
    "SentReply",
    "TestBot",
    "bot_fixture",
    "run_bot",
]
