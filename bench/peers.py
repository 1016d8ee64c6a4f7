"""The peers' scenario: botkit with every default against hand-written baselines, errbot
and opsdroid, each in a process of its own on the same pinned core.

100 users in a closed loop (each sends its next message once the last one was answered),
1,000 warm-up then 10,000 measured messages, one chat-completions call per message to the
instant fake model (``bench/_model_server.py``, pinned to another core), the turn stored,
the reply sent. Every user keeps one conversation, so conversations grow to 220 turns.
Each target then answers one user alone for latency. Three rounds, rotating which
target goes first, each target a fresh process with a fresh database; the table gives
each figure's median over the rounds:

- msg/s: measured messages over the measured phase's wall time;
- CPU ms/msg: the target process's own CPU time (user and system, every thread, from
  ``getrusage``) over the measured phase, per message;
- peak RSS: the process's ``VmHWM`` at the end, start-up included.

Targets (``bench/_peer_targets.py``, ``bench/_peer_worker.py``, ``bench/_errbot_app.py``,
``bench/_opsdroid_app.py``): the minimal hand-written pipeline (aiohttp, one SQLite
insert per message, no history), on asyncio's loop as written and on uvloop's (the loop
botkit's commands run on by default, ``botkit/event_loop.py``: what the loop alone is
worth, by hand); the same sending the last 200 turns, read back per
message; errbot and opsdroid keeping the last 200 turns in their own stores and sending
them; botkit with every default on a channel that cannot edit (no stream: the default
for such a channel), and on one that edits (answers stream, the last edit kept one
``edit_interval``, 1 s, after the first text: a smaller plan, as each answer holds one
of the 32 ``max_in_flight`` slots for that second). Every HTTP pool holds 32
connections, as botkit's own does (``max_in_flight``).

With ``--against REV``, one more target: botkit with every default as it was at the git
revision REV (its ``botkit/``, ``adapters/`` and ``plugins/``, extracted with ``git
archive``, run under this harness), and a line comparing it with botkit now: what a
change saved, measured on one machine in one run.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bench._closed_loop import Plan
from bench._peer_venv import ERRBOT, OPSDROID, Peer, peer_python
from bench._util import ROOT, ModelServer, Options, Skipped, cpus, median, ms, pythonpath

TARGET_THROUGHPUT = 0.7
TARGET_CPU = 1.5
TARGET_LATENCY = 0.001
RUN_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class Target:
    """One row: a worker target of ``bench/_peer_worker.py``, or a peer framework."""

    label: str
    worker: str | None = None  # bench._peer_worker's TARGET
    peer: Peer | None = None
    small: bool = False  # the smaller plan (answers that wait for the edit pace)
    tree: Path | None = None  # another revision's botkit, adapters and plugins (--against)
    loop: str | None = None  # the worker's --loop (None: its default for the target)


TARGETS = (
    Target("minimal pipeline", worker="minimal"),
    Target("minimal pipeline on uvloop", worker="minimal", loop="uvloop"),
    Target("minimal + last 200 turns", worker="history"),
    Target("errbot 6.2.1", peer=ERRBOT),
    Target("opsdroid 0.31.0", peer=OPSDROID),
    Target("botkit, all defaults", worker="botkit"),
    Target(
        "botkit, all defaults, a channel that edits (streams)", worker="botkit-edits", small=True
    ),
)


@dataclass(frozen=True, slots=True)
class Sizes:
    """The plan of every target, the smaller one, and how many rounds."""

    plan: Plan
    small: Plan
    rounds: int


def sizes(quick: bool) -> Sizes:
    """Full: the issue's sizes. Quick: a smoke run of a few seconds per target."""
    if quick:
        return Sizes(Plan(10, 20, 100, 10), Plan(10, 10, 20, 0), rounds=1)
    return Sizes(Plan(100, 1_000, 10_000, 200), Plan(100, 100, 1_000, 0), rounds=3)


@dataclass(slots=True)
class Row:
    """What one target measured over the rounds (or why it could not run)."""

    target: Target
    runs: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None
    how: str = ""

    def figure(self, key: str) -> float:
        """The median over the rounds of ``rate``, ``cpu_ms``, ``rss`` or ``p50``."""
        values = {
            "rate": [r["messages"] / r["seconds"] for r in self.runs],
            "cpu_ms": [1000 * r["cpu_seconds"] / r["messages"] for r in self.runs],
            "rss": [r["peak_rss_mib"] for r in self.runs],
            "p50": [median(r["latencies"]) for r in self.runs if r["latencies"]],
        }[key]
        return median(values) if values else float("nan")


async def run_process(
    args: Sequence[str],
    env: dict[str, str],
    *,
    within: float = RUN_TIMEOUT,
    cwd: Path = ROOT,
) -> dict[str, Any]:
    """Run a target process to its end; the JSON object on its last line."""
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(within):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RuntimeError(f"{args[1]} did not finish in {within:.0f} s") from None
    if process.returncode != 0:
        tail = err.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{Path(args[1]).name} failed: {' | '.join(tail)[:600]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def command(
    target: Target, python: Path | None, model_url: str, workdir: Path, plan: Plan
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment that run ``target`` once (not yet pinned)."""
    if target.worker is not None:
        args = [sys.executable, "-m", "bench._peer_worker", target.worker]
        args += ["--model", model_url, "--workdir", str(workdir)]
        args += ["--users", str(plan.users), "--warmup", str(plan.warmup)]
        args += ["--measured", str(plan.measured), "--latency", str(plan.latency)]
        if target.loop is not None:
            args += ["--loop", target.loop]
        if target.tree is None:
            return args, {"PYTHONPATH": pythonpath()}
        # that revision's packages ahead of this tree's; bench itself is this tree's
        tree = [str(target.tree / part) for part in ("", "adapters", "plugins")]
        return args, {"PYTHONPATH": os.pathsep.join([*tree, pythonpath()])}
    assert python is not None
    assert target.peer is not None
    script = "_errbot_app.py" if target.peer is ERRBOT else "_opsdroid_app.py"
    args = [str(python), "-W", "ignore", str(ROOT / "bench" / script), model_url, str(workdir)]
    # the scripts put bench/ on their path themselves; the caller's PYTHONPATH stays (the
    # tests' network guard)
    return [*args, *plan.argv()], {"XDG_DATA_HOME": str(workdir)}


def checkout(revision: str, into: Path) -> tuple[str, Path]:
    """botkit's packages (``botkit/``, ``adapters/``, ``plugins/``) as they were at the
    git ``revision``, extracted under ``into``; its short hash, and the folder.

    Raises:
        Skipped: not a git checkout, or no such revision.
    """

    def git(*args: str) -> bytes:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, check=False)
        if done.returncode != 0:
            raise Skipped(f"git {args[0]} {revision}: {done.stderr.decode().strip()[:200]}")
        return done.stdout

    short = git("rev-parse", "--short", f"{revision}^{{commit}}").decode().strip()
    tree = into / f"botkit-{short}"
    tree.mkdir(parents=True)
    archive = git("archive", "--format=tar", short, "botkit", "adapters", "plugins")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tree, filter="data")
    return short, tree


def targets_for(opts: Options) -> tuple[Target, ...]:
    """The targets of this run: every one, and botkit at ``--against`` if asked."""
    if opts.against is None:
        return TARGETS
    short, tree = checkout(opts.against, opts.workdir / "against")
    then = Target(f"botkit at {short}, all defaults", worker="botkit", tree=tree)
    if opts.pairs:  # only the two botkits, one right after the other
        return (*(t for t in TARGETS if t.worker == "botkit"), then)
    return (*TARGETS, then)


async def measure(
    opts: Options, targets: Sequence[Target] | None = None
) -> tuple[list[Row], Sizes]:
    """Every target, round after round, rotating the order; rows in ``targets``' order
    (default: :func:`targets_for` the options)."""
    targets = targets_for(opts) if targets is None else targets
    size = sizes(opts.quick)
    if opts.pairs and opts.against:
        size = replace(size, rounds=opts.pairs)
    bot_cpu, model_cpu = cpus()
    rows = [Row(t) for t in targets]
    pythons: dict[int, Path] = {}
    for index, row in enumerate(rows):
        if row.target.peer is not None:
            try:
                pythons[index], row.how = await peer_python(
                    row.target.peer, install=not opts.offline
                )
            except Skipped as why:
                row.skipped = str(why)
    async with ModelServer(cpu=model_cpu) as model:
        for round_ in range(size.rounds):
            order = list(range(len(rows)))
            order = order[round_ % len(order) :] + order[: round_ % len(order)]
            for index in order:
                row = rows[index]
                if row.skipped is not None:
                    continue
                workdir = opts.workdir / f"peers-{round_}-{index}"
                workdir.mkdir()
                plan = size.small if row.target.small else size.plan
                args, env = command(row.target, pythons.get(index), model.url, workdir, plan)
                env["BOTKIT_BENCH_CPU"] = str(bot_cpu)
                # another revision's tree runs from its own folder: ``python -m`` puts
                # the working directory first on the path, ahead of PYTHONPATH
                cwd = row.target.tree or ROOT
                row.runs.append(await run_process(args, env, cwd=cwd))
    return rows, size


def _table(rows: list[Row]) -> list[str]:
    minimal = rows[0]
    base_rate, base_cpu = minimal.figure("rate"), minimal.figure("cpu_ms")
    lines = [
        "| target | msg/s | CPU ms/msg | peak RSS MiB | vs minimal: throughput, CPU "
        "| 1-user p50 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row.skipped is not None:
            lines.append(f"| {row.target.label} | skipped: {row.skipped} | | | | |")
            continue
        rate, cpu = row.figure("rate"), row.figure("cpu_ms")
        p50 = row.figure("p50")
        latency = ms(p50) if p50 == p50 else "(>= edit_interval)"
        lines.append(
            f"| {row.target.label} | {rate:,.0f} | {cpu:.2f} | {row.figure('rss'):.0f} | "
            f"{rate / base_rate:.2f}x, {cpu / base_cpu:.2f}x | {latency} |"
        )
    return lines


def render(rows: list[Row], size: Sizes) -> str:
    """The scenario's output: a summary line, the table, botkit against its targets."""
    bot_cpu, model_cpu = cpus()
    plan, small = size.plan, size.small
    turns = 2 * (plan.per_user[0] + plan.per_user[1])
    head = (
        f"{plan.users} users in a closed loop, {plan.warmup:,} warm-up then "
        f"{plan.measured:,} measured messages (conversations grow to {turns} turns), "
        f"{plan.latency} more from one user alone; the streaming line {small.warmup:,} then "
        f"{small.measured:,}; each target its own process on CPU {bot_cpu}, the model on "
        f"CPU {model_cpu}; medians of {size.rounds} interleaved round(s)"
    )
    streamed = [r for r in rows if r.target.worker == "botkit-edits" and r.runs]
    if streamed:
        runs = streamed[0].runs
        head += (
            f"; the channel that edits got {sum(r['edited'] for r in runs):,} edits for "
            f"{sum(r['sent'] for r in runs):,} messages sent"
        )
    peers = [f"{r.target.label}: {r.how}" for r in rows if r.how]
    if peers:
        head += f"  [{'; '.join(peers)}]"
    by_worker = {r.target.worker: r for r in rows if r.target.tree is None and not r.target.loop}
    botkit, minimal = by_worker["botkit"], by_worker["minimal"]
    on_uvloop = [r for r in rows if r.target.worker == "minimal" and r.target.loop and r.runs]
    verdict = (
        f"botkit, all defaults: {botkit.figure('rate') / minimal.figure('rate'):.2f}x the "
        f"minimal pipeline's throughput (target >= {TARGET_THROUGHPUT}x), "
        f"{botkit.figure('cpu_ms') / minimal.figure('cpu_ms'):.2f}x its CPU per message "
        f"(target <= {TARGET_CPU}x); 1-user p50 {ms(botkit.figure('p50'))} vs "
        f"{ms(minimal.figure('p50'))} = {ms(botkit.figure('p50') - minimal.figure('p50'))} "
        f"more (target <= {ms(TARGET_LATENCY)})"
    )
    for other in on_uvloop:  # botkit runs on uvloop by default: the same loop, by hand
        verdict += (
            f"; against the {other.target.label}: "
            f"{botkit.figure('rate') / other.figure('rate'):.2f}x, "
            f"{botkit.figure('cpu_ms') / other.figure('cpu_ms'):.2f}x, "
            f"{ms(botkit.figure('p50') - other.figure('p50'))} more"
        )
    earlier = [_since(r, botkit) for r in rows if r.target.tree is not None and r.runs]
    return "\n".join([head, *_table(rows), verdict, *_by_thread(botkit), *earlier])


def _by_thread(row: Row) -> list[str]:
    """Where botkit's CPU per message went, thread by thread (the round of median CPU):
    the event loop's and the database threads' shares of the process's figure."""
    runs = [r for r in row.runs if r.get("threads")]
    if not runs:
        return []
    run = sorted(runs, key=lambda r: r["cpu_seconds"] / r["messages"])[len(runs) // 2]
    per = {name: 1000 * used / run["messages"] for name, used in run["threads"].items()}
    total = 1000 * run["cpu_seconds"] / run["messages"]
    named = sorted(((v, k) for k, v in per.items() if v >= 0.005), reverse=True)
    parts = [f"{name} {used:.2f}" for used, name in named]
    rest = total - sum(per.values())  # threads that ended within the phase, the kernel's
    return [
        f"botkit's CPU by thread (ms/msg, its median round): {', '.join(parts)}; "
        f"not in a thread still running {rest:.2f}; in all {total:.2f}"
    ]


def _since(earlier: Row, now: Row) -> str:
    """botkit now against botkit at an earlier revision, measured in the same run."""
    name = earlier.target.label.removesuffix(", all defaults")
    cpu, rate = now.figure("cpu_ms"), now.figure("rate")
    then_cpu, then_rate = earlier.figure("cpu_ms"), earlier.figure("rate")
    return (
        f"botkit now against {name}: CPU {then_cpu:.2f} -> {cpu:.2f} ms/msg "
        f"({cpu / then_cpu:.2f}x), throughput {then_rate:,.0f} -> {rate:,.0f} msg/s "
        f"({rate / then_rate:.2f}x), 1-user p50 {ms(earlier.figure('p50'))} -> "
        f"{ms(now.figure('p50'))}"
    )


def render_pairs(rows: list[Row], size: Sizes) -> str:
    """``--pairs``: botkit now against botkit at an earlier revision, round by round."""
    now, then = rows
    ratios = [
        (a["cpu_seconds"] / a["messages"]) / (b["cpu_seconds"] / b["messages"])
        for a, b in zip(now.runs, then.runs, strict=True)
    ]
    rates = [
        (a["messages"] / a["seconds"]) / (b["messages"] / b["seconds"])
        for a, b in zip(now.runs, then.runs, strict=True)
    ]
    bot_cpu, _ = cpus()
    return "\n".join(
        [
            f"{size.rounds} rounds of botkit now and {then.target.label} one right after the"
            f" other ({size.plan.users} users, {size.plan.measured:,} measured messages each,"
            f" on CPU {bot_cpu})",
            "CPU per message now/then by round: "
            + ", ".join(f"{r:.2f}" for r in ratios)
            + f"; median {median(ratios):.2f}x",
            "throughput now/then by round: "
            + ", ".join(f"{r:.2f}" for r in rates)
            + f"; median {median(rates):.2f}x",
            _since(then, now),
            *_by_thread(now),
        ]
    )


async def run_writer(opts: Options) -> str:
    """``writer``: botkit (every default) in the peers' closed loop once more, its SQLite
    writer's CPU counted operation by operation over the measured phase
    (``bench/_writer_ops.py``); what the peers' table cannot say about the writer's
    share of botkit's CPU."""
    plan = sizes(opts.quick).plan
    return render_writer(await _probed(opts, "writer", plan, "--writer-ops"), plan)


def render_writer(result: dict[str, Any], plan: Plan) -> str:
    """The ``writer`` line: CPU per operation and per message, largest first."""
    from bench._writer_ops import CONTEXT_READ, TRANSACTIONS

    messages = result["messages"]
    ops: dict[str, list[float]] = result["writer"]
    thread = result["threads"].get("botkit-db-write", float("nan"))
    parts = []
    for name, (count, cpu) in sorted(ops.items(), key=lambda kv: -kv[1][1]):
        if name == CONTEXT_READ or not count:
            continue
        each = f"{1e6 * cpu / count:.0f} us each"
        if name == "Accept" and ops[CONTEXT_READ][0]:
            read_count, read_cpu = ops[CONTEXT_READ]
            each += f", its context read {1e6 * read_cpu / read_count:.0f}"
        what = f"{count / messages:.2f} per message" if name == TRANSACTIONS else f"{count:,}"
        parts.append(f"{name} {1000 * cpu / messages:.3f} ms/msg ({what}, {each})")
    counted = sum(cpu for _, cpu in ops.values()) - ops[CONTEXT_READ][1]
    return (
        f"botkit's SQLite writer thread, every default, {plan.users} users, "
        f"{messages:,} measured messages: {1000 * counted / messages:.3f} ms of CPU per "
        f"message counted by operation (the thread's own clock says "
        f"{1000 * thread / messages:.3f}): " + "; ".join(parts)
    )


async def run_alone(opts: Options) -> str:
    """``alone``: botkit (every default) answering one user alone, the peers' 1-user
    latency taken apart stage by stage (``bench/_stage_clock.py``): where the time goes
    that the peers' table gives only in all."""
    plan = Plan(1, 20, 100, 0) if opts.quick else Plan(1, 200, 1_000, 0)
    return render_alone((await _probed(opts, "alone", plan, "--stages"))["stages"])


async def _probed(opts: Options, name: str, plan: Plan, probe: str) -> dict[str, Any]:
    """botkit (every default) run once as the peers run it, on its own core with the
    model on another, with a probe of ``bench/_peer_worker.py`` switched on (``probe``:
    its flag); the worker's JSON line."""
    bot_cpu, model_cpu = cpus()
    target = next(t for t in TARGETS if t.worker == "botkit")
    workdir = opts.workdir / name
    workdir.mkdir()
    async with ModelServer(cpu=model_cpu) as model:
        args, env = command(target, None, model.url, workdir, plan)
        env["BOTKIT_BENCH_CPU"] = str(bot_cpu)
        return await run_process([*args, probe], env)


def render_alone(stages: dict[str, Any]) -> str:
    """The ``alone`` line: the whole wait's median, then each stage's."""
    from bench._stage_clock import STAGES, TOTAL

    each = stages["stages"]
    parts = ", ".join(f"{name} {1000 * each[name]:.2f}" for name, _, _ in STAGES)
    return (
        f"botkit, every default, one user alone, {stages['messages']:,} messages: p50 "
        f"{1000 * each[TOTAL]:.2f} ms from the channel's hand-over to the reply's; medians "
        f"by stage (ms): {parts}; the writer's commits {1000 * stages['commit']:.2f} ms "
        f"each, {stages['commits']:.1f} per message"
    )


async def run(opts: Options) -> str:
    """``peers``."""
    rows, size = await measure(opts)
    if opts.pairs and opts.against:
        return render_pairs(rows, size)
    return render(rows, size)
