"""A bot process killed with SIGKILL answers what it had accepted exactly once after restart."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netguard_core import guarded_environ

ROOT = Path(__file__).resolve().parents[2]


def _start(
    db_url: str, workdir: Path, mode: str, text: str | None = None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "tests.core._crash_bot", db_url, str(workdir), mode]
    if text is not None:
        args.append(text)
    env = guarded_environ(PYTHONPATH=str(ROOT))  # the network guard's hook stays on
    with (workdir / f"{mode}.log").open("ab") as log:
        return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=log)


def _wait_stage(workdir: Path, stage: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        path = workdir / "stage"
        if path.exists() and path.read_text() == stage:
            return
        if process.poll() is not None:
            logs = "".join(p.read_text() for p in workdir.glob("*.log"))
            raise AssertionError(f"bot exited early ({process.returncode}): {logs[-3000:]}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"bot never reached stage {stage!r}")


def _sent(workdir: Path) -> list[dict[str, str]]:
    path = workdir / "sent.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.slow
@pytest.mark.parametrize("hang", ["hang-handler", "hang-send"])
def test_a_killed_bot_answers_an_accepted_message_exactly_once_after_restart(
    database_url: str, tmp_path: Path, hang: str
) -> None:
    first = _start(database_url, tmp_path, hang, "are you there?")
    _wait_stage(tmp_path, "handling" if hang == "hang-handler" else "sending", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert _sent(tmp_path) == []

    second = _start(database_url, tmp_path, "normal")
    _wait_stage(tmp_path, "sent", second)
    assert _stop(second) == 0
    sent = _sent(tmp_path)
    assert [(s["op"], s["text"]) for s in sent] == [("send", "answer to are you there?")]

    third = _start(database_url, tmp_path, "normal")
    _wait_stage(tmp_path, "started", third)
    time.sleep(0.5)  # give a wrongly resumed message every chance to be sent again
    assert _stop(third) == 0
    assert _sent(tmp_path) == sent


@pytest.mark.slow
def test_a_bot_killed_mid_stream_edits_the_message_it_posted_after_restart(
    database_url: str, tmp_path: Path
) -> None:
    first = _start(database_url, tmp_path, "hang-stream", "are you there?")
    _wait_stage(tmp_path, "streaming", first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    [posted] = _sent(tmp_path)
    assert (posted["op"], posted["text"]) == ("send", "partial")

    second = _start(database_url, tmp_path, "stream")
    _wait_stage(tmp_path, "edited", second)
    assert _stop(second) == 0
    sent = _sent(tmp_path)
    # one channel message: the partial one, edited (as the stream goes) into the answer
    assert [s["op"] for s in sent][:2] == ["send", "edit"]
    assert [s["op"] for s in sent].count("send") == 1
    assert {s["delivery_id"] for s in sent} == {posted["delivery_id"]}
    assert sent[-1]["text"] == "answer to are you there?"

    third = _start(database_url, tmp_path, "stream")
    _wait_stage(tmp_path, "started", third)
    time.sleep(0.5)  # give a wrongly resumed message every chance to be sent again
    assert _stop(third) == 0
    assert _sent(tmp_path) == sent
