"""Zoom mode: the classic DeepDream infinite zoom (dream, fly into the dream, dream again), optionally looping."""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

import cv2
import numpy as np

from .audio import Features, Music, analyse
from .colour import lab_stats, match_colour
from .dream import Dreamer
from .errors import SettingsError
from .guide import guide_record
from .media import read_image
from .schedule import DreamSchedule, ScheduleError, check_range, frame_values, kept_weights, scheduled
from .render import OutputSettings, Progress, Render, RenderSummary, RunSettings, settings_record
from .transforms import fill_size, resize_to_fit, zoom_frame, zoom_matrix

ZOOM = 1.04  # scale per frame: at 24 fps the picture doubles every ~0.7 s, fast enough to fly, slow enough to read
ZOOM_ITERATIONS = 1  # per octave and frame: each frame carries every earlier dream; more saturates into rainbow noise
JITTER = 64  # px: each dream sees the frame rolled by a random offset (see _dream)
CANVAS = (512, 512)  # (width, height) of a render started from noise when no --size is given
LOOP_FADE = 0.3  # share of a loop's frames over which its first frame is faded back in
LOOP_BAND = 0.25  # soft band of mirrored border around the faded-in first frame, as a share of its short side
ZOOM_STEP = 3.0  # a zoom frame's step over a still's: the one step per octave must give back the detail the
# camera's magnification smeared since the last frame (at 1x, sharpness falls to 0.6 of the first frame's in 48)


@dataclass(frozen=True)
class ZoomSettings:
    """The camera move, the length and rate of the animation, how often to dream, and whether it loops.

    The camera's numbers and dream_every may be schedules (ddvideo.schedule): their value at frame i sets the
    step into frame i.
    """

    zoom: float | str = ZOOM  # scale per frame about the centre; > 1 flies in, < 1 pulls out
    rotate: float | str = 0.0  # degrees per frame, counter-clockwise
    pan: tuple[float | str, float | str] = (0.0, 0.0)  # pixels per frame the view moves (right, down)
    frames: int = 120
    fps: float = 24.0
    dream_every: int | str = 1  # dream every K-th frame; the frames between are the camera move alone
    loop: bool = False  # fade the first frame back in over the tail so the animation repeats without a jump
    size: tuple[int, int] | None = None  # (width, height): the input is scaled and cropped to fill it
    max_size: int | None = None  # downscale so the long side is at most this
    iterations: int = ZOOM_ITERATIONS  # per octave and dreamed frame
    pan_scale: float = 1.0  # the pan's pixels are of a frame this many times as large (a preview's smaller frame)
    colour_coherence: bool = True  # hold each dreamed frame's CIELAB mean and spread to the first one's

    def __post_init__(self) -> None:
        if isinstance(self.pan, (tuple, list)) and len(self.pan) == 2:
            object.__setattr__(self, "pan", (scheduled(self.pan[0], option="--pan-x"),
                                             scheduled(self.pan[1], option="--pan-y")))
        else:
            raise SettingsError(f"--pan must be DX,DY pixels per frame, got {self.pan}")
        for name in ("zoom", "rotate", "dream_every"):
            object.__setattr__(self, name, scheduled(getattr(self, name), option="--" + name.replace("_", "-")))
        if isinstance(self.dream_every, float) and self.dream_every == int(self.dream_every):
            object.__setattr__(self, "dream_every", int(self.dream_every))
        checks = [
            (self.frames >= 1, f"--frames must be at least 1, got {self.frames} (check --seconds and --fps)"),
            (math.isfinite(self.fps) and self.fps > 0, f"--fps must be positive, got {self.fps}"),
            (self.size is None or min(self.size) >= 16,
             f"--size must be at least 16x16 pixels, got {_wxh(self.size)}"),
            (self.max_size is None or self.max_size >= 16,
             f"--max-size must be at least 16 pixels, got {self.max_size}"),
            (self.iterations >= 0, f"--iterations must be 0 or more, got {self.iterations}"),
        ]
        for ok, message in checks:
            if not ok:
                raise SettingsError(message)
        if all(isinstance(v, (int, float)) for v in (self.zoom, self.rotate, *self.pan, self.dream_every)):
            self.camera()  # constants are checked at once; schedules once their music and length are known

    @property
    def tail(self) -> int:
        """Frames at the end of a loop over which its first frame fades back in (0 without --loop)."""
        return min(max(1, round(self.frames * LOOP_FADE)), self.frames - 1) if self.loop else 0

    def camera(self, *, audio: Mapping[str, np.ndarray] | None = None) -> "Camera":
        """The camera's step into every frame and the frames dreamed; raises ScheduleError naming the frame where a
        schedule leaves its range, or, with --loop, the schedule that does not end where it starts."""
        values = {}
        for option, value, ok, need in (
            ("--zoom", self.zoom, lambda v: v > 0, "a positive scale per frame, e.g. 1.04"),
            ("--rotate", self.rotate, lambda v: v == v, "a number of degrees per frame"),
            ("--pan-x", self.pan[0], lambda v: v == v, "a number of pixels per frame"),
            ("--pan-y", self.pan[1], lambda v: v == v, "a number of pixels per frame"),
            ("--dream-every", self.dream_every, lambda v: np.rint(v) >= 1, "1 (every frame) or more"),
        ):
            values[option] = frame_values(value, option=option, frames=self.frames, fps=self.fps, audio=audio)
            check_range(values[option], option=option, fps=self.fps, ok=ok, need=need)
            if self.loop and self.frames > 1 and option != "--dream-every":
                check_loop(values[option], option=option)
        return Camera(values["--zoom"], values["--rotate"], values["--pan-x"] * self.pan_scale,
                      values["--pan-y"] * self.pan_scale, dream_frames(values["--dream-every"]))

    def step(self, frame: np.ndarray, *, steps: int = 1, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
        """`frame` after `steps` camera moves (negative: backwards), for a camera that does not change."""
        camera = self.camera()
        return zoom_frame(frame, zoom=camera.zoom[0], rotate=camera.rotate[0],
                          pan=(camera.pan_x[0], camera.pan_y[0]), steps=steps, border=border)


@dataclass(frozen=True)
class Camera:
    """The camera's step into each frame of a zoom, (frames,) arrays resolved from its schedules, and the frames
    that are dreamed. The step into frame 0 is the loop's: from the last frame back round to the first."""

    zoom: np.ndarray
    rotate: np.ndarray
    pan_x: np.ndarray
    pan_y: np.ndarray
    dreamed: np.ndarray  # (frames,) bool

    def matrix(self, width: int, height: int, index: int) -> np.ndarray:
        """(3, 3) affine map of the step into frame `index` (zoom_matrix)."""
        step = zoom_matrix(width, height, zoom=float(self.zoom[index]), rotate=float(self.rotate[index]),
                           pan=(float(self.pan_x[index]), float(self.pan_y[index])))
        return np.vstack([step, [0.0, 0.0, 1.0]])

    def step(self, frame: np.ndarray, index: int, *, border: int = cv2.BORDER_REFLECT) -> np.ndarray:
        """The previous frame moved by the step into frame `index`."""
        return zoom_frame(frame, zoom=float(self.zoom[index]), rotate=float(self.rotate[index]),
                          pan=(float(self.pan_x[index]), float(self.pan_y[index])), border=border)

    def to_start(self, width: int, height: int, index: int) -> np.ndarray:
        """(2, 3) map from frame `index` to where the loop comes round to frame 0: the steps into the frames after
        it, then the step back round."""
        total = np.eye(3)
        for later in [*range(index + 1, self.zoom.size), 0]:
            total = self.matrix(width, height, later) @ total
        return total[:2]

    def check_frame(self, width: int, height: int) -> None:
        """Raise SettingsError if a camera step would shrink a width x height frame to nothing or lose it."""
        frame = int(np.argmax(self.zoom))
        if min(width, height) / self.zoom[frame] < 2:
            raise SettingsError(
                f"--zoom {self.zoom[frame]:g}{_at(frame, self.zoom)} magnifies a {width}x{height} frame so much that "
                f"less than 2 px of it stays in view each frame; use a zoom close to 1, e.g. 1.02 to 1.1"
            )
        frame = int(np.argmin(self.zoom))
        if min(width, height) * self.zoom[frame] < 2:
            raise SettingsError(
                f"--zoom {self.zoom[frame]:g}{_at(frame, self.zoom)} shrinks a {width}x{height} frame to less than "
                f"2 px each frame; use a zoom close to 1, e.g. 0.9 to 0.98 to pull out"
            )
        frame = int(np.argmax(np.maximum(np.abs(self.pan_x) / width, np.abs(self.pan_y) / height)))
        if abs(self.pan_x[frame]) >= width or abs(self.pan_y[frame]) >= height:
            raise SettingsError(
                f"--pan {self.pan_x[frame]:g},{self.pan_y[frame]:g}{_at(frame, self.pan_x, self.pan_y)} moves the view "
                f"by a whole {width}x{height} frame or more each frame; use a few pixels per frame"
            )


def _at(frame: int, *values: np.ndarray) -> str:
    """' at frame N' where a schedule takes the value named, nothing for a constant."""
    return "" if all(np.all(v == v[0]) for v in values) else f" (at frame {frame})"


def dream_frames(every: np.ndarray) -> np.ndarray:
    """(frames,) bool: frame 0, then each frame at least round(every[i]) frames after the last one dreamed."""
    dreamed = np.zeros(every.size, bool)
    last = 0
    for index in range(every.size):
        if index == 0 or index - last >= round(float(every[index])):
            dreamed[index], last = True, index
    return dreamed


def check_loop(values: np.ndarray, *, option: str) -> None:
    """A looping camera jumps from the last frame's value back to the first's: refuse a jump larger than the
    largest change between two frames inside the animation (one the loop could not hide)."""
    seam = abs(float(values[-1] - values[0]))
    inside = float(np.max(np.abs(np.diff(values)))) if values.size > 1 else 0.0
    if seam > inside * (1 + 1e-6) + 1e-9:
        raise ScheduleError(
            f"--loop: {option} ends at {values[-1]:.6g} (frame {values.size - 1}) but starts at {values[0]:.6g}; a loop "
            f"jumps between them, so end the schedule where it starts (e.g. a last keyframe at frame {values.size} "
            f"with the first value) or leave out --loop"
        )


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

    A caller checks the camera against its size (Camera.check_frame) before loading a model.
    """
    if source is None:
        width, height = zoom.size or CANVAS
        frame = noise_frame(width, height, seed=seed)
    else:
        frame = read_image(source)
        if zoom.size is not None:
            frame = fill_size(frame, size=zoom.size)
    return resize_to_fit(frame, max_size=zoom.max_size)


def loop_blend(frame: np.ndarray, first: np.ndarray, *, index: int, zoom: ZoomSettings,
               camera: Camera | None = None) -> np.ndarray:
    """Close the loop: over the tail, fade in the first frame carried back to where the camera sees it from here.

    The animation ends by flying into its own start. Frame `index` is `frames - index` camera steps before the
    loop comes round to frame 0, so frame 0 run that many steps backwards is what the camera should see there: a
    smaller copy in the centre (for a zoom in) that grows to fill the view. Its weight rises smoothly from 0 to 1
    over the tail. Around the copy, its mirrored border (BORDER_REFLECT) fades out over a soft band into the
    dream that goes on outside, so no hard edge shows. The last frame is exactly frame 0 one step back (plus a
    thin ring that leaves the view), so the jump from the last frame to the first is one ordinary camera step.
    Tail frames are dreamed from the blended previous frame, so the start emerges from the dream. With
    schedules, the steps back are those the camera takes from here round to frame 0 (`camera`).
    """
    ahead = zoom.frames - index  # camera steps from here to the loop's start
    if not zoom.loop or ahead > zoom.tail:
        return frame
    t = (zoom.tail - ahead + 1) / zoom.tail  # (0, 1]
    weight = t * t * (3 - 2 * t)  # smoothstep: no kink where the fade begins or ends
    height, width = first.shape[:2]
    matrix = (camera or zoom.camera()).to_start(width, height, index)  # frame `index` -> frame 0
    back = cv2.warpAffine(first, matrix, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)
    w = (weight * _inside(first.shape[:2], matrix))[..., None]
    return np.rint(frame * (1 - w) + back * w).astype(np.uint8)


def _inside(shape: tuple[int, int], matrix: np.ndarray) -> np.ndarray:
    """(H, W) float32: 1 where frame 0, carried back by `matrix` (this view -> frame 0), covers the view; falling
    to 0 over a band around it."""
    height, width = shape
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
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
           carried: bool, strength: float) -> tuple[np.ndarray, float]:
    """Dream `frame` rolled by a seeded random offset (wrapping round), then roll it back, with ZOOM_STEP times a
    still's step at `strength`. A `carried` frame holds earlier dreams: all of its detail returns at each octave,
    or each frame would soften the next.

    The zoom's centre is a fixed point: whatever the network paints in step with its stride grid lands on the same
    pixels frame after frame there and smears outwards into a radial star. A fresh offset per frame breaks that.
    """
    shift = tuple(int(v) for v in np.random.default_rng(seed).integers(0, JITTER, 2))
    result = dreamer.dream(np.roll(frame, shift, axis=(0, 1)), seed=seed, iterations=iterations,
                           strength=ZOOM_STEP * strength, reinject=1.0 if carried else None)
    return np.roll(result.frame, (-shift[0], -shift[1]), axis=(0, 1)), result.loss


def render_zoom(source: str | None, output: str, *, dreamer: Dreamer, zoom: ZoomSettings = ZoomSettings(),
                schedule: DreamSchedule = DreamSchedule(), music: Music | None = None, features: Features | None = None,
                out: OutputSettings = OutputSettings(), run: RunSettings = RunSettings(),
                progress: Progress | None = None) -> RenderSummary:
    """Render the infinite zoom from `source` (an image; None = seeded noise) into `output`; resumable.

    `output` is an mp4, webm, gif, or a folder of PNGs. Frame i is the previous frame moved by the camera's step
    into frame i, dreamed with seed `run.seed + i` when the dream-every schedule says so; frame 0 is the start
    dreamed. `music` is analysed for the schedules (or its `features` given) and becomes the soundtrack.
    """
    began = time.perf_counter()
    if music is not None and features is None:
        features = analyse(music, frames=zoom.frames, fps=zoom.fps)
    audio = features.values if features is not None else None
    camera = zoom.camera(audio=audio)
    strengths = schedule.strengths(dreamer.settings.strength, frames=zoom.frames, fps=zoom.fps, audio=audio)
    weights = schedule.weights(dreamer.terms, frames=zoom.frames, fps=zoom.fps, audio=audio)
    start = start_frame(source, zoom, seed=run.seed)
    height, width = start.shape[:2]
    camera.check_frame(width, height)
    dreamer.octaves(height, width)  # a frame the model cannot take fails here, before any output exists
    record = settings_record(mode="zoom", source=source and os.path.abspath(source), model=dreamer.loaded.settings,
                             dream=dreamer.settings, zoom=zoom, schedule=schedule, output=out, seed=run.seed,
                             **({"audio": music.record()} if music is not None else {}), **guide_record(dreamer.guide))
    dream_seconds, dreamed = 0.0, 0
    with Render(output, fps=zoom.fps, size=(width, height), settings=record, run=run, out=out, sources=(source,),
                audio_from=music and music.path, audio_start=music.start if music else 0.0,
                total=zoom.frames, progress=progress) as render, kept_weights(dreamer):
        prev = render.previous()
        first = render.load(0) if render.done else None  # the loop's tail fades frame 0 back in
        palette = None if first is None else lab_stats(first)
        for index in range(render.done, zoom.frames):
            frame = start if prev is None else camera.step(prev, index)
            loss = None
            if camera.dreamed[index]:
                tick = time.perf_counter()
                if weights is not None:
                    dreamer.reweight(weights[index])
                frame, loss = _dream(dreamer, frame, seed=run.seed + index, iterations=zoom.iterations,
                                     carried=prev is not None, strength=float(strengths[index]))
                if palette is not None and zoom.colour_coherence:  # the frames between are the camera move alone
                    frame = match_colour(frame, palette)
                dream_seconds += time.perf_counter() - tick
                dreamed += 1
            if first is None:
                first, palette = frame, lab_stats(frame)
            frame = loop_blend(frame, first, index=index, zoom=zoom, camera=camera)
            render.emit(index, frame, loss)
            prev = frame
        frames = render.frames
    return RenderSummary(output, frames, dreamed, time.perf_counter() - began, dream_seconds)
