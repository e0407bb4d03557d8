"""The batch itself: plan the units of a manifest, follow the workers' reports, join segments, keep the summary."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import time
from dataclasses import asdict
from typing import Sequence

from ..errors import DDVideoError, LockedError, SettingsError
from ..media import WorkLock, atomic_path, check_unlocked, join_segments
from ..options import parse_argv
from .manifest import Job, Manifest
from .results import BatchEvent, BatchProgress, BatchSummary, JobResult
from .segments import Segment, finished, plan_segments, write_bridge
from .units import Unit, UnitResult, output_frames
from .workers import connect_ray, run_local, run_ray, visible_gpus

MIN_SEGMENT_FRAMES = 250  # automatic splitting keeps segments this long, so warm-up stays a small overhead


class _Batch:
    """The batch's bookkeeping in the parent: plan units, follow their reports, join segments, keep the summary."""

    def __init__(self, manifest: Manifest, progress: BatchProgress | None):
        self.manifest = manifest
        self.progress = progress or (lambda event: None)
        self.results: dict[int, JobResult] = {}
        self.segments: dict[int, list[Segment]] = {}
        self.unit_results: dict[str, UnitResult] = {}
        self.units: dict[str, Unit] = {}
        self.began: dict[int, float] = {}
        self.wheres: dict[int, list[str]] = {}
        self.seen: dict[str, int] = {}  # frames reported per unit
        self.totals: dict[str, int] = {}
        self.retries: dict[int, list[str]] = {}  # job -> why each of its retries was needed
        self.locks: dict[int, WorkLock] = {}  # segmented jobs: their work folder, held here from plan to join

    # -- planning -----------------------------------------------------------------------------------
    def plan(self, *, segments: int | None, slots: int) -> list[Unit]:
        """Skip finished jobs; split video jobs into segments where asked (or where workers would idle)."""
        pending = []
        for job in self.manifest.jobs:
            if finished(job.output, job.work_dir):
                self._finish(job, "skipped", frames=output_frames(job.output))
            elif not self._elsewhere(job) and self._make_output_folder(job):
                pending.append(job)
        units = []
        for job in pending:
            parts = self._parts(job, segments, slots, len(pending))
            if parts <= 1:
                units.append(Unit(job))  # its render takes the lock of its work folder
                continue
            try:  # its segments render in work folders of their own inside the job's, which this process holds
                self.locks[job.index] = WorkLock(job.work_dir, output=job.output).acquire()
            except LockedError as exc:
                self._finish(job, "running elsewhere", error=str(exc))
                continue
            except DDVideoError as exc:
                self._finish(job, "failed", error=str(exc))
                continue
            segs = self.segments[job.index] = plan_segments(job, parts)
            for seg in segs:
                unit = Unit(job, seg)
                if unit.done():
                    self.unit_results[unit.key] = UnitResult(unit.key, True, frames=unit.frames())
                else:
                    units.append(unit)
            if all(Unit(job, s).key in self.unit_results for s in segs):  # a crash came between segments and join
                self._join(job)
        self.units = {unit.key: unit for unit in units}
        self._save()
        return units

    def _elsewhere(self, job: Job) -> bool:
        """True (and the job's result recorded) when another render holds the job's work folder."""
        try:
            check_unlocked(job.work_dir, output=job.output)
        except LockedError as exc:
            self._finish(job, "running elsewhere", error=str(exc))
            return True
        return False

    def _make_output_folder(self, job: Job) -> bool:
        """Create the folder the job's output goes in (the manifest check found where it can be made)."""
        folder = os.path.dirname(job.output.rstrip("/\\"))
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            self._finish(job, "failed", error=f"cannot create the output folder {folder}: {exc.strerror or exc}; "
                                              "check the path and its permissions")
            return False
        return True

    def _parts(self, job: Job, segments: int | None, slots: int, pending: int) -> int:
        if not job.segmentable or not job.frames:
            return 1
        if job.segments is not None:
            parts = job.segments
        elif segments is not None:
            parts = segments
        else:
            parts = _layout(job)  # keep the split of an earlier, interrupted run: its frames are in it
            if parts is None:
                parts = min(math.ceil(slots / pending), job.frames // MIN_SEGMENT_FRAMES) if slots > pending else 1
        return max(1, min(parts, job.frames))

    # -- reports from workers -----------------------------------------------------------------------
    def on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "start":
            _, _, key, where = message
            unit = self.units.get(key)
            if unit is None:
                return
            job = unit.job
            if where and where not in self.wheres.setdefault(job.index, []):
                self.wheres[job.index].append(where)
            if job.index not in self.began:
                self.began[job.index] = time.perf_counter()
                self.progress(BatchEvent("start", job, where=where))
        elif kind == "frames":
            _, key, done, total = message
            self._frames(key, done, total)
        elif kind == "result":
            self.on_result(message[2])
        elif kind == "retry":  # its worker died; it runs again and resumes from its frames
            _, key, reason = message
            unit = self.units.get(key)
            if unit is not None:
                where = f"segment {unit.segment.index + 1} of {unit.segment.count}: " if unit.segment else ""
                self.retries.setdefault(unit.job.index, []).append(where + reason)

    def _frames(self, key: str, done: int, total: int | None) -> None:
        unit = self.units.get(key)
        if unit is None:
            return
        if total is not None:
            self.totals[key] = total
        new = done - self.seen.get(key, 0)
        if new > 0:
            self.seen[key] = done
            self.progress(BatchEvent("frames", unit.job, frames=new, total=self._total_frames()))

    def _total_frames(self) -> int:
        def expected(unit: Unit) -> int:
            if unit.key in self.totals:
                return self.totals[unit.key]
            if unit.segment is not None:
                return unit.segment.stop - unit.segment.first
            return unit.job.frames or (1 if unit.job.mode == "image" else 0)

        return sum(expected(unit) for unit in self.units.values())

    def on_result(self, result: UnitResult) -> None:
        unit = self.units[result.key]
        job = unit.job
        self._frames(result.key, result.frames, None if result.ok else result.frames)  # a failure shrinks the total
        if result.where and result.where not in self.wheres.setdefault(job.index, []):
            self.wheres[job.index].append(result.where)
        if job.index in self.results:  # a segment of a job that already failed
            return
        if unit.segment is None:
            status = "done" if result.ok else "running elsewhere" if result.elsewhere else "failed"
            self._finish(job, status, frames=result.frames, dreamed=result.dreamed,
                         error=result.error, detail=result.detail, seconds=result.seconds, loads=result.loads)
            return
        self.unit_results[result.key] = result
        segs = self.segments[job.index]
        if not result.ok:
            error = f"segment {unit.segment.index + 1} of {len(segs)}: {result.error}"
            self._finish(job, "failed", frames=self._segment_sum(job, "frames"),
                         dreamed=self._segment_sum(job, "dreamed"), error=error, detail=result.detail,
                         loads=self._segment_sum(job, "loads"))
        elif all(Unit(job, s).key in self.unit_results for s in segs):
            self._join(job)

    def _segment_sum(self, job: Job, field: str) -> int:
        return sum(getattr(self.unit_results[k], field) for k in (Unit(job, s).key for s in self.segments[job.index])
                   if k in self.unit_results)

    def _join(self, job: Job) -> None:
        from ..options import build_parser, run_settings

        segs = self.segments[job.index]
        frames, dreamed = self._segment_sum(job, "frames"), self._segment_sum(job, "dreamed")
        try:
            opts = parse_argv(build_parser(), list(job.argv))
            run, out = run_settings(opts)
            pieces = []
            for before, seg in zip([None, *segs], segs):
                if seg.lead:
                    if not os.path.exists(seg.bridge):
                        write_bridge(before.tail_dir, seg.lead_dir, seg.bridge, fps=job.fps, crf=out.crf)
                    pieces.append(seg.bridge)
                pieces.append(seg.main)
            sound, start = (opts["audio"], 0.0) if opts.get("audio") else (job.input, job.origin)  # --audio replaces it
            join_segments(pieces, job.output, audio_from=sound if out.audio else None,
                          audio_start=start, duration=frames / job.fps)
        except DDVideoError as exc:
            self._finish(job, "failed", frames=frames, dreamed=dreamed, error=str(exc))
            return
        if not run.keep_work:
            shutil.rmtree(job.work_dir, ignore_errors=True)
        self._finish(job, "done", frames=frames, dreamed=dreamed, loads=self._segment_sum(job, "loads"))

    def _finish(self, job: Job, status: str, *, frames: int = 0, dreamed: int = 0, error: str | None = None,
                detail: str | None = None, seconds: float | None = None, loads: int = 0) -> None:
        if job.index in self.began:
            seconds = time.perf_counter() - self.began[job.index]
        result = JobResult(job.index, job.name, job.mode, job.line, status, frames, dreamed, seconds or 0.0,
                           job.output, error, detail, ", ".join(self.wheres.get(job.index, [])) or None, loads,
                           tuple(self.retries.get(job.index, ())))
        self.results[job.index] = result
        if job.index in self.locks:  # after the join and the removal of its work folder, or its failure
            self.locks.pop(job.index).release()
        self._save()
        self.progress(BatchEvent("finish", job, where=result.where, result=result))

    # -- the summary --------------------------------------------------------------------------------
    def _save(self, *, interrupted: bool = False) -> None:
        """Write the results so far next to the manifest (atomically): a killed batch leaves them too."""
        jobs = []
        for job in self.manifest.jobs:
            if job.index in self.results:
                jobs.append(asdict(self.results[job.index]))
            else:
                status = "interrupted" if interrupted and job.index in self.began else "pending"
                jobs.append({"index": job.index, "name": job.name, "mode": job.mode, "line": job.line,
                             "status": status, "output": job.output})
        record = {"manifest": self.manifest.path, "finished": len(self.results) == len(self.manifest.jobs),
                  "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "jobs": jobs}
        with atomic_path(self.manifest.summary_path) as tmp:
            tmp.write_text(json.dumps(record, indent=2), encoding="utf-8")

    def release(self) -> None:
        """Let go of the work folders still held (an interrupted batch): a rerun continues them."""
        for lock in self.locks.values():
            lock.release()
        self.locks.clear()

    def summary(self) -> BatchSummary:
        return BatchSummary(self.manifest.path, tuple(self.results[i] for i in sorted(self.results)),
                            self.manifest.summary_path)


def _layout(job: Job) -> int | None:
    """The segment count an interrupted run of `job` used (1: it ran whole), or None if it left no frames."""
    frames = os.path.join(job.work_dir, "frames")
    if os.path.isdir(frames) and os.listdir(frames):
        return 1
    with contextlib.suppress(OSError):
        counts = [int(m[1]) for name in os.listdir(os.path.join(job.work_dir, "segments"))
                  if (m := re.fullmatch(r"\d{3}-of-(\d{3})", name))]
        if counts:
            return max(counts)
    return None


def run_batch(manifest: Manifest, *, gpus: Sequence[str] | None = None, ray: str | None = None,
              segments: int | None = None, progress: BatchProgress | None = None) -> BatchSummary:
    """Render every job of `manifest`: finished ones are skipped, interrupted ones resume, a failure stops no other.

    Locally, one worker process per GPU (`gpus`: ids as nvidia-smi numbers them; None = every visible GPU,
    [] = one CPU worker), each pinned with CUDA_VISIBLE_DEVICES and handed the next job as it frees up. With
    `ray` (an address or "auto") the jobs run on Ray actors of one GPU each on that cluster instead. `segments`
    splits each video job into that many parts rendered in parallel and joined without re-encoding (default:
    only where workers would otherwise idle). The results are also written to `manifest.summary_path`.
    """
    if segments is not None and segments < 1:
        raise SettingsError(f"--segments must be 1 or more, got {segments}")
    batch = _Batch(manifest, progress)
    try:
        if ray is None:
            devices: list[str | None] = list(gpus) if gpus else ([""] if gpus is not None else visible_gpus() or [None])
            units = batch.plan(segments=segments, slots=len(devices))
            run_local(units, devices, batch.on_message)
        else:
            if gpus is not None:
                raise SettingsError("--gpus chooses GPUs of this server; on a Ray cluster each task gets one GPU from Ray")
            ray_module, slots, use_gpus, owned = connect_ray(ray)
            try:
                units = batch.plan(segments=segments, slots=slots)
                run_ray(ray_module, units, use_gpus, batch.on_message, slots=slots)
            finally:
                if owned:
                    ray_module.shutdown()
    except BaseException:
        batch._save(interrupted=True)
        raise
    finally:
        batch.release()
    return batch.summary()
