"""The benchmark suite starts and prints its result lines (nothing here is timed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench_line(scenario: str) -> str:
    """``python -m bench --quick --only SCENARIO``'s result line (it must exit 0)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", scenario, "--postgres", ""],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    [line] = [x for x in done.stdout.splitlines() if x.startswith(scenario)]
    return line


def test_bench_quick_tokens_prints_one_line_with_a_ratio() -> None:
    line = _bench_line("tokens")
    assert re.search(r"= \d+\.\d\dx the bare encoder", line), line


def test_bench_quick_durability_compares_full_and_normal_in_one_line() -> None:
    line = _bench_line("durability")
    assert re.search(r"throughput full \d+ vs normal \d+ msg/s = \d+\.\d\dx", line), line
    assert re.search(r"p50 one at a time full .* ms vs normal .* ms = \d+\.\d\dx", line), line


def test_bench_quick_transactions_counts_writes_per_answer() -> None:
    line = _bench_line("transactions")
    found = re.search(r"plain (\d+\.\d) writes.*streamed .* (\d+\.\d) writes", line)
    assert found, line
    plain, streamed = float(found.group(1)), float(found.group(2))
    # an edit per word costs no write: a streamed answer is a few writes, not 30 more
    assert plain < streamed < plain + 5, line
