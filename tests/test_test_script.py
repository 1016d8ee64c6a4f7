"""``scripts/test`` will not pass without PostgreSQL unless told to, and the PostgreSQL
variants of the tests show as skipped, with the reason, when it is off."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.fixture
def stubs(tmp_path: Path) -> Path:
    """``pg_isready`` answers once ``started`` exists; ``pg_ctlcluster`` creates it only
    when ``startable`` exists; ``sleep`` returns at once."""
    folder = tmp_path / "bin"
    folder.mkdir()
    _stub(folder, "pg_isready", f'[ -e "{tmp_path}/started" ]')
    _stub(
        folder,
        "pg_ctlcluster",
        f'echo "$@" > "{tmp_path}/ctl-args"; '
        f'[ -e "{tmp_path}/startable" ] && touch "{tmp_path}/started"',
    )
    _stub(folder, "sleep", "exit 0")
    return folder


def _decide(stubs: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_TEST_POSTGRES")}
    base["PATH"] = f"{stubs}{os.pathsep}{base.get('PATH', '/usr/bin:/bin')}"
    script = '. scripts/postgres.sh; botkit_test_postgres; echo "url=${BOTKIT_TEST_POSTGRES_URL-}"'
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_no_postgresql_fails_the_run_and_says_how_to_opt_out(stubs: Path) -> None:
    done = _decide(stubs)
    assert done.returncode == 1
    assert "PostgreSQL is required" in done.stderr
    assert "BOTKIT_TEST_POSTGRES=off" in done.stderr
    assert "url=" not in done.stdout


@pytest.mark.skipif(not Path("/etc/postgresql").is_dir(), reason="no local PostgreSQL install")
def test_an_installed_server_that_is_down_is_started(stubs: Path) -> None:
    (stubs.parent / "startable").touch()
    done = _decide(stubs)
    assert done.returncode == 0, done.stderr
    assert "starting PostgreSQL" in done.stdout
    assert (stubs.parent / "ctl-args").read_text().split()[0] == "--skip-systemctl-redirect"
    assert f"url={DEFAULT_URL}" in done.stdout.splitlines()


def test_a_given_url_that_does_not_answer_fails_without_starting_anything(
    stubs: Path,
) -> None:
    done = _decide(stubs, BOTKIT_TEST_POSTGRES_URL="postgresql://u:secret@db.invalid/x")
    assert done.returncode == 1
    assert "does not answer at db.invalid/x" in done.stderr
    assert "secret" not in done.stderr + done.stdout
    assert not (stubs.parent / "ctl-args").exists()


def test_off_must_be_said_and_then_runs_sqlite_only(stubs: Path) -> None:
    done = _decide(stubs, BOTKIT_TEST_POSTGRES="off", BOTKIT_TEST_POSTGRES_URL=DEFAULT_URL)
    assert done.returncode == 0, done.stderr
    assert "PostgreSQL tests: off" in done.stdout
    assert "url=" in done.stdout.splitlines()


def test_a_misspelt_switch_is_an_error(stubs: Path) -> None:
    done = _decide(stubs, BOTKIT_TEST_POSTGRES="no")
    assert done.returncode == 2
    assert "must be 'on' or 'off'" in done.stderr


def test_an_answering_server_is_used(stubs: Path) -> None:
    (stubs.parent / "started").touch()
    done = _decide(stubs)
    assert done.returncode == 0, done.stderr
    assert f"url={DEFAULT_URL}" in done.stdout.splitlines()
    assert "postgres@" not in done.stdout.replace(f"url={DEFAULT_URL}", "")


async def test_every_backend_gets_a_database(database_url: str) -> None:
    assert database_url.startswith(("sqlite", "postgresql"))


@pytest.mark.slow
def test_postgres_variants_show_as_skipped_with_the_reason_when_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BOTKIT_TEST_POSTGRES_URL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-rs",
            "tests/test_test_script.py::test_every_backend_gets_a_database",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b1 passed, 1 skipped\b", done.stdout), done.stdout
    assert "PostgreSQL variant: BOTKIT_TEST_POSTGRES_URL is not set" in done.stdout


# -- the llama.cpp server (scripts/llama-server.sh) ------------------------------------------


def _llama(cwd: Path, path: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("BOTKIT_TEST_LLAMA")}
    script = (
        f'. "{ROOT}/scripts/llama-server.sh"; botkit_test_llama; rc=$?; '
        'echo "python=${BOTKIT_TEST_LLAMA_PYTHON-}"; exit $rc'
    )
    return subprocess.run(
        ["/bin/bash", "-c", script],
        cwd=cwd,
        env={**base, "PATH": path, "XDG_CACHE_HOME": str(cwd / "cache"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_llama_off_must_be_said_and_a_misspelt_switch_is_an_error(tmp_path: Path) -> None:
    done = _llama(tmp_path, os.environ["PATH"], BOTKIT_TEST_LLAMA="off")
    assert done.returncode == 0, done.stderr
    assert "llama.cpp server tests: off" in done.stdout
    assert "python=" in done.stdout.splitlines()
    done = _llama(tmp_path, os.environ["PATH"], BOTKIT_TEST_LLAMA="no")
    assert done.returncode == 2
    assert "must be 'on' or 'off'" in done.stderr


def test_an_installed_llama_server_is_used_without_building(tmp_path: Path) -> None:
    (tmp_path / ".venv-llama" / "bin").mkdir(parents=True)
    _stub(tmp_path / ".venv-llama" / "bin", "python", "exit 0")  # the versions match
    done = _llama(tmp_path, os.environ["PATH"])
    assert done.returncode == 0, done.stderr
    assert "building" not in done.stdout
    assert f"python={tmp_path}/.venv-llama/bin/python" in done.stdout.splitlines()


def test_no_llama_server_and_no_compiler_fails_and_says_how_to_opt_out(
    tmp_path: Path,
) -> None:
    stubs = tmp_path / "bin"
    stubs.mkdir()
    _stub(stubs, "id", "echo 1000")  # not root: nothing is installed with apt-get
    done = _llama(tmp_path, str(stubs))
    assert done.returncode == 1
    assert "needs cmake and a C++ compiler" in done.stderr
    assert "BOTKIT_TEST_LLAMA=off" in done.stderr
    assert "python=" in done.stdout.splitlines()
