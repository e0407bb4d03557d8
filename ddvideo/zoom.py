"""Zoom mode: the classic DeepDream infinite zoom (dream, fly into the dream, dream again), optionally looping."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from .dream import Dreamer
from .errors import SettingsError
from .guide import guide_record
from .media import read_image
from .render import OutputSettings, Progress, Render, RenderSummary, RunSettings, settings_record
from .transforms import fill_size, resize_to_fit, zoom_frame, zoom_matrix

ZOOM = 1.04  # scale per frame: at 24 fps the picture doubles every ~0.7 s, fast enough to fly, slow enough to read
ZOOM_ITERATIONS = 1  # per octave and frame: each frame carries every earlier dream; more saturates into rainbow noise
JITTER = 64  # px: each dream sees the frame rolled by a random offset (see _dream)
CANVAS = (512, 512)  # (width, height) of a render started from noise when no --size is given
LOOP_FADE = 0.3  # share of a loop's frames over which its first frame is faded back in
LOOP_BAND = 0.25  # soft band of mirrored border around the faded-in first frame, as a share of its short side


@dataclass(frozen=True)
class ZoomSettings:
    """The camera move, the length and rate of the animation, how often to dream, and whether it loops."""

    zoom: float = ZOOM  # scale per frame about the centre; > 1 flies in, < 1 pulls out
    rotate: float = 0.0  # degrees per frame, counter-clockwise
    pan: tuple[float, float] = (0.0, 0.0)  # pixels per frame the view moves (right, down)
    frames: int = 120
    fps: float = 24.0
    dream_every: int = 1  # dream every K-th frame; the frames between are the camera move alone
    loop: bool = False  # fade the first frame back in over the tail so the animation repeats without a jump
    size: tuple[int, int] | None = None  # (width, height): the input is scaled and cropped to fill it
    max_size: int | None = None  # downscale so the long side is at most this
    iterations: int = ZOOM_ITERATIONS  # per octave and dreamed frame

    def __post_init__(self) -> None:
        checks = [
            (math.isfinite(self.zoom) and self.zoom > 0,
             f"--zoom must be a positive scale per frame, e.g. 1.04, got {self.zoom}"),
            (math.isfinite(self.rotate), f"--rotate must be a number of degrees per frame, got {self.rotate}"),
            (len(self.pan) == 2 and all(map(math.isfinite, self.pan)),
             f"--pan must be DX,DY pixels per frame, got {self.pan}"),
            (self.frames >= 1, f"--frames must be at least 1, got {self.frames} (check --seconds and --fps)"),
            (math.isfinite(self.fps) and self.fps > 0, f"--fps must be positive, got {self.fps}"),
            (self.dream_every >= 1, f"--dream-every must be 1 (every frame) or more, got {self.dream_every}"),
            (self.size is None or min(self.size) >= 16,
             f"--size must be at least 16x16 pixels, got {_wxh(self.size)}"),
            (self.max_size is None or self.max_size >= 16,
             f"--max-size must be at least 16 pixels, got {self.max_size}"),
            (self.iterations >= 0, f"--iterations must be 0 or more, got {self.iterations}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)

    @property
    def tail(self) -> int:
        """Frames at the end of a loop over which its first frame fades back in (0 without --loop)."""
        return min(max(1, round(self.frames * LOOP_FADE)), self.frames - 1) if self.loop else 0

    def check_frame(self, width: int, height: int) -> None:
        """Raise SettingsError if one camera step would shrink a width x height frame to nothing or lose it."""
        if min(width, height) / self.zoom < 2:
            raise SettingsError(
                f"--zoom {self.zoom} magnifies a {width}x{height} frame so much that less than 2 px of it stays in "
                f"view each frame; use a zoom close to 1, e.g. 1.02 to 1.1"
            )
        if min(width, height) * self.zoom < 2:
            raise SettingsError(
                f"--zoom {self.zoom} shrinks a {width}x{height} frame to less than 2 px each frame; use a zoom close "
                f"to 1, e.g. 0.9 to 0.98 to pull out"
            )
        if abs(self.pan[0]) >= width or abs(self.pan[1]) >= height:
            raise SettingsError(
                f"--pan {self.pan[0]:g},{self.pan[1]:g} moves the view by a whole {width}x{height} frame or more each "
                f"frame; use a few pixels per frame"
            )

    def step(self, frame: np.ndarray, *, steps: int = 1, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
        """`frame` after `steps` camera moves (negative: backwards)."""
        return zoom_frame(frame, zoom=self.zoom, rotate=self.rotate, pan=self.pan, steps=steps, border=border)


def _wxh(size: tuple[int, int] | None) -> str:
    return "none" if size is None else f"{size[0]}x{size[1]}"


def parse_size(text: str) -> tuple[int, int]:
    """'640x360' -> (640, 360)."""
    width, sep, height = text.lower().partition("x")
    try:
        if sep:
            return int(width), int(height)
    except ValueError:
        pass
    raise SettingsError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 640x360, got {text!r}")


def parse_pan(text: str) -> tuple[float, float]:
    """'3,-1.5' -> (3.0, -1.5)."""
    parts = text.split(",")
    try:
        if len(parts) == 2:
            return float(parts[0]), float(parts[1])
    except ValueError:
        pass
    raise SettingsError(f"--pan must be DX,DY pixels per frame, e.g. --pan=2,-1, got {text!r}")


def noise_frame(width: int, height: int, *, seed: int) -> np.ndarray:
    """A soft grey noise to start from when there is no picture: (height, width, 3) uint8, seeded."""
    noise = np.random.default_rng(seed).normal(0.0, 1.0, (height, width, 3)).astype(np.float32)
    noise = cv2.GaussianBlur(noise, (0, 0), 2.0)
    noise *= 24.0 / (noise.std() + 1e-6)
    return np.clip(128.0 + noise, 0, 255).astype(np.uint8)


def start_frame(source: str | None, zoom: ZoomSettings, *, seed: int) -> np.ndarray:
    """The picture the zoom starts from: `source` fitted to --size / --max-size, or seeded noise of that size.

    Raises if the camera move cannot work at that size, so a caller can check before loading a model.
    """
    if source is None:
        width, height = zoom.size or CANVAS
        frame = noise_frame(width, height, seed=seed)
    else:
        frame = read_image(source)
        if zoom.size is not None:
            frame = fill_size(frame, size=zoom.size)
    frame = resize_to_fit(frame, max_size=zoom.max_size)
    zoom.check_frame(frame.shape[1], frame.shape[0])
    return frame


def loop_blend(frame: np.ndarray, first: np.ndarray, *, index: int, zoom: ZoomSettings) -> np.ndarray:
    """Close the loop: over the tail, fade in the first frame carried back to where the camera sees it from here.

    The animation ends by flying into its own start. Frame `index` is `frames - index` camera steps before the
    loop comes round to frame 0, so frame 0 run that many steps backwards is what the camera should see there: a
    smaller copy in the centre (for a zoom in) that grows to fill the view. Its weight rises smoothly from 0 to 1
    over the tail. Around the copy, its mirrored border (BORDER_REFLECT) fades out over a soft band into the
    dream that goes on outside, so no hard edge shows. The last frame is exactly frame 0 one step back (plus a
    thin ring that leaves the view), so the jump from the last frame to the first is one ordinary camera step.
    Tail frames are dreamed from the blended previous frame, so the start emerges from the dream.
    """
    ahead = zoom.frames - index  # camera steps from here to the loop's start
    if not zoom.loop or ahead > zoom.tail:
        return frame
    t = (zoom.tail - ahead + 1) / zoom.tail  # (0, 1]
    weight = t * t * (3 - 2 * t)  # smoothstep: no kink where the fade begins or ends
    back = zoom.step(first, steps=-ahead)
    w = (weight * _inside(first.shape[:2], zoom, ahead))[..., None]
    return np.rint(frame * (1 - w) + back * w).astype(np.uint8)


def _inside(shape: tuple[int, int], zoom: ZoomSettings, ahead: int) -> np.ndarray:
    """(H, W) float32: 1 where frame 0, `ahead` steps back, covers the view; falling to 0 over a band around it."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    matrix = zoom_matrix(width, height, zoom=zoom.zoom, rotate=zoom.rotate, pan=zoom.pan, steps=ahead)
    x0 = matrix[0, 0] * xs + matrix[0, 1] * ys + matrix[0, 2]  # where each pixel lies in frame 0
    y0 = matrix[1, 0] * xs + matrix[1, 1] * ys + matrix[1, 2]
    outside = np.maximum.reduce([-x0, x0 - (width - 1), -y0, y0 - (height - 1), np.zeros_like(x0)])
    return np.clip(1 - outside / (LOOP_BAND * min(height, width)), 0, 1)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two uint8 frames, in grey levels (0-255)."""
    return float(np.mean(np.abs(a.astype(np.int16) - b.astype(np.int16))))


def loop_seam(frames: Sequence[np.ndarray]) -> tuple[float, float]:
    """(difference from the last frame to the first, median difference between consecutive frames)."""
    steps = [frame_difference(a, b) for a, b in zip(frames[:-1], frames[1:])]
    return frame_difference(frames[-1], frames[0]), float(np.median(steps))


def _dream(dreamer: Dreamer, frame: np.ndarray, *, seed: int, iterations: int,
           carried: bool) -> tuple[np.ndarray, float]:
    """Dream `frame` rolled by a seeded random offset (wrapping round), then roll it back. A `carried` frame holds
    earlier dreams: all of its detail returns at each octave, or each frame would soften the next.

    The zoom's centre is a fixed point: whatever the network paints in step with its stride grid lands on the same
    pixels frame after frame there and smears outwards into a radial star. A fresh offset per frame breaks that.
    """
    shift = tuple(int(v) for v in np.random.default_rng(seed).integers(0, JITTER, 2))
    result = dreamer.dream(np.roll(frame, shift, axis=(0, 1)), seed=seed, iterations=iterations,
                           reinject=1.0 if carried else None)
    return np.roll(result.frame, (-shift[0], -shift[1]), axis=(0, 1)), result.loss


def render_zoom(source: str | None, output: str, *, dreamer: Dreamer, zoom: ZoomSettings = ZoomSettings(),
                out: OutputSettings = OutputSettings(), run: RunSettings = RunSettings(),
                progress: Progress | None = None) -> RenderSummary:
    """Render the infinite zoom from `source` (an image; None = seeded noise) into `output`; resumable.

    `output` is an mp4, webm, gif, or a folder of PNGs. Frame i is the previous frame moved by one camera step,
    dreamed with seed `run.seed + i` when i is a multiple of `zoom.dream_every`; frame 0 is the start dreamed.
    """
    began = time.perf_counter()
    start = start_frame(source, zoom, seed=run.seed)
    height, width = start.shape[:2]
    dreamer.octaves(height, width)  # a frame the model cannot take fails here, before any output exists
    record = settings_record(mode="zoom", source=source and os.path.abspath(source), model=dreamer.loaded.settings,
                             dream=dreamer.settings, zoom=zoom, output=out, seed=run.seed, **guide_record(dreamer.guide))
    dream_seconds, dreamed = 0.0, 0
    with Render(output, fps=zoom.fps, size=(width, height), settings=record, run=run, out=out, sources=(source,),
                total=zoom.frames, progress=progress) as render:
        prev = render.previous()
        first = render.load(0) if render.done else None  # the loop's tail fades frame 0 back in
        for index in range(render.done, zoom.frames):
            frame = start if prev is None else zoom.step(prev)
            loss = None
            if index % zoom.dream_every == 0:
                tick = time.perf_counter()
                frame, loss = _dream(dreamer, frame, seed=run.seed + index, iterations=zoom.iterations,
                                     carried=prev is not None)
                dream_seconds += time.perf_counter() - tick
                dreamed += 1
            if first is None:
                first = frame
            frame = loop_blend(frame, first, index=index, zoom=zoom)
            render.emit(index, frame, loss)
            prev = frame
        frames = render.frames
    return RenderSummary(output, frames, dreamed, time.perf_counter() - began, dream_seconds)
