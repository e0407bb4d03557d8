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
    status: str  # "done" (rendered now), "skipped" (finished by an earlier run), "failed", or "running elsewhere"
    # (another render holds its work folder: another batch, a command, another machine on shared storage)
    frames: int
    dreamed: int  # frames dreamed by this run; the rest were resumed or already finished
    seconds: float  # wall time of this run
    output: str
    error: str | None = None
    detail: str | None = None
    where: str | None = None  # the worker(s): "GPU 1", "CPU", a Ray node
    loads: int = 0  # networks loaded for it; 0 when its worker kept the network of an earlier job
    retries: tuple[str, ...] = ()  # why each retry was needed: its worker died, and it resumed on a new one


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
        if r.status == "running elsewhere":
            return f"{head}: running elsewhere, not started here: {r.error}"
        retried = f" after {_retries(r)}: {'; '.join(r.retries)}" if r.retries else ""
        return f"{head}: done, {r.frames} frames in {_clock(r.seconds)}{retried} -> {r.output}"
    return None


def _retries(result: JobResult) -> str:
    n = len(result.retries)
    return f"{n} retr{'y' if n == 1 else 'ies'}"


def format_summary(summary: BatchSummary) -> str:
    """The results as a table: job, status, frames, time, retries, output or error."""
    rows = [(f"{r.index} {r.name}", r.status, str(r.frames), _clock(r.seconds), str(len(r.retries)),
             r.output if r.status in ("done", "skipped") else r.error) for r in summary.results]
    header = ("job", "status", "frames", "time", "retries", "output / error")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(5)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}  {e:>{widths[4]}}  {f}"
             for a, b, c, d, e, f in [header, *rows]]
    for r in summary.results:  # why each retry was needed, under the table
        lines += [f"  job {r.index} retry {i}: {reason}" for i, reason in enumerate(r.retries, 1)]
    counts = Counter(r.status for r in summary.results)
    tally = ", ".join(f"{counts[s]} {s}" for s in ("done", "skipped", "failed", "running elsewhere") if counts[s])
    return "\n".join(lines + [f"{len(summary.results)} jobs: {tally}; results in {summary.path}"])
