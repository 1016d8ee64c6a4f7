"""The Slack pacer tells the metrics of each wait, and why it waited."""

from __future__ import annotations

import pytest

from botkit_slack._pacing import Pacer


async def test_each_wait_is_reported_as_pacing_or_as_a_retry_after() -> None:
    now = [0.0]
    slept: list[float] = []
    waits: list[tuple[float, str]] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def on_wait(seconds: float, *, reason: str) -> None:
        waits.append((seconds, reason))

    pacer = Pacer(clock=lambda: now[0], sleep=sleep, on_wait=on_wait)
    key = ("chat.postMessage", "C1")
    await pacer.wait_turn(key, interval=1.0, max_wait=60)
    await pacer.wait_turn(key, interval=1.0, max_wait=60)  # one second after the first
    pacer.hold(key, 30.0)  # Slack answered 429 with Retry-After: 30
    await pacer.wait_turn(key, interval=1.0, max_wait=60)
    assert [reason for _, reason in waits] == ["pacing", "server"]
    assert [seconds for seconds, _ in waits] == pytest.approx([1.0, 30.0])
    assert slept == pytest.approx([1.0, 30.0])
