"""What the Slack adapter remembers of the channel threads it is (or is not) in is
bounded: in memory by count, in the state by time."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from botkit.store import Store
from botkit_slack._events import ThreadMemory


async def test_the_threads_remembered_in_memory_are_the_most_recent_ones(store: Store) -> None:
    memory = ThreadMemory(store.state("adapter:slack"), size=2)
    for thread in ("1.1", "1.2", "1.3"):
        memory.add_negative("C1", thread)
    # the oldest of three is forgotten: asked about again rather than kept for ever
    assert await memory.knows("C1", "1.1") is None
    assert await memory.knows("C1", "1.2") is False
    assert await memory.knows("C1", "1.3") is False

    await memory.add("C1", "2.1")
    await memory.add("C1", "2.2")
    assert await memory.knows("C1", "2.1") is True  # now the most recently seen
    await memory.add("C1", "2.3")
    assert len(memory._known) == 2
    assert ("C1", "2.2") not in memory._known
    # forgotten by the process, the thread is still in the state: known all the same
    assert await memory.knows("C1", "2.2") is True


async def test_a_thread_is_kept_in_the_state_for_a_time_then_asked_about_again(
    store: Store,
) -> None:
    state = store.state("adapter:slack")
    await ThreadMemory(state, keep=timedelta(seconds=0.3)).add("C1", "3.1")
    assert await ThreadMemory(state).knows("C1", "3.1") is True  # a new process: the state
    await asyncio.sleep(0.5)
    assert await ThreadMemory(state).knows("C1", "3.1") is None
    assert await state.keys() == []


async def test_joining_a_thread_known_not_to_be_ours_makes_it_ours(store: Store) -> None:
    memory = ThreadMemory(store.state("adapter:slack"))
    memory.add_negative("C1", "4.1")
    assert await memory.knows("C1", "4.1") is False
    await memory.add("C1", "4.1")
    assert await memory.knows("C1", "4.1") is True
