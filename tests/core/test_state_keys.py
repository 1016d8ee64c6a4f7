"""Listing a namespace's state keys by prefix (a plugin's learners, say)."""

from __future__ import annotations

from botkit import Plugin, PluginRuntime
from botkit.llm import StandInModel
from botkit.store import Store
from botkit.testing import FakeModel, run_bot


async def test_state_keys_lists_one_namespace_by_prefix_taken_literally(store: Store) -> None:
    mine, other = store.state("plugin:a"), store.state("plugin:b")
    for key in ("learner:2", "learner:1", "learner_x", "learnerZ", "practice:last"):
        await mine.set(key, 1)
    await other.set("learner:3", 1)
    assert await store.state("plugin:a").keys("learner:") == ["learner:1", "learner:2"]
    # "_" and "%" are not wildcards
    assert await store.state("plugin:a").keys("learner_") == ["learner_x"]
    assert await store.state("plugin:a").keys("%") == []
    assert len(await store.state("plugin:a").keys()) == 5


async def test_a_plugin_lists_its_own_state_keys_and_knows_the_stand_in() -> None:
    plugin = Plugin("p")
    async with run_bot(plugins=[plugin], model=StandInModel()) as bot:
        runtime = PluginRuntime(bot.bot.runtime, "p")
        await runtime.state.set("k1", 1)
        await bot.store.state("plugin:other").set("k2", 1)
        assert await runtime.state_keys("k") == ["k1"]
        assert runtime.llm.stand_in
    async with run_bot(plugins=[plugin], model=FakeModel()) as bot:
        assert not PluginRuntime(bot.bot.runtime, "p").llm.stand_in
