"""The benchmark suite starts and prints its result lines (nothing here is timed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_tokens_prints_one_line_with_a_ratio() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "tokens", "--postgres", ""],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("tokens")]
    assert re.search(r"= \d+\.\d\dx the bare encoder", line), line
