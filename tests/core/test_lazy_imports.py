"""What a bot loads only when it needs it: Alembic when the schema is behind, the
asyncio database layer for PostgreSQL, jsonschema for a JSON schema; never the ORM."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory

from botkit.store import engine

# a start on an existing database, as `botkit run` makes one: what it has imported after
_START = """
import asyncio, json, sys
from botkit.store import Database

LAZY = ("alembic", "mako", "sqlalchemy.ext.asyncio", "sqlalchemy.orm", "jsonschema")

async def main() -> None:
    database = Database(sys.argv[1])
    migrated = await database.upgrade()
    await database.close()
    print(json.dumps({"before": migrated.before, "applied": list(migrated.applied),
        "loaded": [m for m in LAZY if m in sys.modules]}))

asyncio.run(main())
"""


def test_the_written_down_head_is_the_newest_migration() -> None:
    config = AlembicConfig()
    config.set_main_option("script_location", str(engine._MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == engine.HEAD_REVISION


def _start(url: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", _START, url], capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_start_on_a_current_schema_never_loads_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    first = _start(url)
    assert first["before"] is None
    assert first["applied"]
    assert first["applied"][-1] == engine.HEAD_REVISION  # type: ignore[index]
    assert "alembic" in first["loaded"]  # type: ignore[operator]

    again = _start(url)
    assert again == {"before": engine.HEAD_REVISION, "applied": [], "loaded": []}
