"""Splitting a video job into segments rendered in parallel, and the dissolve that bridges each seam."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..flow import FlowSettings
from ..media import VideoWriter, read_image
from ..render import default_work_dir

if TYPE_CHECKING:  # the manifest module imports this one
    from .manifest import Job

SEGMENT_CONTAINERS = {".mp4": ".mkv", ".mov": ".mkv", ".mkv": ".mkv", ".webm": ".webm"}  # output -> segment file
SETTLED = 0.01  # a segment warms up until its cold start weighs less than this in the blend chain
BRIDGE_FRAMES = 8  # frames over which one segment's dream dissolves into the next one's at a seam
MAX_WARMUP = 100


# A chain held at its first dream's strength keeps that strength from its first frame, but its pattern still
# develops from the still it opened with: a segment starts this many frames early, after which the frames' own
# ascent has added as much as the opening still (a still's 30 iterations at the full step; a video frame's 2 at a
# fifth of it). With none, the seam of two segments flickered 1.4x as much as inside them (random-weight test).
HELD_WARMUP = 60


def warmup_frames(flow: FlowSettings) -> int:
    """Frames a segment starts early so that its chain has settled by its first frame: HELD_WARMUP for a chain held
    at its first dream's strength (the default), else until a cold start weighs under SETTLED (each init keeps
    1 - blend of the previous dream)."""
    if flow.holds:
        return HELD_WARMUP
    carry = 1.0 - flow.blend
    if carry <= 0:
        return 0
    if carry >= 1:
        return MAX_WARMUP
    return min(MAX_WARMUP, math.ceil(math.log(SETTLED) / math.log(carry)))


def split_frames(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, stop) of `parts` nearly equal, non-empty ranges covering frames [0, total)."""
    parts = max(1, min(parts, total))
    edges = [round(i * total / parts) for i in range(parts + 1)]
    return list(zip(edges, edges[1:]))


def dissolve(ending: Sequence[np.ndarray], starting: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cross-fade two renders of the same K frames: frame j weighs (j + 1) / (K + 1) of `starting`.

    Two dream chains never agree pixel for pixel (each reinforces its own pattern), so a seam between
    segments is bridged: no step between frames is more than 1 / (K + 1) of the difference of the chains.
    """
    k = len(ending)
    if len(starting) != k:
        raise ValueError(f"a bridge needs the same frames from both segments, got {k} and {len(starting)}")
    return [np.rint((1 - (j + 1) / (k + 1)) * a.astype(np.float32) + (j + 1) / (k + 1) * b.astype(np.float32)
                    ).astype(np.uint8) for j, (a, b) in enumerate(zip(ending, starting))]


def finished(output: str, work_dir: str) -> bool:
    """A render is finished when its output exists and its work folder is gone (Render removes it on success)."""
    return os.path.exists(output) and not os.path.exists(work_dir)


@dataclass(frozen=True)
class Segment:
    """Frames [first, stop) of a video job, rendered in pieces inside `folder` (under the job's work folder).

    The pieces: `lead` frames before `first` from this segment's own chain (started cold `warmup` frames
    earlier), to dissolve with the previous segment's `tail`; the main part [first, stop - tail) continuing
    from the lead, encoded as the output will be; and the last `tail` frames, continuing from the main part.
    """

    index: int
    count: int
    first: int
    stop: int
    lead: int
    tail: int
    warmup: int
    folder: str
    ext: str  # container of the encoded pieces: joinable into the output by stream copy

    @property
    def main(self) -> str:
        return os.path.join(self.folder, "main" + self.ext)

    @property
    def lead_dir(self) -> str:
        return os.path.join(self.folder, "lead") + os.sep  # a folder of PNG frames: lossless for the dissolve

    @property
    def tail_dir(self) -> str:
        return os.path.join(self.folder, "tail") + os.sep

    @property
    def bridge(self) -> str:
        """The encoded dissolve from the previous segment's tail into this one's lead."""
        return os.path.join(self.folder, "bridge" + self.ext)

    def done(self) -> bool:
        pieces = [self.main] + ([self.lead_dir] if self.lead else []) + ([self.tail_dir] if self.tail else [])
        return all(finished(p, default_work_dir(p)) for p in pieces)


def plan_segments(job: Job, parts: int) -> list[Segment]:
    """Split a video job into `parts` segments, with a bridge of up to BRIDGE_FRAMES at each seam."""
    ranges = split_frames(job.frames or 0, parts)
    bridge = min(BRIDGE_FRAMES, min(b - a for a, b in ranges) // 3)
    ext = SEGMENT_CONTAINERS[os.path.splitext(job.output)[1].lower()]
    n = len(ranges)
    segments = []
    for i, (first, stop) in enumerate(ranges):
        lead = bridge if i else 0
        folder = os.path.join(job.work_dir, "segments", f"{i:03d}-of-{n:03d}")
        segments.append(Segment(i, n, first, stop, lead, bridge if i < n - 1 else 0,
                                min(job.warmup, first - lead), folder, ext))
    return segments


def write_bridge(ending: str, starting: str, output: str, *, fps: float, crf: int) -> None:
    """Encode the dissolve of two folders of frames as a piece the segments' mains can be joined with."""
    def frames(folder: str) -> list[np.ndarray]:
        return [read_image(os.path.join(folder, name)) for name in sorted(os.listdir(folder)) if name.endswith(".png")]

    bridge = dissolve(frames(ending), frames(starting))
    with VideoWriter(output, fps=fps, size=(bridge[0].shape[1], bridge[0].shape[0]), crf=crf) as writer:
        for frame in bridge:
            writer.write(frame)
