"""What a batch reports: each job's result, the events while it runs, and their one-line and table forms."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

from .manifest import Job


@dataclass(frozen=True)
class JobResult:
    index: int
    name: str
    mode: str
    line: int | None
    status: str  # "done" (rendered now), "skipped" (finished by an earlier run) or "failed"
    frames: int
    dreamed: int  # frames dreamed by this run; the rest were resumed or already finished
    seconds: float  # wall time of this run
    output: str
    error: str | None = None
    detail: str | None = None
    where: str | None = None  # the worker(s): "GPU 1", "CPU", a Ray node
    loads: int = 0  # networks loaded for it; 0 when its worker kept the network of an earlier job


@dataclass(frozen=True)
class BatchSummary:
    manifest: str
    results: tuple[JobResult, ...]
    path: str  # the JSON copy of the results

    @property
    def failed(self) -> tuple[JobResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")


@dataclass(frozen=True)
class BatchEvent:
    """What the batch reports while it runs: a job starts, frames finish, a job finishes."""

    kind: str  # "start", "frames" or "finish"
    job: Job
    where: str | None = None
    frames: int = 0  # "frames": frames finished since the last event, over all jobs
    total: int | None = None  # "frames": frames of the whole batch, as far as known
    result: JobResult | None = None  # "finish"


BatchProgress = Callable[[BatchEvent], None]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_event(event: BatchEvent, jobs: int) -> str | None:
    """One line for a job's start or finish; None for frame counts."""
    head = f"[{event.job.index}/{jobs}] {event.job.name}"
    if event.kind == "start":
        return f"{head}: started ({event.job.mode}{', ' + event.where if event.where else ''})"
    if event.kind == "finish" and event.result is not None:
        r = event.result
        if r.status == "failed":
            return f"{head}: FAILED after {_clock(r.seconds)}: {r.error}"
        if r.status == "skipped":
            return f"{head}: already finished, skipped ({r.output})"
        return f"{head}: done, {r.frames} frames in {_clock(r.seconds)} -> {r.output}"
    return None


def format_summary(summary: BatchSummary) -> str:
    """The results as a table: job, status, frames, time, output or error."""
    rows = [(f"{r.index} {r.name}", r.status, str(r.frames), _clock(r.seconds),
             r.error if r.status == "failed" else r.output) for r in summary.results]
    header = ("job", "status", "frames", "time", "output / error")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}  {e}"
             for a, b, c, d, e in [header, *rows]]
    counts = Counter(r.status for r in summary.results)
    tally = ", ".join(f"{counts[s]} {s}" for s in ("done", "skipped", "failed") if counts[s])
    return "\n".join(lines + [f"{len(summary.results)} jobs: {tally}; results in {summary.path}"])
