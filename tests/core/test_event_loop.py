"""The event loop the ``botkit`` commands run on (``botkit.event_loop``, ``[bot]
event_loop``): uvloop's where it is installed, asyncio's when asked."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import inspect
import warnings
from pathlib import Path

import pytest

import botkit.cli
from botkit.config import Config
from botkit.event_loop import run
from botkit.exceptions import ConfigError


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_is_installed_with_botkit_here() -> None:
    # a dependency on CPython for Linux and macOS (pyproject.toml): the default applies
    assert importlib.util.find_spec("uvloop") is not None


def test_auto_runs_on_uvloop_and_asyncio_on_the_standard_loop() -> None:
    assert run(_loop_module()).startswith("uvloop")
    assert run(_loop_module(), "uvloop").startswith("uvloop")
    assert run(_loop_module(), "asyncio").startswith("asyncio")


def test_auto_falls_back_to_asyncio_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "uvloop" else real(name, *a)
    )
    assert run(_loop_module()).startswith("asyncio")
    main = _loop_module()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the coroutine never run is closed, not leaked
        with pytest.raises(ConfigError, match="uvloop is not installed"):
            run(main, "uvloop")
    assert inspect.getcoroutinestate(main) == inspect.CORO_CLOSED


def test_an_unknown_loop_is_a_configuration_error() -> None:
    main = _loop_module()
    with pytest.raises(ConfigError, match=r"bot\.event_loop"):
        run(main, "trio")  # type: ignore[arg-type]


@pytest.mark.parametrize(("setting", "module"), [("auto", "uvloop"), ("asyncio", "asyncio")])
def test_the_commands_run_on_the_configured_loop(
    setting: str,
    module: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[str] = []

    async def usage(_config: Config, _args: argparse.Namespace) -> int:
        seen.append(await _loop_module())
        return 0

    monkeypatch.setattr(botkit.cli, "_usage", usage)
    monkeypatch.setenv("BOTKIT_DATABASE_URL", f"sqlite:///{tmp_path / 'loop.db'}")
    (tmp_path / "bot.toml").write_text(f'[bot]\nevent_loop = "{setting}"\n')
    assert botkit.cli.main(["-c", str(tmp_path / "bot.toml"), "usage"]) == 0
    assert len(seen) == 1
    assert seen[0].startswith(module)


def test_a_bot_runs_on_uvloop_as_on_asyncio(tmp_path: Path) -> None:
    from botkit.testing import FakeModel, run_bot

    async def answer() -> str:
        url = f"sqlite:///{tmp_path / 'b.db'}"
        async with run_bot(model=FakeModel(), database_url=url) as bot:
            return await bot.ask("hi")

    assert run(answer()) == "echo: hi"
