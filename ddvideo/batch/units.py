"""What a worker renders at a time: a whole job or one segment of it, run through its command as the CLI runs it."""

from __future__ import annotations

import os
import shutil
import time
import traceback
from dataclasses import dataclass, replace
from typing import Any, Callable

from ..errors import DDVideoError, LockedError
from ..media import FRAME_NAME, IMAGE_EXTENSIONS, probe_video, read_image
from ..render import default_work_dir, kept_state
from ..options import parse_argv
from .manifest import Job
from .segments import Segment, finished

EVENT_EVERY_S = 0.5  # frame counts go from workers to the batch at most this often

# emit(message): how a worker reports to the batch: ("start", slot, key, where), ("frames", key, done, total)
Emit = Callable[[tuple], None]


@dataclass(frozen=True)
class Unit:
    """What one worker renders at a time: a whole job, or one segment of a video job."""

    job: Job
    segment: Segment | None = None

    @property
    def key(self) -> str:
        return str(self.job.index) if self.segment is None else f"{self.job.index}.{self.segment.index}"

    def done(self) -> bool:
        if self.segment is None:
            return finished(self.job.output, self.job.work_dir)
        return self.segment.done()

    def frames(self) -> int:
        """Frames of the finished unit's output."""
        if self.segment is None:
            return output_frames(self.job.output)
        return self.segment.stop - self.segment.first


@dataclass(frozen=True)
class UnitResult:
    key: str
    ok: bool
    frames: int = 0  # frames of the output, resumed ones included
    dreamed: int = 0  # frames dreamed by this run
    seconds: float = 0.0
    error: str | None = None
    detail: str | None = None  # the traceback of an unexpected exception
    where: str | None = None
    loads: int = 0  # networks the worker loaded for it: 0 when it had the job's network from an earlier job
    elsewhere: bool = False  # not rendered: another render holds its work folder


def output_frames(path: str) -> int:
    ext = os.path.splitext(path.rstrip("/\\"))[1].lower()
    if os.path.isdir(path):
        return len([n for n in os.listdir(path) if n.endswith(".png")])
    if ext in IMAGE_EXTENSIONS:
        return 1
    try:
        return probe_video(path).n_frames
    except DDVideoError:
        return 0


class _Counter:
    """The progress callback of a unit: counts frames, sends the count at most every EVENT_EVERY_S."""

    def __init__(self, key: str, emit: Emit | None, alive: Callable[[], bool] | None, *, total: int | None = None):
        self.key, self.emit, self.alive = key, emit, alive
        self.frames = self.dreamed = 0
        self.total, self.fixed = total, total is not None
        self.sent = 0.0

    def check(self, *_: Any) -> None:
        """Stop if the batch is gone; the finished frames stay for the rerun."""
        if self.alive is not None and not self.alive():
            raise KeyboardInterrupt

    def __call__(self, index: int, total: int | None, loss: float | None) -> None:
        self.check()
        self.frames += 1
        self.dreamed += loss is not None
        if not self.fixed:
            self.total = total
        if time.monotonic() - self.sent >= EVENT_EVERY_S:
            self.flush()

    def skip(self, frames: int) -> None:
        """Count frames finished by an earlier run."""
        self.frames += frames

    def flush(self) -> None:
        if self.emit is not None:
            self.emit(("frames", self.key, self.frames, self.total))
        self.sent = time.monotonic()


def run_unit(unit: Unit, *, emit: Emit | None = None, alive: Callable[[], bool] | None = None,
             where: str | None = None) -> UnitResult:
    """Render one unit in this process through its CLI command; a failure comes back in the result, never raised.

    A unit that is already finished (its result was lost with a worker) is not rendered again.
    """
    began = time.perf_counter()
    if unit.done():
        return UnitResult(unit.key, True, frames=unit.frames(), where=where)
    counter = _Counter(unit.key, emit, alive, total=unit.frames() if unit.segment else None)
    error = detail = None
    elsewhere = False
    from ..reuse import models_loaded

    loads = models_loaded()
    try:
        from ..commands import run_command
        from ..options import build_parser

        opts = parse_argv(build_parser(), list(unit.job.argv))
        if unit.segment is None:
            run_command(opts, counter)
        else:
            _render_segment(opts, unit.segment, counter)
    except LockedError as exc:
        error, elsewhere = str(exc), True
    except DDVideoError as exc:
        error = str(exc)
    except Exception as exc:  # a bug, not a user mistake: keep the traceback for the summary
        error, detail = f"unexpected {type(exc).__name__}: {exc}", traceback.format_exc()
    counter.flush()
    return UnitResult(unit.key, error is None, counter.frames, counter.dreamed, time.perf_counter() - began,
                      error, detail, where, models_loaded() - loads, elsewhere)


def _render_segment(opts: dict[str, Any], segment: Segment, counter: _Counter) -> None:
    """Render the pieces of one segment as `ddvideo video` renders a clip, silent: the audio is added at the join.

    Each piece is a resumable render of its own; a piece continues from the last frame of the one before it.
    """
    from ..commands import video_music
    from ..options import dream_schedule, make_dreamer, run_settings, video_settings
    from ..video import render_video

    flow, clip = video_settings(opts)
    schedule = dream_schedule(opts)
    run, out = run_settings(opts)
    music = video_music(opts, flow, schedule, clip=clip)[0]
    dreamer = make_dreamer(opts)
    os.makedirs(segment.folder, exist_ok=True)

    def piece(output: str, first: int, stop: int, *, progress, warmup: int = 0, previous=None, chain=None,
              keep_work=False) -> None:
        render_video(opts["input"], output, dreamer=dreamer, flow=flow, clip=clip, schedule=schedule, music=music,
                     out=replace(out, audio=False),
                     run=replace(run, work_dir=None, keep_work=keep_work), first=first, stop=stop, warmup=warmup,
                     previous=previous, chain=chain, progress=progress)

    # each piece continues the chain of the one before, from its last frame and what its work folder kept (the
    # strength the chain holds), kept until the next piece is done
    previous = chain = None
    main_stop = segment.stop - segment.tail
    lead_work, main_work = default_work_dir(segment.lead_dir), default_work_dir(segment.main)
    if segment.lead:
        if not os.path.exists(segment.lead_dir):
            piece(segment.lead_dir, segment.first - segment.lead, segment.first, warmup=segment.warmup,
                  keep_work=True, progress=counter.check)  # frames of the bridge, not of this segment's count
        previous = read_image(os.path.join(segment.lead_dir, FRAME_NAME.format(segment.lead - 1)))
        chain = kept_state(lead_work)
    if os.path.exists(segment.main):  # finished; its work folder is kept only for the tail to continue from
        counter.skip(main_stop - segment.first)
    else:
        piece(segment.main, segment.first, main_stop, warmup=0 if previous is not None else segment.warmup,
              previous=previous, chain=chain, keep_work=bool(segment.tail), progress=counter)
    shutil.rmtree(lead_work, ignore_errors=True)
    if segment.tail:
        if finished(segment.tail_dir, default_work_dir(segment.tail_dir)):
            counter.skip(segment.tail)
        else:
            last = read_image(os.path.join(main_work, "frames", FRAME_NAME.format(main_stop - segment.first - 1)))
            piece(segment.tail_dir, main_stop, segment.stop, previous=last, chain=kept_state(main_work),
                  progress=counter)
        shutil.rmtree(main_work, ignore_errors=True)
