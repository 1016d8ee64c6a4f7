"""Every benchmark scenario starts and prints its figures at a smoke run's size.

Nothing here is timed: each test runs ``python -m bench --quick --only NAME`` and checks
the shape of what it printed, so that no scenario rots unnoticed. The PostgreSQL
scenarios run when ``BOTKIT_TEST_POSTGRES_URL`` is set. No test may reach the internet,
so the runs are ``--offline``: errbot and opsdroid run from the venvs that ``python -m
bench --install-peers`` (or any earlier ``peers`` run) left in ``~/.cache/botkit-bench``,
and a peer not installed there is reported on its row: the only skip accepted.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("BOTKIT_TEST_POSTGRES_URL", "")
NUMBER = r"[\d,]+(?:\.\d+)?"

# each scenario, and what its result line must show
EXPECTED: dict[str, str] = {
    "overhead/sqlite": rf"throughput {NUMBER}x minimal .* CPU {NUMBER} vs {NUMBER} ms/msg",
    "overhead/postgres": rf"throughput {NUMBER}x minimal .* CPU {NUMBER} vs {NUMBER} ms/msg",
    "concurrency": rf"answered in .* CPU {NUMBER} ms/msg \(minimal {NUMBER}\).*pools of 1,000",
    "concurrency/pool": rf"answered in .* CPU {NUMBER} ms/msg \(minimal {NUMBER}\)",
    "concurrency/default": rf"answered in .* CPU {NUMBER} ms/msg",
    "durability": rf"throughput full \d+ vs normal \d+ msg/s = {NUMBER}x  CPU full",
    "history/sqlite": rf"= {NUMBER}x \(target: the same within noise",
    "history/postgres": rf"= {NUMBER}x \(target: the same within noise",
    "fit": rf"= {NUMBER}x the target",
    "tokens": r"= \d+\.\d\dx the bare encoder",
    "streaming/slack": r"first token -> first text .* edits \d+/min",
    "streaming/telegram": r"first token -> first text .* edits \d+/min",
    "peers": rf"botkit, all defaults: {NUMBER}x the minimal pipeline's throughput",
    "history/length": rf"= {NUMBER}x \(target: the same within noise; defaults: 201 vs 4",
    "history/path": rf"20,000 stored turns {NUMBER} ms vs .* = {NUMBER}x \(target: the same",
    # the operations page's pages: tests/test_bench_admin.py checks each of them
    "admin": rf"slowest \([a-z ]+\) = {NUMBER}x the 200 ms target",
    "scaleout": rf"1 worker\(s\) {NUMBER} msg/s.*database CPU between {NUMBER} .*"
    rf"2 worker\(s\).*4 worker\(s\) {NUMBER} msg/s",
    # each of a message's writes, its context read and the transactions, by name
    "writer": rf"(?=.*Accept {NUMBER} ms/msg \({NUMBER}, {NUMBER} us each, its context read "
    rf"{NUMBER}\))(?=.*Finish {NUMBER} ms/msg)(?=.*OutboundStore.update {NUMBER} ms/msg)"
    rf"(?=.*transactions {NUMBER} ms/msg \({NUMBER} per message)"
    rf"{NUMBER} ms of CPU per message counted by operation \(the thread's own clock says",
    "transactions": r"plain \d+\.\d writes.*streamed .* \d+\.\d writes",
    # every stage of one user's wait, and the commits on it
    "alone": rf"one user alone, \d+ messages: p50 {NUMBER} ms .* accept {NUMBER}, to the "
    rf"model {NUMBER}, model call {NUMBER}, to the finish {NUMBER}, finish {NUMBER}, to the "
    rf"channel {NUMBER}; the writer's commits {NUMBER} ms each, {NUMBER} per message",
}
NEEDS_POSTGRES = {"overhead/postgres", "history/postgres", "scaleout"}


def _bench(scenario: str, *args: str, **environ: str) -> str:
    """``python -m bench --quick --offline --only SCENARIO``'s output (it must exit 0)."""
    command = [sys.executable, "-m", "bench", "--quick", "--offline", "--only", scenario]
    done = subprocess.run(
        [*command, "--postgres", POSTGRES_URL, *args],
        env={**os.environ, **environ},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _line(output: str, scenario: str) -> str:
    [line] = [x for x in output.splitlines() if x.split()[:1] == [scenario]]
    return line


def test_every_scenario_has_a_smoke_test() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert set(done.stdout.split()) == set(EXPECTED)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("scenario", sorted(set(EXPECTED) - {"peers", "admin"}))
def test_bench_quick_scenario_prints_its_figures(scenario: str) -> None:
    if scenario in NEEDS_POSTGRES and not POSTGRES_URL:
        pytest.skip("needs PostgreSQL: set BOTKIT_TEST_POSTGRES_URL")
    line = _line(_bench(scenario), scenario)
    assert re.search(EXPECTED[scenario], line), line


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_quick_peers_prints_a_row_per_target_with_cpu_and_memory() -> None:
    output = _bench("peers")
    assert re.search(EXPECTED["peers"], output), output
    rows = {
        cells[0]: cells[1:]
        for line in output.splitlines()
        if line.startswith("| ") and not line.startswith(("| target", "| ---"))
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert list(rows) == [
        "minimal pipeline",
        "minimal pipeline on uvloop",
        "minimal + last 200 turns",
        "errbot 6.2.1",
        "opsdroid 0.31.0",
        "botkit, all defaults",
        "botkit, all defaults, a channel that edits (streams)",
    ]
    for target, cells in rows.items():
        if cells[0].startswith("skipped: ") and "--install-peers" in cells[0]:
            continue  # not installed here, and a test may not install it
        rate, cpu, rss, ratios = cells[:4]
        assert re.fullmatch(NUMBER, rate), (target, cells)
        assert float(cpu) > 0, (target, cells)
        assert float(rss) > 10, (target, cells)
        assert re.fullmatch(rf"{NUMBER}x, {NUMBER}x", ratios), (target, cells)
    assert rows["minimal pipeline"][3] == "1.00x, 1.00x"
    # botkit streamed to the channel that edits: the streaming line measures a stream
    edits = re.search(r"the channel that edits got ([\d,]+) edits", output)
    assert edits, output
    assert int(edits.group(1).replace(",", "")) > 0, output
    # where botkit's CPU went: the event loop and the database writer, adding up
    threads = re.search(
        r"botkit's CPU by thread \(ms/msg, its median round\): (.*)$", output, re.M
    )
    assert threads, output
    shares = dict(re.findall(r"([\w-]+) (\d+\.\d\d)", threads.group(1)))
    assert float(shares["MainThread"]) > 0, threads.group(0)
    assert float(shares["botkit-db-write"]) > 0, threads.group(0)
    assert float(shares["all"]) >= float(shares["MainThread"]), threads.group(0)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_offline_skips_a_peer_not_installed_instead_of_reaching_pypi(
    tmp_path: Path,
) -> None:
    output = _bench("peers", BOTKIT_BENCH_CACHE=str(tmp_path))
    for peer in ("errbot 6.2.1", "opsdroid 0.31.0"):
        [row] = [line for line in output.splitlines() if line.startswith(f"| {peer} |")]
        assert "is not installed" in row, row
        assert "--install-peers" in row, row
    assert list(tmp_path.iterdir()) == []  # nothing was installed


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_peers_against_a_revision_runs_that_revisions_botkit_side_by_side() -> None:
    """``--against REV``: one more row, botkit's packages as they were at REV (HEAD
    here, as any clone has it), and a line of what changed since."""
    output = _bench("peers", "--against", "HEAD")
    short = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    [row] = [
        x for x in output.splitlines() if x.startswith(f"| botkit at {short}, all defaults |")
    ]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert re.fullmatch(NUMBER, cells[1]), row
    assert float(cells[2]) > 0, row
    assert re.search(
        rf"botkit now against botkit at {short}: CPU {NUMBER} -> {NUMBER} ms/msg", output
    ), output


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_peers_pairs_runs_only_the_two_botkits_round_after_round() -> None:
    """``--against REV --pairs N``: botkit now and at REV, N rounds, and the ratios."""
    output = _bench("peers", "--against", "HEAD", "--pairs", "2")
    assert "| minimal pipeline |" not in output  # only the two botkits ran
    assert re.search(r"2 rounds of botkit now and botkit at \w+, all defaults", output)
    cpu = re.search(rf"CPU per message now/then by round: ({NUMBER}), ({NUMBER}); median", output)
    assert cpu, output
    assert all(float(r) > 0 for r in cpu.groups()), output
    assert re.search(rf"throughput now/then by round: .*; median {NUMBER}x", output), output
    assert "botkit now against botkit at" in output


def test_bench_against_extracts_the_packages_of_that_revision(tmp_path: Path) -> None:
    from bench._util import Skipped
    from bench.peers import checkout

    short, tree = checkout("HEAD", tmp_path)
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert short == head.stdout.strip()
    assert sorted(p.name for p in tree.iterdir()) == ["adapters", "botkit", "plugins"]
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", "HEAD:botkit/__init__.py"],
        capture_output=True,
        check=True,
    ).stdout
    assert (tree / "botkit" / "__init__.py").read_bytes() == shown
    with pytest.raises(Skipped, match="no-such-revision"):
        checkout("no-such-revision", tmp_path / "other")
