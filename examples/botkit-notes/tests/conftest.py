"""One bot per test, from botkit's plugin test kit: the notes plugin and the chat skill.

In botkit's repository these tests also run under its network guard (``tests/netguard``):
a test that tries to leave the machine fails. A copy of this example outside the
repository runs without it.
"""

import sys
from pathlib import Path

from botkit_notes import plugin as notes

from botkit.testing import bot_fixture
from botkit_chat import plugin as chat

testbot = bot_fixture(
    plugins=[notes, chat], settings={"notes": {"max_notes": 3}}, config={"bot": {"stream": False}}
)

_GUARD = Path(__file__).resolve().parents[3] / "tests" / "netguard"
if (_GUARD / "botkit_netguard.py").is_file():
    sys.path.insert(0, str(_GUARD))
    pytest_plugins = ["botkit_netguard"]
