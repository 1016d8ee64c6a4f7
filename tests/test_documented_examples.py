"""The README's code and config.example.toml run as given.

Every ``python`` and ``toml`` block of the README names the file it belongs to on its
first line (``# my_package/translate.py``; ``(continued)`` adds to a file named before)
or follows a ``<!-- not run: why -->`` line. The named files make a user's project: it
is installed, with botkit, into a fresh virtualenv the way ``scripts/run`` installs
botkit (editable), then its tests run under pytest, the whole of it passes
``mypy --strict`` and ``botkit check-config`` loads its ``botkit.toml``, each in a
subprocess with nothing of this checkout on its path. config.example.toml, with every
commented table uncommented and then with each alternative (``#: key = value``) too, is
loaded and built by botkit's own loader.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sysconfig
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest
from netguard_core import guarded_environ

from botkit import ConfigError
from botkit.bot import build_components
from botkit.config import load_config

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
NOT_RUN = re.compile(r"^<!-- not run: (.+) -->$")
HEADER = re.compile(r"^# ([\w./-]+\.(?:py|toml))( \(continued\))?(?:\s|$)")
RUNNABLE = {"python", "python3", "py", "toml"}
# files the README shows in fragments (a table or two each) under one name
FRAGMENTS = {"pyproject.toml"}
# what the test does with each file the README names; a new one must be added here
PROJECT_FILES = {
    "my_package/translate.py": "imported by the tests; mypy --strict",
    "my_package/pager.py": "a bot with it takes a webhook and pages the reply; mypy --strict",
    "conftest.py": "pytest; mypy --strict",
    "test_translate.py": "pytest; mypy --strict",
    "pyproject.toml": "the project's install (its entry point) and pytest's settings",
    "botkit.toml": "botkit check-config, with the project installed",
}
# the project's own [project] table, which the README leaves to the reader
PROJECT_HEAD = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "my-package"
version = "0.1.0"
"""
# the README's other snippets exercised, beyond what its own test shows
CHECKS = r'''"""The README's plugin and adapter snippets, each exercised."""

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from botkit import Bot, load_config
from botkit.testing import FakeModel, run_bot
from botkit_chat import plugin as chat
from my_package.translate import plugin

QUIET = {"bot": {"stream": False}}


async def test_thanks_counts_in_the_plugins_own_state() -> None:
    async with run_bot(plugins=[plugin]) as bot:
        assert await bot.ask("thanks!") == "You're welcome! (1)"
        assert await bot.ask("thank you") == "You're welcome! (2)"


async def test_the_middleware_drops_only_people_off_the_staff_list() -> None:
    model = FakeModel()
    staff = {"translate": {"staff": ["U1"]}}
    async with run_bot(plugins=[plugin], settings=staff, model=model) as bot:
        assert await bot.send("/translate hello", user="U2") == []
        assert model.requests == []  # dropped before anything was spent
        model.reply("Bonjour")
        assert await bot.ask("/translate hello", user="U1") == "Bonjour"


async def test_the_middleware_lets_everyone_through_without_a_staff_list() -> None:
    async with run_bot(plugins=[plugin]) as bot:
        assert await bot.ask("/translate", user="anyone") == "Usage: /translate some text"


async def test_the_scheduled_job_runs() -> None:
    async with run_bot(plugins=[plugin]) as bot:
        await bot.run_job("translate", "morning")
        assert bot.sent == []


async def test_a_nudge_is_scheduled_and_fires_after_thirty_minutes() -> None:
    async with run_bot(plugins=[plugin]) as bot:
        answer = await bot.ask("/nudge drink water")
        assert answer.startswith("Nudging you in 30 minutes (#")
        assert await bot.advance(timedelta(minutes=29)) == []
        sent = await bot.advance(timedelta(minutes=1))
        assert [s.text for s in sent] == ["Time to drink water!"]


async def test_forecast_is_a_command_and_a_tool_the_model_calls() -> None:
    model = FakeModel()
    async with run_bot(plugins=[plugin, chat], model=model, config=QUIET) as bot:
        assert await bot.ask("/forecast Paris days=3") == "Sunny in Paris for 3 day(s)."
        model.call_tool("forecast", {"city": "Oslo"}).reply("Sunny in Oslo, it says.")
        assert await bot.ask("weather in Oslo?") == "Sunny in Oslo, it says."
    results = [m for m in model.requests[-1].messages if m["role"] == "tool"]
    assert [m["content"] for m in results] == ["Sunny in Oslo for 1 day(s)."]


async def test_the_chat_skill_is_told_the_readers_language() -> None:
    model = FakeModel().reply("Gut, danke.")
    german = {"translate": {"language": "German"}}
    async with run_bot(plugins=[plugin, chat], settings=german, model=model, config=QUIET) as bot:
        assert await bot.ask("how are you?") == "Gut, danke."
    system = [m["content"] for m in model.requests[-1].messages if m["role"] == "system"]
    assert "The people here read German: answer in German." in system


async def test_a_bot_with_the_pager_takes_a_page_by_webhook_and_pages_the_reply(
    tmp_path: Path,
) -> None:
    pages: list[dict[str, Any]] = []

    async def gateway(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer t0k3n"
        pages.append(await request.json())
        return web.json_response({"id": f"p{len(pages)}"})

    app = web.Application()
    app.router.add_post("/api/pages", gateway)
    async with TestServer(app, host="127.0.0.1") as server:
        (tmp_path / "bot.toml").write_text(
            f'[database]\nurl = "sqlite:///{tmp_path / "bot.db"}"\n'
            "[web]\nenabled = true\nport = 0\n"
            f'[adapters.pager]\nuse = "my_package.pager:PagerAdapter"\n'
            f'api_url = "{server.make_url("/api")}"\n'
            "[plugins.translate]\n"
        )
        config = load_config(tmp_path / "bot.toml", environ={"PAGER_TOKEN": "t0k3n"})
        async with Bot(config) as bot, aiohttp.ClientSession() as http:
            assert bot.web is not None
            url = f"http://127.0.0.1:{bot.web.port}/pager/webhook"
            page = {"id": "in-1", "from": "+4930123", "text": "thanks!"}
            for _ in range(2):  # delivered twice, answered once
                async with http.post(url, json=page) as response:
                    assert response.status == 200
            async with asyncio.timeout(10):
                while not pages:
                    await asyncio.sleep(0.02)
            await bot.dispatcher.idle()
    assert [(p["to"], p["text"]) for p in pages] == [("+4930123", "You're welcome! (1)")]
'''


@dataclass(frozen=True)
class Block:
    """A fenced block of the README."""

    line: int  # of the opening fence, 1-based
    language: str
    text: str
    not_run: str | None  # the reason given, for a block marked not to run


def readme_blocks(text: str) -> list[Block]:
    """Every fenced block, with its language and the not-run mark before it, if any."""
    blocks: list[Block] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        mark = NOT_RUN.match(lines[index - 1]) if index > 0 else None
        body = "\n".join(lines[index + 1 : end]) + "\n"
        blocks.append(Block(index + 1, opening[1], body, mark[1] if mark else None))
        index = end + 1
    return blocks


def project_files(blocks: list[Block]) -> dict[str, str]:
    """The files the runnable blocks make, by path: a block starts (or, ``(continued)``,
    adds to) the file its first line names, and a ``# path`` line inside it starts
    another.

    Raises:
        AssertionError: a runnable block names no file, or continues one not started.
    """
    files: dict[str, str] = {}
    for block in blocks:
        if block.language.lower() not in RUNNABLE or block.not_run is not None:
            continue
        current: str | None = None
        for line in block.text.splitlines(keepends=True):
            header = HEADER.match(line)
            if header is not None:
                current = header[1]
                if header[2] is not None:
                    assert current in files, f"README line {block.line}: {current} not started"
                    files[current] += "\n\n"
                elif current in files:
                    assert current in FRAGMENTS, f"README line {block.line}: {current} again"
                    files[current] += "\n"
                else:
                    files[current] = ""
            assert current is not None, (
                f"README line {block.line}: a {block.language} block must name its file on "
                "its first line (# path) or be marked <!-- not run: why --> before it"
            )
            files[current] += line
    return files


def test_every_python_and_toml_block_of_the_readme_is_run_or_marked() -> None:
    blocks = readme_blocks(README.read_text())
    runnable = [b for b in blocks if b.language.lower() in RUNNABLE]
    assert len(runnable) >= 8  # the parser sees the blocks
    files = project_files(blocks)
    assert set(files) == set(PROJECT_FILES), "a README file this test does not run"
    for block in runnable:
        if block.not_run is not None:
            assert len(block.not_run) > 10, f"README line {block.line}: say why it is not run"


def test_a_block_without_a_file_name_is_refused() -> None:
    for language in ("python", "py", "toml"):
        text = f"Prose.\n\n```{language}\nx = 1\n```\n"
        with pytest.raises(AssertionError, match="must name its file"):
            project_files(readme_blocks(text))
    twice = "```python\n# a.py\nx = 1\n```\n\n```python\n# a.py\ny = 2\n```\n"
    with pytest.raises(AssertionError, match=r"a\.py again"):
        project_files(readme_blocks(twice))
    continued = twice.replace("# a.py\ny", "# a.py (continued)\ny")
    assert project_files(readme_blocks(continued)) == {
        "a.py": "# a.py\nx = 1\n\n\n# a.py (continued)\ny = 2\n"
    }
    marked = "<!-- not run: a sketch of the methods only -->\n```python\nprint('hi')\n```\n"
    assert project_files(readme_blocks(marked)) == {}


def _write_project(folder: Path) -> None:
    files = project_files(readme_blocks(README.read_text()))
    files["pyproject.toml"] = PROJECT_HEAD + "\n" + files["pyproject.toml"]
    files["my_package/__init__.py"] = ""
    files["test_readme_checks.py"] = CHECKS
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


def _fresh_venv(folder: Path, environ: dict[str, str]) -> Path:
    """A virtualenv that sees this environment's packages read-only (``.pth``), so
    installs run offline; returns its python."""
    venv.create(folder, with_pip=False)
    python = folder / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=environ,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return python


def _run(command: list[str], cwd: Path, environ: dict[str, str]) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=240, env=environ
    )
    assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_readme_plugin_installs_passes_its_tests_and_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("hatchling", reason="installing offline needs hatchling (the dev extra)")
    away = guarded_environ({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    python = _fresh_venv(tmp_path / "venv", away)
    offline = ["--quiet", "--no-build-isolation", "--no-deps", "--no-index", "--ignore-installed"]
    project = tmp_path / "project"
    project.mkdir()
    _write_project(project)
    for source in (ROOT, project):  # both editable, as scripts/run installs botkit
        _run([str(python), "-m", "pip", "install", *offline, "-e", str(source)], tmp_path, away)

    # the editable install adds botkit's packages and nothing else of the checkout
    names = ("botkit", "botkit_chat", "botkit_console", "tests", "bench", "plugins", "adapters")
    found = _run(
        [str(python), "-c", f"import importlib.util as u; print([u.find_spec(n) is not None "
         f"for n in {names!r}])"],
        project,
        away,
    )  # fmt: skip
    assert found.strip() == "[True, True, True, False, False, False, False]"

    mypy = [str(python), "-m", "mypy", "--strict", "--no-incremental", "."]
    assert "Success" in _run(mypy, project, away)
    tests = _run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, away)
    assert "9 passed" in tests, tests
    checked = _run(
        [str(python), "-m", "botkit", "check-config", "-c", "botkit.toml"], project, away
    )
    assert "plugins: translate, chat" in checked


def _every_table_uncommented(text: str) -> str:
    """config.example.toml with every commented setting and table (``# key = value``,
    ``# [table]``) turned on; alternatives (``#: key = value``) and prose stay comments."""
    lines = []
    for line in text.splitlines():
        body = line.removeprefix("# ")
        lines.append(body if body != line and _is_toml_line(body) else line)
    return "\n".join(lines) + "\n"


def _is_toml_line(text: str) -> bool:
    if not (text.startswith("[") or (text.split(" = ")[0].isidentifier() and " = " in text)):
        return False
    try:
        tomllib.loads(text + "\n")
    except tomllib.TOMLDecodeError:
        return False  # prose that looks like a setting
    return True


# the secrets the channels' tables name
SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-0",
    "SLACK_APP_TOKEN": "xapp-0",
    "TELEGRAM_BOT_TOKEN": "123:abc",
    "BOTKIT_EMAIL_PASSWORD": "secret",
}


def test_config_example_with_every_table_uncommented_loads_and_builds(tmp_path: Path) -> None:
    file = tmp_path / "all.toml"
    file.write_text(_every_table_uncommented((ROOT / "config.example.toml").read_text()))
    config = load_config(file, environ=SECRETS)
    adapters, plugins, settings = build_components(config)
    assert sorted(adapters) == ["console", "email", "slack", "telegram", "web"]
    assert [p.name for p in plugins] == [
        "chat", "spam", "sentiment", "autoreply", "summary", "remind", "documents", "voice",
        "budget", "tutor",
    ]  # fmt: skip
    assert settings["budget"].limits[0].tokens == 50000
    assert "llama3.1:8b" in config.llm.models
    # as the file runs as is: only what is not commented out
    plain = load_config(ROOT / "config.example.toml", environ={})
    assert [a.name for a in plain.adapters] == ["console"]


# what an alternative ("#: key = value") goes with: lines of the file changed (the
# setting it excludes, a program that exists) and the environment variable it names
ALTERNATIVE_NEEDS: dict[str, tuple[list[tuple[str, str]], dict[str, str]]] = {
    "usd": ([("# tokens = 50000", "#: tokens = 50000")], {}),
    "access_token_env": (
        [('# auth = "password"', '# auth = "oauth2"')],
        {"BOTKIT_EMAIL_ACCESS_TOKEN": "token"},
    ),
    "token_command": (
        [('# auth = "password"', '# auth = "oauth2"'), ("/usr/local/bin/mail-token", "true")],
        {},
    ),
    "smtp_password_env": ([], {"BOTKIT_EMAIL_SMTP_PASSWORD": "secret"}),
    "webhook_secret_env": ([], {"TELEGRAM_WEBHOOK_SECRET": "secret"}),
}


def test_each_alternative_in_config_example_loads_and_builds(tmp_path: Path) -> None:
    text = (ROOT / "config.example.toml").read_text()
    alternatives = list(re.finditer(r"^#: ((\w+) = .*?)(?:\s{2,}\(.*)?$", text, re.M))
    assert len(alternatives) >= 10
    faults = []
    for line, setting, key in (m.group(0, 1, 2) for m in alternatives):
        changed = text.replace(line, setting, 1)  # without its note: "(required for ...)"
        replacements, variables = ALTERNATIVE_NEEDS.get(key, ([], {}))
        for old, new in replacements:
            assert old in changed, old
            changed = changed.replace(old, new, 1)
        file = tmp_path / f"{key}.toml"
        file.write_text(_every_table_uncommented(changed))
        try:
            config = load_config(file, environ={**SECRETS, **variables})
            build_components(config)
        except ConfigError as exc:
            faults.append(f"{setting}: {exc}")
    assert faults == []


def test_scripts_run_installs_what_the_readmes_plugin_tests_need(tmp_path: Path) -> None:
    """scripts/run in a copy of the tree whose .venv's python records its arguments."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    needed = {re.split(r"[<>=\[]", r)[0] for r in extras["testing"]}
    assert {"pytest", "pytest-asyncio"} <= needed
    assert 'pip install "botkit[testing]"' in README.read_text()

    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "run", tmp_path / "scripts" / "run")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    log = tmp_path / "calls"
    (bin_dir / "python").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "botkit").write_text("#!/bin/sh\nexit 0\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "BOTKIT_CONFIG"}
    subprocess.run(
        ["bash", str(tmp_path / "scripts" / "run")], env=environ, check=True, timeout=30
    )
    installs = [line.split() for line in log.read_text().splitlines()]
    [editable] = [words for words in installs if "-e" in words]
    assert editable[-1] == ".[all,testing]"
