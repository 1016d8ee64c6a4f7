"""The operations page's benchmark starts and prints its figures (nothing here is timed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_quick_admin_times_every_page_against_the_200_ms_target() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "admin", "--postgres", ""],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith("admin")]
    assert "10,000 messages: median list " in line, line
    for page in ["search", "conversation", "spend", "spend by user", "attention", "work"]:
        assert re.search(rf"\b{page} \d+(\.\d+)? ms", line), (page, line)
    assert re.search(r"slowest \([a-z ]+\) = \d+\.\d\dx the 200 ms target", line), line
