"""One bot per test, from botkit's plugin test kit: the notes plugin and the chat skill."""

from botkit_notes import plugin as notes

from botkit.testing import bot_fixture
from botkit_chat import plugin as chat

testbot = bot_fixture(
    plugins=[notes, chat], settings={"notes": {"max_notes": 3}}, config={"bot": {"stream": False}}
)
