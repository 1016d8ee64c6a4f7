"""The wheel works on its own: installed in a fresh venv, away from the checkout."""

from __future__ import annotations

import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_alone_and_does_not_collide_with_a_users_plugins_folder(
    tmp_path: Path,
) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = dist.glob("botkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "botkit_console/__init__.py" in names
    assert "botkit_chat/__init__.py" in names
    assert "botkit/store/migrations/versions/0001_initial_schema.py" in names
    assert not any(n.startswith(("adapters/", "plugins/", "tests/")) for n in names)
    for package in ("botkit", "botkit_console", "botkit_chat"):
        assert f"{package}/py.typed" in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True,
        capture_output=True,
        timeout=400,
    )
    # a user's project with folders named like ours
    project = tmp_path / "project"
    (project / "plugins").mkdir(parents=True)
    (project / "plugins" / "__init__.py").write_text("MINE = True\n")
    (project / "adapters").mkdir()
    (project / "adapters" / "__init__.py").write_text("MINE = True\n")
    check = (
        "import botkit, botkit_console, botkit_chat, plugins, adapters\n"
        "assert plugins.MINE and adapters.MINE\n"
        "assert 'site-packages' in botkit.__file__, botkit.__file__\n"
        "from botkit.discovery import load_adapter_class, load_plugin\n"
        "assert load_adapter_class('console').__name__ == 'ConsoleAdapter'\n"
        "assert load_plugin('chat').name == 'chat'\n"
    )
    result = subprocess.run(
        [str(python), "-c", check], cwd=project, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    helped = subprocess.run(
        [str(env_dir / "bin" / "botkit"), "--help"], cwd=project, capture_output=True, text=True
    )
    assert helped.returncode == 0
    assert "check-config" in helped.stdout
    chatted = subprocess.run(
        [str(env_dir / "bin" / "botkit"), "chat"],
        cwd=project,
        input="hi\n",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert chatted.returncode == 0, chatted.stderr
    assert "You said: hi" in chatted.stdout
