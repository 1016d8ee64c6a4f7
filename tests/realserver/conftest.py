"""A real OpenAI-compatible server nobody here wrote: llama.cpp's, through
llama-cpp-python's ``llama_cpp.server``, serving a tiny model the tests generate.

``scripts/test`` installs the server (``scripts/llama-server.sh``: a wheel built once
and cached, in a virtualenv of its own) and names its Python in
``$BOTKIT_TEST_LLAMA_PYTHON``; without it these tests are reported as skipped, with the
reason (``BOTKIT_TEST_LLAMA=off``), never silently dropped. The model and the server are
made once per session; the server listens on 127.0.0.1 on a free port and runs under the
network guard like every other process the tests start.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from netguard_core import guarded_environ

from botkit.llm import ModelInfo, ModelTable, OpenAIChatClient
from botkit.testing import TestBot, run_bot
from tests.plugins.conftest import StartBot

__all__ = ["CONTEXT", "LLAMA_OFF", "LLAMA_PYTHON", "MODEL", "LlamaServer"]

LLAMA_PYTHON = os.environ.get("BOTKIT_TEST_LLAMA_PYTHON") or None
LLAMA_OFF = (
    "llama.cpp server: BOTKIT_TEST_LLAMA_PYTHON is not set (scripts/test installs the "
    "server and sets it, and fails without it unless BOTKIT_TEST_LLAMA=off)"
)
MODEL = "tiny-chat"
# tokens: small, so that a context-length error is easy to provoke (the tiny vocabulary
# spends about a token per character)
CONTEXT = 512
_START_TIMEOUT = 120.0
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class LlamaServer:
    """The running server.

    Attributes:
        url: the API root, ``http://127.0.0.1:PORT/v1``.
        log: the server's output (stdout and stderr), for failure messages.
    """

    url: str
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output."""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _environ() -> dict[str, str]:
    """The server's environment: guarded, and none of botkit's source roots on its path
    (it runs from its own virtualenv, as an installed server would)."""
    env = guarded_environ(None, PYTHONPATH="")
    env.pop("VIRTUAL_ENV", None)
    return env


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GGUF file, written by ``tinymodel.py`` in the server's virtualenv."""
    if LLAMA_PYTHON is None:
        pytest.skip(LLAMA_OFF)
    path = tmp_path_factory.mktemp("llama") / "tiny.gguf"
    done = subprocess.run(
        [LLAMA_PYTHON, str(_HERE / "tinymodel.py"), str(path), str(CONTEXT)],
        env=_environ(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, f"tinymodel.py failed:\n{done.stdout}\n{done.stderr}"
    return path


@pytest.fixture(scope="session")
def llama_server(
    tiny_model: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LlamaServer]:
    """``python -m llama_cpp.server`` serving the tiny model as ``tiny-chat``; stopped at
    the end of the session."""
    assert LLAMA_PYTHON is not None
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-log") / "server.log"
    command = [
        LLAMA_PYTHON,
        "-m",
        "llama_cpp.server",
        "--model",
        str(tiny_model),
        "--model_alias",
        MODEL,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CONTEXT),
        "--n_threads",
        "1",
        "--n_threads_batch",
        "1",
    ]
    server = LlamaServer(f"http://127.0.0.1:{port}/v1", log)
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, env=_environ()
        )
    try:
        _wait_until_up(process, server)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], server: LlamaServer) -> None:
    """Return once ``GET /v1/models`` answers; fail with the server's log if it exits or
    takes too long."""
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"llama.cpp server exited with {process.returncode}:\n{server.log_tail()}",
                pytrace=False,
            )
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(f"{server.url}/models", timeout=2) as response,
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    pytest.fail(
        f"llama.cpp server did not answer within {_START_TIMEOUT:g} s:\n{server.log_tail()}",
        pytrace=False,
    )


@pytest.fixture
def models() -> ModelTable:
    """The model table, knowing the tiny model's real window (no prices, no tokenizer:
    botkit's counts of it are estimates)."""
    return ModelTable([ModelInfo(MODEL, CONTEXT, 64, None, None)])


@pytest.fixture
async def llama_client(
    llama_server: LlamaServer, models: ModelTable
) -> AsyncIterator[OpenAIChatClient]:
    """botkit's real client, pointed at the server; no retries, so a refusal shows at
    once."""
    client = OpenAIChatClient(
        llama_server.url, None, MODEL, models=models, max_retries=0, timeout=60
    )
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def start_bot(database_url: str) -> StartBot:
    """``run_bot`` on the test's database (SQLite, and PostgreSQL when configured)."""

    def start(**kwargs: Any) -> AbstractAsyncContextManager[TestBot]:
        return run_bot(database_url=database_url, **kwargs)

    return start
