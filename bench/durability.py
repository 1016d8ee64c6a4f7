"""Scenario: what ``synchronous=FULL`` (the default) costs against ``NORMAL`` on SQLite.

With FULL, SQLite syncs its write-ahead log to disk at every commit, so a message the
channel was told had arrived survives a power cut; NORMAL syncs only at checkpoints.
The same real ``Bot`` (the overhead scenario's pipeline: inbox, dispatcher, chat skill,
model server, outbox) runs on two SQLite files in the same folder, one per setting,
alternating, in the same run:

- latency: one message at a time, so every commit pays its own sync: the worst case;
- throughput: 32 users at once (the default ``max_in_flight``): group commit shares one
  sync among the writes that queued meanwhile, which is what should make FULL cheap.

The line gives each figure for both settings and FULL's ratio to NORMAL, and the file
system the files were on (on tmpfs a sync costs nothing and the ratio says nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench._pipelines import BotkitPipeline
from bench._util import ModelServer, Options, median, ms, percentile, sqlite_url
from bench.overhead import USERS, Figures, latency_phase, throughput_phase

SETTINGS = ("full", "normal")


@dataclass(slots=True)
class Sizes:
    """How much to send."""

    warmup: int
    latency: int
    per_user: int
    rounds: int


def sizes(quick: bool) -> Sizes:
    """Full runs send about 3,800 messages per setting (about 20 s in all)."""
    if quick:
        return Sizes(warmup=5, latency=20, per_user=2, rounds=1)
    return Sizes(warmup=20, latency=300, per_user=30, rounds=3)


def file_system(folder: Path) -> str:
    """The type of the file system holding ``folder`` (``ext4``, ``tmpfs``), if known."""
    best, kind = "", "unknown"
    try:
        mounts = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return kind
    target = str(folder.resolve())
    for entry in mounts:
        fields = entry.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best):
            best, kind = point, fields[2]
    return kind


async def measure(opts: Options, size: Sizes) -> dict[str, Figures]:
    """Run the bot on both settings, alternating; figures by setting."""
    async with ModelServer() as model:
        pipelines = [
            BotkitPipeline(
                sqlite_url(opts.workdir, f"durability-{setting}"),
                model.url,
                synchronous=setting,
                name=setting,
            )
            for setting in SETTINGS
        ]
        figures = {p.name: Figures() for p in pipelines}
        for pipeline in pipelines:
            await pipeline.start()
        try:
            for pipeline in pipelines:
                await latency_phase(pipeline, f"warm-{pipeline.name}", size.warmup)
            for round_ in range(size.rounds):
                order = pipelines if round_ % 2 == 0 else pipelines[::-1]
                for pipeline in order:
                    tag = f"d{round_}-{pipeline.name}"
                    figures[pipeline.name].latencies += await latency_phase(
                        pipeline, tag, size.latency
                    )
                for pipeline in order:
                    tag = f"d{round_}-{pipeline.name}"
                    rate, cpu = await throughput_phase(pipeline, tag, USERS, size.per_user)
                    figures[pipeline.name].rates.append(rate)
                    figures[pipeline.name].cpu_ms.append(cpu)
        finally:
            for pipeline in pipelines:
                await pipeline.close()
    return figures


def line(figures: dict[str, Figures], fs: str) -> str:
    """The result line: FULL against NORMAL."""
    full, normal = figures["full"], figures["normal"]
    f50, n50 = percentile(full.latencies, 50), percentile(normal.latencies, 50)
    f99, n99 = percentile(full.latencies, 99), percentile(normal.latencies, 99)
    f_rate, n_rate = max(full.rates), max(normal.rates)
    return (
        f"throughput full {f_rate:.0f} vs normal {n_rate:.0f} msg/s = {f_rate / n_rate:.2f}x  "
        f"CPU full {median(full.cpu_ms):.2f} vs normal {median(normal.cpu_ms):.2f} ms/msg  "
        f"p50 one at a time full {ms(f50)} vs normal {ms(n50)} = {f50 / n50:.2f}x  "
        f"p99 {ms(f99)} vs {ms(n99)}  (on {fs})"
    )


async def run(opts: Options) -> str:
    """``durability``."""
    figures = await measure(opts, sizes(opts.quick))
    return line(figures, file_system(opts.workdir))
