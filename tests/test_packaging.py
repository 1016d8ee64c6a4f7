"""The wheel works on its own: installed in a fresh venv, away from the checkout.

Offline, like every test: the wheel is built without build isolation (hatchling comes
from the dev extra) and installed without an index; the fresh venv sees this
environment's packages for botkit's dependencies, read-only, through a ``.pth`` file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest
from netguard_core import guarded_environ

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_wheel_installs_alone_and_does_not_collide_with_a_users_plugins_folder(
    tmp_path: Path,
) -> None:
    pytest.importorskip("hatchling", reason="building offline needs hatchling (the dev extra)")
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "build", "--wheel", "--no-isolation"]
    subprocess.run(
        [*build, "--outdir", str(dist), str(ROOT)],
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

    # away from the checkout: no PYTHONPATH but the network guard's
    away = guarded_environ({k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
        env=away,
    ).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (Path(site) / "zz_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    offline = ["--no-index", "--no-deps", "--ignore-installed"]
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", *offline, str(wheel)],
        check=True,
        capture_output=True,
        timeout=400,
        env=away,
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
        "import sys\n"
        "assert botkit.__file__.startswith(sys.prefix), botkit.__file__  # the wheel's\n"
        "from botkit.discovery import load_adapter_class, load_plugin\n"
        "assert load_adapter_class('console').__name__ == 'ConsoleAdapter'\n"
        "assert load_plugin('chat').name == 'chat'\n"
    )
    result = subprocess.run(
        [str(python), "-c", check],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=away,
    )
    assert result.returncode == 0, result.stderr
    helped = subprocess.run(
        [str(env_dir / "bin" / "botkit"), "--help"],
        cwd=project,
        capture_output=True,
        text=True,
        env=away,
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
        env=away,
    )
    assert chatted.returncode == 0, chatted.stderr
    assert "You said: hi" in chatted.stdout
