"""Video mode: dream a clip frame by frame, each init carried from the previous dream along the optical flow."""

from __future__ import annotations

import contextlib
import os
import re
import time
from dataclasses import dataclass, replace
from typing import Callable, Iterator, Mapping

import cv2
import numpy as np

from .audio import Features, Music, analyse
from .dream import Dreamer, DreamResult, DreamSettings
from .errors import SettingsError
from .flow import FlowSettings, Motion, blend_init, cap_dream, compute_flow, global_shift, motion
from .guide import guide_record
from .media import VideoReader
from .metrics import strength
from .render import OutputSettings, Progress, Render, RenderSummary, RunSettings, prefetch, settings_record
from .schedule import DreamSchedule, check_range, frame_values, kept_weights
from .transforms import grid_canvas

# Gradient steps per octave per frame, and the share of a still's step each takes: the init already carries the
# previous dream, so each frame only tops it up (its own octave takes one step of OWN_STEP: `top_up`). A larger
# share keeps the dream closer to what the network sees in each frame, so it drifts less from the look and flickers
# less, but softens it. 48-frame sub-pixel pans (real weights, `cover`, frames not aligned to the grid; sharpness /
# E_warp against the dream filmed still, activation coverage of the last 8 frames over the first;
# benchmarks/flicker-results.md), share 0.1 / 0.3 / 0.5 / 0.75: samples/coffee.png 1.15 / 1.21, 0.66; 1.10 / 1.15, 0.70;
# 1.02 / 1.06, 0.70; 0.95 / 1.02, 0.72; grass 1.30 / 1.47, 0.72; 1.23 / 1.37, 0.76; 1.16 / 1.28, 0.77; 1.10 / 1.25,
# 0.78. On six clips 0.5 softened three below 0.9 of the filmed still (star field 0.87, retina 0.77, the shipped
# clip 0.74); 0.2 keeps 0.92-1.25 on the pans, with coverage 0.68-0.80.
VIDEO_ITERATIONS = 2
VIDEO_STEP_SHARE = 0.2
# A frame up to the base size takes one step at its own octave, at this many times its share: the network's view of
# the carried dream fades frame by frame (each frame resamples it off the phase it was dreamed at), and a step at
# the frame's own scale restores it where coarse steps cannot. Pans over coffee.png / grass / a star field,
# activation coverage of the last 8 frames over the first (E_warp against the filmed still), own step 2/30 (the
# detail share, before) / 1 / 2 / 4 / 5 / 10: 0.70 (1.13), 0.77 (1.15), 0.80 (1.17), 0.83 (1.22), 0.86 (1.24),
# 0.90 (1.46); grass 0.75 (1.40), 0.82 (1.39), 0.86 (1.40), 0.92 (1.43), 0.92 (1.46), 0.97 (1.70); star field
# 0.73 (0.92), 0.85 (0.92), 0.90 (0.94), 0.96 (0.99), 0.98 (1.03), 1.05 (1.31). Sharpness stayed within 0.02.
# On the six clips of benchmarks/flicker-results.md, 5 against 4: coverage +0.00 to +0.04 (the face 0.89 -> 0.91),
# E_warp +0.01 to +0.05 (grass 1.37 -> 1.40, the rest 0.80-1.14), sharpness within 0.01.
OWN_STEP = 5.0
# A frame above the base size takes this share instead: its own octave only adds detail (no own step there) and
# its look octaves are 1.3-3x smaller than it, so a sub-pixel carry barely moves the dream off the network's view
# of it, and top-ups there mostly add flicker. 960x640 sub-pixel pans, 24 frames (sharpness, E_warp against the
# filmed still, activation coverage of the last 8 frames over the first, strength over a still), share 0.2 / 0.1 /
# 0.05 / 0 (no top-up at all): astronaut 1.01 / 1.40, 0.92, 1.01; 1.00 / 1.31, 0.93, 0.99; 0.98 / 1.26, 0.95,
# 0.97; 0.96 / 1.21, 0.96, 0.95; hubble_deep_field 1.05 / 1.82, 1.00, 1.01; 1.06 / 1.77, 0.95, 0.99; 1.05 / 1.74,
# 0.92, 0.94; 1.04 / 1.70, 0.88, 0.89. Half the share keeps strength and coverage. Most of the rest was the first
# carry dropping the first frame's pixels beyond the hold's cap at once, now capped before (flow.cap_dream): 1.22
# and 1.19, coverage 0.91, strength 0.98 and 0.93. Not the tiles (untiled, astronaut: 1.56) nor their roll (the
# same every frame: 1.39), nor the flow (its error is 0.03-0.07 px at 480 and 960 px alike).
LARGE_FRAME_SHARE = 0.1
# A frame more than this many times the base size takes less again, in proportion to its long side (a 3840 px frame
# at base 640: half of LARGE_FRAME_SHARE): the larger the frame over its look octaves, the less a sub-pixel carry
# moves the dream off them. Mosaic pans (benchmarks/flicker-results.md; bfloat16, sharpness / strength / E_warp
# against the filmed still, coverage), share 0.1 / 0.05: at 3840x2560 1.14 / 0.97 / 1.27, 1.02; 1.14 / 0.97 / 1.18,
# 1.03; at 1920x1280 1.05 / 0.97 / 1.08, 0.99; 1.05 / 0.95 / 1.06, 0.99; at 960x640 over a face and the star field
# 0.05 left the face at 0.90 / 0.96 / 0.87 and the star field at 0.94 / 0.91 / 0.91, at the edge of the bars (0.1:
# 0.92 / 0.98 / 0.91; 0.94 / 0.93 / 0.93).
LARGE_FRAME_REACH = 3.0
# With FlowSettings.hold, a frame whose carried dream is weaker than the chain's first takes a larger step, by
# (first frame's strength / carried strength) ** HOLD_GAIN, at most HOLD_BOOST times (after a cut, the dream grows
# back at once); one stronger fades to it (flow.blend_init). Within the frame, the step is larger again where the
# carried dream is locally (a Gaussian of LOCAL_SIGMA px) weaker than LOCAL_FLOOR of that strength, by
# (floor / local) ** HOLD_GAIN, at most HOLD_BOOST times: new content at the edges of a pan, or behind a moving
# object, grows its dream back while the rest takes the plain share. The floor sits below the quietest parts of
# a still (its 1st percentile: 0.6 of its mean). The two together at most a whole still step (HOLD_BOOST x the
# share): the local factor goes as far as the whole frame's leaves. They multiplied before, up to 5 still steps in a
# frame's 2 iterations: a strength that jumps with the music (`--strength "0.6+0.8*beat"`, the shipped clip at 160
# px, real weights) turned each beat's frame into rainbow speckle (mean change 19.8 against 9.8 between beats);
# capped, a stronger dream (12.3, growing to 14.5 over the next frames). On real clips the product had passed a
# whole still step on 8.9 % and 7.8 % of a frame's pixels (the shipped clip and a coffee.png pan, by at most 1.66
# and 1.58 times); capped, those clips and grass read as before (sharpness / strength / E_warp against the filmed
# still, coverage ratio: 0.77 / 0.98 / 0.52, 0.82; 1.07 / 0.99 / 1.00, 0.83 -> 0.82; 1.15 / 1.03 / 1.16, 0.99),
# and a 1 s fade-in over the shipped clip ends at the same strength either way (0.95 of an uncapped still of its
# last frame). Ten clips in float32: every figure within 0.01 (benchmarks/flicker-results.md).
# Gain 8, as at 4 a one-octave random-weight pan settled at 0.87 of its first frame's strength (test_video.py holds
# it at 0.9 or more).
HOLD_GAIN = 8.0
HOLD_BOOST = 1.0 / VIDEO_STEP_SHARE
LOCAL_SIGMA = 16.0
LOCAL_FLOOR = 0.6
CUT_SHARE = 0.5  # a frame with more of its pixels unreliable than this is a cut (is_cut)
# With the hold, a chain whose source has gained or lost this factor of contrast since the strength it holds was
# measured (a fade from black, a light switched on) measures it again on a still of the frame (reanchors), capped
# as an opening frame is. A 1 s fade-in from black over samples/coffee_pan.mp4 (real weights, bfloat16): the last 8
# frames' strength 1.00 of a still of the last frame (1.05 with the still measured uncapped).
REANCHOR = 1.5
# The first frame of a chain is dreamed as a still, with this many times a frame's iterations up to a still's
# (30 at the defaults, as `ddvideo image`) at the full step: the video opens at a still dream's strength, which the
# carried residual keeps.
FIRST_FRAME_FACTOR = 15


@dataclass(frozen=True)
class ClipSettings:
    """Which part of the source to read, and at what size and rate."""

    start: float = 0.0  # seconds
    end: float | None = None  # seconds; None = to the end
    fps: float | None = None  # resample to this rate; None = the source's
    max_size: int | None = None  # downscale so the long side is at most this

    def __post_init__(self) -> None:
        if self.start < 0:
            raise SettingsError(f"--start must be 0 or more seconds, got {self.start}")
        if self.end is not None and self.end <= self.start:
            raise SettingsError(f"--end ({self.end}) must be after --start ({self.start})")
        if self.fps is not None and self.fps <= 0:
            raise SettingsError(f"--fps must be positive, got {self.fps}")
        if self.max_size is not None and self.max_size < 16:
            raise SettingsError(f"--max-size must be at least 16 pixels, got {self.max_size}")


def _source_steps(reader: VideoReader, flow: FlowSettings, *, begin: int, stop: int | None
                  ) -> Iterator[tuple[int, np.ndarray, np.ndarray | None, Motion, np.ndarray, np.ndarray]]:
    """For the frames t from `begin` to before `stop` (None: the end): (t, source frame, source frame t-1, motion
    from t-1 to t, the picture's motion since frame 0 as (dx, dy), and that of frame t-1).

    With alignment on, the frames before `begin` still get their flow, so a resumed render places its frames on the
    same grid phase as an uninterrupted one.
    """
    previous, offset = None, np.zeros(2)
    for t, source in enumerate(reader):
        if stop is not None and t >= stop:
            return
        step: Motion = (None, None)
        previous_offset = offset
        if previous is not None and t >= begin:
            step = motion(previous, source, settings=flow)
            if flow.aligns:
                offset = offset + global_shift(step[0])
        elif previous is not None and flow.aligns:
            offset = offset + global_shift(compute_flow(previous, source, method=flow.method))
        if t >= begin:
            yield t, source, previous, step, offset, previous_offset
        previous = source


Dream = Callable[..., DreamResult]


def _grid_dream(dreamer: Dreamer, *, offset: np.ndarray | None, seed: int) -> Dream:
    """Dream a frame whose picture has moved by `offset` since frame 0 on a canvas that undoes that motion modulo
    the network's stride (None: dream it as it is); keyword options go to Dreamer.dream."""

    def dream(frame: np.ndarray, **options) -> DreamResult:
        if offset is None:
            return dreamer.dream(frame, seed=seed, **options)
        if options.get("step_map") is not None:
            options["step_map"] = grid_canvas(options["step_map"], offset=offset, grid=dreamer.grid)[0]

        def on_canvas(canvas: np.ndarray) -> tuple[np.ndarray, float]:
            result = dreamer.dream(canvas, seed=seed, **options)
            return result.frame, result.loss

        return DreamResult(*_on_canvas(dreamer, frame, offset=offset, run=on_canvas))

    return dream


def _on_canvas(dreamer: Dreamer, frame: np.ndarray, *, offset: np.ndarray,
               run: Callable[[np.ndarray], tuple[np.ndarray, float | None]]) -> tuple[np.ndarray, float | None]:
    """run(canvas) on the frame's grid canvas (transforms.grid_canvas at `offset`), its picture cropped back to the
    frame; an error that names the canvas speaks of the frame the user asked for (_in_frame_terms)."""
    canvas, (sy, sx) = grid_canvas(frame, offset=offset, grid=dreamer.grid)
    try:
        picture, loss = run(canvas)
    except SettingsError as err:
        raise _in_frame_terms(err, frame=frame, canvas=canvas) from err
    return picture[sy : sy + frame.shape[0], sx : sx + frame.shape[1]], loss


def _in_frame_terms(err: SettingsError, *, frame: np.ndarray, canvas: np.ndarray) -> SettingsError:
    """An error of the dream that names the grid canvas's size, restated for the frame the user asked for: the
    canvas is the frame plus a margin on each axis, so its minimum side is that margin less for the frame."""
    outer = f"{canvas.shape[1]}x{canvas.shape[0]}"
    if outer not in str(err):
        return err
    margin = canvas.shape[0] - frame.shape[0]
    message = str(err).replace(outer, f"{frame.shape[1]}x{frame.shape[0]}")
    message = re.sub(r"at least (\d+) px", lambda m: f"at least {int(m[1]) - margin} px", message)
    return SettingsError(message)


def _opened(holds: dict[int, float], t: int, default: int) -> int:
    """The frame that frame t's chain opened at (`default` if none is known)."""
    return max((start for start in holds if start <= t), default=default)


def video_schedules(dreamer: Dreamer, flow: FlowSettings, schedule: DreamSchedule, *, music: Music | None,
                    features: Features | None, frames: int,
                    fps: float) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """(strength per frame, blend per frame or None when it does not change, term weights per frame or None) of
    a clip of `frames` frames; ScheduleError names a schedule that leaves its range, and where."""
    if music is not None and features is None:
        features = analyse(music, frames=frames, fps=fps)
    audio = None if features is None else features.values
    strengths = schedule.strengths(dreamer.settings.strength, frames=frames, fps=fps, audio=audio)
    blends = blend_values(flow, frames=frames, fps=fps, audio=audio)
    return strengths, blends, schedule.weights(dreamer.terms, frames=frames, fps=fps, audio=audio)


def blend_values(flow: FlowSettings, *, frames: int, fps: float,
                 audio: Mapping[str, np.ndarray] | None = None) -> np.ndarray | None:
    """(frames,) the blend at each frame of a scheduled --blend, checked to stay in [0, 1]; None for a constant."""
    if not isinstance(flow.blend, str):
        return None
    blends = frame_values(flow.blend, option="--blend", frames=frames, fps=fps, audio=audio)
    check_range(blends, option="--blend", fps=fps, ok=lambda v: (v >= 0) & (v <= 1), need="between 0 and 1")
    return blends


def _held(holds: dict[int, float], t: int) -> float | None:
    """The strength held by the chain that frame t belongs to, from the frames chains opened at and their strengths."""
    opened = [start for start in holds if start <= t]
    return holds[max(opened)] if opened else None


def contrast(frame: np.ndarray) -> float:
    """Standard deviation of the grey picture, 0-255: what a still's dream strength follows across a fade."""
    return float(np.std(frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)))


def reanchors(now: float, anchor: float | None) -> bool:
    """Whether a source of contrast `now` has moved so far from the `anchor` the held strength was measured at
    that the hold must be measured again. A dream's strength follows the picture's contrast: a chain that opens
    on a black frame and fades in would otherwise hold the strength of the black frame."""
    if anchor is None:
        return False
    return not anchor / REANCHOR <= now <= max(anchor, 1.0) * REANCHOR


def step_boost(carried: float, hold: float, boost: float = HOLD_BOOST) -> float:
    """Factor on a frame's whole step, at most `boost`, when its carried dream has `carried` strength and the chain
    holds `hold`."""
    if carried >= hold:
        return 1.0
    return boost if carried <= 0 else min(boost, (hold / carried) ** HOLD_GAIN)


def carried_dream(init: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(H, W) float32: how far an init moves each pixel of `frame`, mean |init - frame| over the channels (its mean
    is metrics.strength of the init)."""
    return cv2.absdiff(init, frame).astype(np.float32).mean(axis=2)


def step_map(carried: np.ndarray, hold: float, boost: float = HOLD_BOOST) -> np.ndarray:
    """(H, W) factor on a frame's step at each pixel, for a `carried` dream (carried_dream) in a chain that holds
    `hold`: 1 where it is locally (Gaussian of LOCAL_SIGMA px) at least LOCAL_FLOOR of the held strength, rising as
    (floor / local) ** HOLD_GAIN to `boost` where the flow brought none."""
    floor = LOCAL_FLOOR * hold
    if floor <= 0:  # a chain that holds no dream (a zero step): nothing to grow back
        return np.ones(carried.shape, np.float32)
    local = cv2.GaussianBlur(carried, (0, 0), LOCAL_SIGMA)
    return np.clip((floor / np.maximum(local, 1e-3 * floor)) ** HOLD_GAIN, 1.0, boost).astype(np.float32)


def is_cut(step: Motion) -> bool:
    """Whether the flow finds most of the picture new (a cut to another shot): with the hold, a cut opens a new
    chain, dreamed as a still, whose strength the chain then holds. On samples/coffee_pan.mp4 at most 6 % of a
    frame is unreliable; across a cut, 93-99 %; from a black frame to a picture, 95 %."""
    unreliable = step[1]
    return unreliable is not None and float(np.mean(unreliable)) > CUT_SHARE


def frame_detail(iterations: int) -> float:
    """The share of the first frame's detail step (octaves above the base size) that each later frame takes: as
    its iterations are of the first frame's."""
    first = first_iterations(iterations)
    return iterations / first if first else 1.0


def frame_share(dreamer: Dreamer, height: int, width: int) -> float:
    """The share of a still's step a top-up takes on a frame of this size (LARGE_FRAME_SHARE above the base size,
    falling in proportion to the frame's long side past LARGE_FRAME_REACH times it)."""
    if not dreamer.above_base(height, width):
        return VIDEO_STEP_SHARE
    return LARGE_FRAME_SHARE * min(1.0, LARGE_FRAME_REACH * dreamer.settings.base_size / max(height, width))


def top_up(settings: DreamSettings, strength: float = 1.0, share: float = VIDEO_STEP_SHARE) -> dict:
    """Dreamer.dream's options for a frame whose init carries the previous dream, at `strength` times `share` of a
    still's step (frame_share): the coarse octaves top the look up, the frame's own octave takes one larger step
    (OWN_STEP) with the gradient smoothed (dream.TOP_UP_TAPS; unsmoothed whole look steps there grew a crunchy
    texture that flickered), octaves above the base size a share of their detail step, and the init holds the
    fresh frame's own detail, so all of it returns at each octave (reinject 1)."""
    return {"strength": strength * share, "top_up": True, "detail": frame_detail(settings.iterations),
            "own_step": OWN_STEP, "reinject": 1.0}


def _bare(dreamer: Dreamer, frame: np.ndarray, *, offset: np.ndarray | None) -> np.ndarray:
    """Dreamer.bare of a video frame; an aligned one (a picture moved by `offset` since frame 0) on the canvas its
    dream fills (_grid_dream), at the same grid phase, which a frame too small for the network on its own may fill."""
    if offset is None:
        return dreamer.bare(frame)
    # a continued chain lays its previous frame bare before any dream: its errors too speak of the frame
    return _on_canvas(dreamer, frame, offset=offset, run=lambda canvas: (dreamer.bare(canvas), None))[0]


# A still gives up part of the frame's finest detail (the recipe's share not put back after each octave); a top-up
# puts it all back, as the init holds the fresh frame. Before rebase, the carried residual (dream - frame) held the
# still's loss of its first frame's detail, moved along the flow onto frames whose detail it no longer matched, and
# the top-ups kept all of theirs: on sources with much fine detail the video came out crisper than the dream glued
# to the scene and flickered more (48-frame pans, real weights, sharpness / E_warp against the dream filmed still:
# grass 1.23 / 1.38, a painting 1.11 / 1.35, moss 1.21 / 1.37). Laid on the frame as a still leaves it, with the
# top-ups' gradient smoothed less (dream.TOP_UP_TAPS), 1.15 / 1.15, 1.16 / 1.16 and 0.93 / 0.83, the star field
# 0.94 / 0.91 -> 0.96 / 0.83; the shipped clip, whose dream grows soft on its smooth table, lost sharpness, 0.88 /
# 0.83 -> 0.76 / 0.52 (benchmarks/flicker-results.md gives all ten clips).
def rebase(dreamed: np.ndarray, frame: np.ndarray, bare: np.ndarray) -> np.ndarray:
    """`dreamed`, an init holding all of `frame`'s detail dreamed on, with that detail as a still keeps it: the dream
    (dreamed - frame) laid on `bare`, the frame as a still leaves it where it takes no step (Dreamer.bare)."""
    return cv2.add(cv2.subtract(dreamed, frame, dtype=cv2.CV_16S), bare, dtype=cv2.CV_8U)


def first_iterations(iterations: int) -> int:
    """Iterations of the first frame of a chain whose other frames take `iterations`."""
    return max(iterations, min(FIRST_FRAME_FACTOR * iterations, DreamSettings.iterations))


def render_video(source: str, output: str, *, dreamer: Dreamer, flow: FlowSettings = FlowSettings(),
                 clip: ClipSettings = ClipSettings(), schedule: DreamSchedule = DreamSchedule(),
                 music: Music | None = None, features: Features | None = None, out: OutputSettings = OutputSettings(),
                 run: RunSettings = RunSettings(), first: int = 0, stop: int | None = None, warmup: int = 0,
                 previous: np.ndarray | None = None, chain: Mapping | None = None,
                 progress: Progress | None = None) -> RenderSummary:
    """Dream the clip `source` into `output` (mp4, webm, gif, or a folder of PNGs); resumable.

    `first`/`stop` select a frame range of the clip (after --start/--fps) and `warmup` frames before `first`
    are dreamed but not written, so a segment starts with a settled blend chain. `previous`, the dream of
    frame first - 1 from another render, continues that chain instead (no warm-up): a clip in pieces. `chain`, what
    that render kept of its state (render.kept_state of its work folder), continues the strength its chain holds as
    one render would; without it the chain holds the strength of `previous`.
    The strength, blend and layer weights may follow schedules over the clip's frames; `music` (the clip's own
    sound from its first frame, or another file, which then replaces the sound) gives them the music's features
    (or its `features` are given).
    """
    began = time.perf_counter()
    dream_seconds = 0.0
    dreamed = 0
    with VideoReader(source, start=clip.start, end=clip.end, fps=clip.fps, max_size=clip.max_size) as reader:
        total = reader.n_frames if stop is None else min(stop, reader.n_frames)
        strengths, blends, weights = video_schedules(dreamer, flow, schedule, music=music, features=features,
                                                     frames=reader.n_frames, fps=reader.fps)
        record = settings_record(mode="video", source=os.path.abspath(source), model=dreamer.loaded.settings,
                                 dream=dreamer.settings, flow=flow, clip=clip, schedule=schedule, output=out,
                                 seed=run.seed, first=first, stop=stop, warmup=warmup, **guide_record(dreamer.guide),
                                 **({"audio": music.record()} if music is not None else {}),
                                 **({"continues": True} if previous is not None else {}))
        # the audio's times in the file: frame 0 is the picture at reader.origin (or the start of other music)
        replaced = music is not None and os.path.abspath(music.path) != os.path.abspath(source)
        origin = music.start if replaced else reader.origin
        start_time = origin + first / reader.fps
        end_time = origin + (reader.n_frames if stop is None else stop) / reader.fps
        with Render(output, fps=reader.fps, size=(reader.width, reader.height), settings=record, run=run, out=out,
                    audio_from=music.path if replaced else source, audio_start=start_time, audio_end=end_time,
                    sources=(source,), total=max(total - first, 0), progress=progress) as render, \
                kept_weights(dreamer):
            prev_dream = render.previous() if render.done else previous
            # the strength each chain holds (FlowSettings.hold), by the frame it opened at, and the source's contrast
            # where each was measured (reanchors): this render's own, or those of the render it continues
            kept = render.store.recall if render.done else (chain or {}).get
            holds = {int(t): value for t, value in (kept("holds") or {}).items()}
            anchors = {int(t): value for t, value in (kept("anchors") or {}).items()}
            if not render.done and holds:  # a resumed continuation continues from them too
                render.store.remember("holds", holds)
                render.store.remember("anchors", anchors)
            begin = first + render.done if render.done or previous is not None else max(first - warmup, 0)
            hold, anchor = _held(holds, begin - 1), _held(anchors, begin - 1)

            def remember(t: int, strength_now: float, contrast_now: float) -> None:
                nonlocal hold, anchor
                holds[t] = hold = strength_now
                anchors[t] = anchor = contrast_now
                render.store.remember("holds", holds)
                render.store.remember("anchors", anchors)

            pending = None  # the last dream, handed to the writer once the next frame's init is made
            rebases = flow.carry == "residual"  # the carried dream is the frame's dream less its bare frame
            def bare_of(frame: np.ndarray, offset: np.ndarray) -> np.ndarray:
                return _bare(dreamer, frame, offset=offset if flow.aligns else None) if rebases else frame

            prev_bare = None
            with contextlib.closing(prefetch(_source_steps(reader, flow, begin=begin, stop=stop))) as steps:
                upcoming = next(steps, None)
                while upcoming is not None:
                    t, frame, prev_frame, step, offset, prev_offset = upcoming
                    tick = time.perf_counter()
                    if weights is not None:
                        dreamer.reweight(weights[t])
                    frame_flow = flow if blends is None else replace(flow, blend=float(blends[t]))
                    dream = _grid_dream(dreamer, offset=offset if flow.aligns else None, seed=run.seed + t)
                    opens = prev_dream is None or (flow.holds and is_cut(step))  # dreamed as a still
                    bare = None  # the frame as a still leaves it, once it is needed
                    if not opens and prev_bare is None:  # a resumed or continued chain
                        prev_bare = bare_of(prev_frame, prev_offset)
                    if opens:
                        init, options = frame, {"iterations": first_iterations(dreamer.settings.iterations)}
                        if schedule.strength is not None:
                            options["strength"] = float(strengths[t])
                    else:
                        if hold is None:  # continuing another render's chain: hold the strength of its last frame
                            remember(t, strength(prev_dream, prev_bare), contrast(prev_frame))
                        if flow.holds and reanchors(contrast(frame), anchor):  # a fade: what should it hold now?
                            probe = dream(frame, iterations=first_iterations(dreamer.settings.iterations),
                                          strength=float(strengths[t]))
                            bare = bare_of(frame, offset)  # capped as an opening frame is, so both hold alike
                            remember(t, strength(cap_dream(probe.frame, bare), bare), contrast(frame))
                        # a scheduled strength moves the strength held with it, from the chain's first frame on
                        target = hold * strengths[t] / strengths[_opened(holds, t, first)]
                        init = blend_init(frame, prev_dream, step, settings=frame_flow, prev_source=prev_bare,
                                          hold=target)
                        share = frame_share(dreamer, *frame.shape[:2])
                        options = top_up(dreamer.settings, float(strengths[t]), share)
                        if flow.holds:  # larger steps where the carried dream is weaker, on the whole and locally,
                            carried = carried_dream(init, frame)  # the two together up to a whole still step
                            most = 1 / share if share else 1.0  # (none at a share of 0)
                            whole = step_boost(float(carried.mean()), target, most)
                            options["strength"] *= whole
                            options["step_map"] = step_map(carried, target, most / whole)
                    # the writer and the reader start on their next frames now, beside the dream rather than the blend
                    # (the reader's only after a still's dream: it has time to read ahead during that one)
                    if pending is not None:
                        render.emit(*pending)
                    if not opens:
                        upcoming = next(steps, None)
                    result = dream(init, **options)
                    if bare is None:  # after the dream, whose errors speak of the frame the user asked for
                        bare = bare_of(frame, offset)
                    if opens:
                        upcoming = next(steps, None)
                        if flow.holds:
                            result = DreamResult(cap_dream(result.frame, bare), result.loss)
                        remember(t, strength(result.frame, bare), contrast(frame))
                    elif rebases:  # the frame's own detail as a still keeps it, where the dream grew on all of it
                        result = DreamResult(rebase(result.frame, frame, bare), result.loss)
                    dream_seconds += time.perf_counter() - tick
                    dreamed += 1
                    pending = (t - first, result.frame, result.loss) if t >= first else None
                    prev_dream, prev_bare = result.frame, bare
            if pending is not None:
                render.emit(*pending)
            frames = render.frames
        warnings = (reader.ended_early,) if reader.ended_early else ()
    return RenderSummary(output, frames, dreamed, time.perf_counter() - began, dream_seconds, warnings)
