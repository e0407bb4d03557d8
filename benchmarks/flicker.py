"""Flicker, sharpness and strength of video mode against the ideal: the same dream, filmed still.

A photo panned by a known camera is the source. Dreamed once as a still (image defaults, at the base size that
gives the first frame's pattern scale) and filmed by the same camera, it gives a video perfectly glued to the
scene: its E_warp is the floor for that dream texture, and its sharpness what a video of that dream should keep.
Each video mode renders the source, and the table gives, per mode: sharpness over the filmed still's, strength
over a still dream of the first frame, E_warp over the filmed still's, and the drift toward spots. Clips:
sub-pixel pans over samples/coffee.png and scikit-image photos (each window cut from a 4x upscale and averaged
down, so every frame is about equally sharp), and samples/coffee_pan.mp4 (its own camera, from
samples/make_samples.py).

    .venv/bin/python benchmarks/flicker.py                # writes benchmarks/flicker-results.md (26 min on 2 cores)
    .venv/bin/python benchmarks/flicker.py --frames 24 --out -
    .venv/bin/python benchmarks/flicker.py --clips astronaut@960 --frames 24 --out -   # a frame above the base size
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))

from ddvideo.dream import Dreamer, DreamSettings  # noqa: E402
from ddvideo.flow import FlowSettings  # noqa: E402
from ddvideo.media import VideoReader, ffmpeg_exe, read_image, write_image  # noqa: E402
from ddvideo.objective import objective_map  # noqa: E402
from ddvideo.metrics import activation_coverage, burn, measure_clip, sharpness, strength  # noqa: E402
from ddvideo.models import ModelSettings, load_model, resolve_precision  # noqa: E402
from ddvideo.render import RunSettings  # noqa: E402
from ddvideo.video import VIDEO_ITERATIONS, VIDEO_STEP_SHARE, ClipSettings, render_video  # noqa: E402

import make_samples  # noqa: E402
from bench import cpu_model, gpu_names, write_keeping_notes  # noqa: E402  (benchmarks/ is on the path when run as a script)
from still_look import kind, label, picture  # noqa: E402

# px per frame: sub-pixel steps. The first window sits off the pixel grid too: at (10, 8) it was the one frame the
# 4x resampling left unblurred (source sharpness 14.1 against 11.7-12.7 after), and the filmed still's own
# activation coverage fell to 0.84 of its first frame's over the clip, so any drift read against it was inflated.
PAN = dict(width=480, height=320, dx=1.37, dy=0.45, x0=10.25, y0=8.5)
PHOTO_SIZE = 640  # long side of the scikit-image photos a 480 px pan films (a wider pan films them larger)


def device() -> str:
    gpus = gpu_names()
    return ", ".join(gpus) if gpus else f"CPU only: {cpu_model()}, {os.cpu_count()} cores"


class Pan:
    """A camera whose windows of `width` x 2/3 of it move (dx, dy) px per frame, each cut from a 4x upscale of the
    photo and averaged down (the photo scaled to PHOTO_SIZE / 480 times the window's width)."""

    def __init__(self, width: int = PAN["width"]) -> None:
        self.width, self.height = width, width * PAN["height"] // PAN["width"]

    def photo_size(self) -> int:
        return PHOTO_SIZE * self.width // PAN["width"]

    def __call__(self, photo: np.ndarray, frames: int) -> list[np.ndarray]:
        w, h = self.width, self.height
        big = cv2.resize(photo, (photo.shape[1] * 4, photo.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
        out = []
        for t in range(frames):
            x, y = round(4 * (PAN["x0"] + PAN["dx"] * t)), round(4 * (PAN["y0"] + PAN["dy"] * t))
            out.append(cv2.resize(big[y : y + 4 * h, x : x + 4 * w], (w, h), interpolation=cv2.INTER_AREA))
        return out


def sample_camera(photo: np.ndarray, frames: int) -> list[np.ndarray]:
    """samples/coffee_pan.mp4's camera (pan and slow zoom), as make_samples.py films it."""
    return list(make_samples.camera_frames(photo))[:frames]


def first_window(camera, photo: np.ndarray) -> float:
    """Photo pixels across the camera's first frame."""
    return camera.width if isinstance(camera, Pan) else make_samples.first_crop_width(photo)


def matched_base(settings: DreamSettings, photo: np.ndarray, window: float) -> int:
    """The base size at which the whole photo dreams the pattern scale its first frame dreams at the default base.

    The anchored pyramid sets the pattern scale by the picture's long side: a 480 px window of a 600 px photo,
    dreamed on its own, gets patterns 600/480 times smaller in photo pixels than the photo dreamed whole. Filmed at
    its own scale, the whole photo's dream would be a coarser texture than any video of the window can show.
    """
    return round(settings.resolved().base_size * max(photo.shape[:2]) / window)


def filmed_dream(loaded, settings: DreamSettings, photo: np.ndarray, window: float,
                 scale: float) -> tuple[Dreamer, np.ndarray]:
    """(the dreamer at the matched base, the photo dreamed at the first frame's octaves): the dream to film.

    A photo up to the base size dreams at its own scale (its octaves end at its own size), so where the camera
    shrinks the photo (the shipped clip's 480 photo px across 360 frame px) the photo dreamed as it is would sit
    one octave finer than the frames' dream: its octaves at 0.61, 0.79 and 1.0 of a photo pixel against the first
    frame's 0.47, 0.61 and 0.75. So the photo is dreamed at the frame's scale (at the matched base, exactly the
    first frame's octaves) and its dream (output minus photo) scaled back up onto the photo. Untiled: the ideal has
    no tile edges (tiles at 512 px soften a 600 px photo's dream: sharpness 24.9 against 30.7).
    """
    h, w = photo.shape[:2]
    small = photo if scale == 1 else cv2.resize(photo, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    matched = Dreamer(loaded, replace(settings, base_size=matched_base(settings, small, window * scale), tile_size=0))
    dreamed = matched.dream(small).frame
    if scale == 1:
        return matched, dreamed
    residual = cv2.resize(dreamed.astype(np.float32) - small, (w, h), interpolation=cv2.INTER_LANCZOS4)
    return matched, np.clip(np.rint(photo + residual), 0, 255).astype(np.uint8)


def write_lossless(frames: list[np.ndarray], path: Path, fps: float) -> None:
    h, w = frames[0].shape[:2]
    proc = subprocess.Popen([ffmpeg_exe(), "-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                             "-r", f"{fps:g}", "-i", "-", "-c:v", "libx264rgb", "-crf", "0", str(path)],
                            stdin=subprocess.PIPE)  # fmt: skip
    for frame in frames:
        proc.stdin.write(frame.tobytes())
    proc.stdin.close()
    if proc.wait():
        raise RuntimeError(f"ffmpeg could not write {path}")


def modes(still: DreamSettings, video: DreamSettings) -> dict[str, tuple[FlowSettings, DreamSettings]]:
    return {
        "video defaults (residual carried, held)": (FlowSettings(), video),
        "residual carried, fixed fade 0.05, no hold": (FlowSettings(hold=False, blend=0.05), video),
        "whole frame carried (blend 0.3, 3 iterations)": (FlowSettings(carry="frame", blend=0.3), replace(video, iterations=3)),
        "plain blend (0.3, 3 iterations)": (FlowSettings(method="none", carry="frame", blend=0.3), replace(video, iterations=3)),
        "independent frames (still settings)": (FlowSettings(method="none", blend=1.0), still),
    }


def frame_coverage(dreamer: Dreamer, dreamed: np.ndarray, source: np.ndarray) -> float:
    """Activation coverage of one dreamed frame over its source (benchmarks/still_look.py)."""
    return activation_coverage(objective_map(dreamer, dreamed), objective_map(dreamer, source))


def drift(dreamer: Dreamer, source: list[np.ndarray], dreamed: list[np.ndarray],
          last: int = 8) -> tuple[float, float, float, float]:
    """(activation coverage of the first frame, the mean of the last `last` frames', their burn in %, the mean
    coverage of the `last` frames after the first `last`, NaN in a clip under 3 x `last` frames): does the dream
    drift toward spots as the clip goes on? The fourth figure tells a drift from the one step a chain takes from its
    first frame, a still dreamed on that very frame, to what a glued dream reads once it has settled."""
    def cover(i):
        return frame_coverage(dreamer, dreamed[i], source[i])
    tail = range(len(dreamed) - last, len(dreamed))
    settled = float(np.mean([cover(i) for i in range(last, 2 * last)])) if len(dreamed) >= 3 * last else math.nan
    return (cover(0), float(np.mean([cover(i) for i in tail])),
            100 * np.mean([burn(dreamed[i], source[i]) for i in tail]), settled)


def run_clip(name: str, camera, frames: int, fps: float, loaded, args, tmp: Path, *, keep: Path | None,
             photo_name: str = "coffee") -> str:
    photo = (read_image(ROOT / "samples" / "coffee.png") if photo_name == "coffee"
             else picture(photo_name, camera.photo_size()))
    slug = name.split()[0].replace("/", "-")
    if camera is sample_camera:  # the shipped clip itself (H.264); its camera films the dreamed still
        clip = ROOT / "samples" / "coffee_pan.mp4"
        with VideoReader(clip) as reader:
            source = list(reader)[:frames]
    else:
        source = camera(photo, frames)
        clip = tmp / f"{slug}.mkv"
        write_lossless(source, clip, fps)
    still_settings = DreamSettings(layers=args.preset, precision=args.precision)
    video_settings = replace(still_settings, iterations=VIDEO_ITERATIONS)
    still = Dreamer(loaded, still_settings)
    window = first_window(camera, photo)
    scale = source[0].shape[1] / window  # frame pixels per photo pixel in the first frame
    matched, dreamed_photo = filmed_dream(loaded, still_settings, photo, window, scale)
    base = matched.settings.base_size
    # the filmed dream laid on the frames video mode reads: the shipped clip's H.264 frames are softer than its
    # camera's (sharpness 16.9 against 19.0), and the filmed still would otherwise be credited with the difference
    # (the same frames for the lossless pans)
    filmed = [np.clip(s.astype(np.int16) + d - p, 0, 255).astype(np.uint8)
              for s, d, p in zip(source, camera(dreamed_photo, frames), camera(photo, frames))]
    floor = measure_clip(source, filmed)
    own_error = measure_clip(source, source).e_warp  # the source's own: the flow's and the warp's error on its detail
    # a photo up to the base size dreams at its own scale at either base: the same dream, not dreamed twice
    same = scale == 1 and matched.octaves(*photo.shape[:2]) == still.octaves(*photo.shape[:2])
    unmatched = floor if same else measure_clip(source, camera(still.dream(photo).frame, frames))
    ideal_first, ideal_tail, ideal_burn, _ = drift(still, source, filmed)  # the same measure of a dream that cannot drift
    ideal_coverage = ideal_tail / ideal_first
    first_dream = still.dream(source[0]).frame
    # stills of the clip's own frames (its first, middle and last): the sharpness a dream made on the frames reaches,
    # where the camera blurs the filmed dream as it blurs the source (the pans' 4x resampling) or zooms in
    probes = (0, frames // 2, frames - 1)
    own_stills = [first_dream] + [still.dream(source[k]).frame for k in probes[1:]]
    first, first_burn = strength(first_dream, source[0]), 100 * burn(first_dream, source[0])
    # what a dream glued to the scene reads against one dreamed on the very frame: stills of the first and last
    # frames, and the filmed still's last frame
    still_first = frame_coverage(still, first_dream, source[0])
    still_last = frame_coverage(still, own_stills[-1], source[-1])
    filmed_last = frame_coverage(still, filmed[-1], source[-1])
    rows, strips = [], [source, filmed]
    chosen = modes(still_settings, video_settings)
    for mode, (flow, settings) in list(chosen.items())[: None if args.all_modes else 1]:
        out = tmp / f"{slug}-{len(rows)}"
        began = time.perf_counter()
        render_video(str(clip), str(out) + "/", dreamer=Dreamer(loaded, settings), flow=flow,
                     clip=ClipSettings(end=frames / fps), run=RunSettings(work_dir=str(tmp / "work")))
        seconds = (time.perf_counter() - began) / frames
        dreamed = [read_image(p) for p in sorted(out.iterdir())]
        m = measure_clip(source, dreamed)
        cover_first, cover_tail, tail_burn, settled = drift(still, source, dreamed)
        coverage = cover_tail / cover_first
        since_settled = "-" if math.isnan(settled) else f"{cover_tail / settled:.2f}"
        own = np.mean([sharpness(dreamed[k]) / sharpness(d) for k, d in zip(probes, own_stills)])
        rows.append(f"| {mode} | {m.look.sharpness / floor.look.sharpness:.2f} | {own:.2f} | {m.look.strength / first:.2f} | "
                    f"{m.e_warp / floor.e_warp:.2f} | {coverage:.2f} | {since_settled} | {coverage / ideal_coverage:.2f} | {cover_tail / ideal_tail:.2f} | {tail_burn:.2f} % | {m.e_warp:.5f} | "
                    f"{m.look.sharpness:.1f} | {m.look.strength:.1f} | {seconds:.2f} |")
        print(rows[-1], flush=True)
        strips.append(dreamed)
    if keep is not None:
        step = max(1, frames // 6)
        write_image(keep / f"flicker-{slug}.png",
                    np.concatenate([np.concatenate(r[::step][:6], axis=1) for r in strips], axis=0))
    h, w = source[0].shape[:2]
    return f"""### {name}: {frames} frames, {w}x{h} at {fps:g} fps

Filmed still (the photo dreamed whole{"" if scale == 1 else f" at {round(photo.shape[1] * scale)} px, the frame's scale,"} at base size {base}, the pattern scale of the first frame's dream): E_warp
{floor.e_warp:.5f}, sharpness {floor.look.sharpness:.1f} (source {floor.look.source_sharpness:.1f}, its own E_warp {own_error:.5f}), strength {floor.look.strength:.1f}.
Its activation coverage, last 8 frames over the first: {ideal_coverage:.2f} ({ideal_tail:.3f} / {ideal_first:.3f}; burn {ideal_burn:.2f} %).
Stills dreamed on the first and the last frame read {still_first:.3f} and {still_last:.3f}; the filmed still's last frame
{filmed_last:.3f}, {filmed_last / still_last:.2f} of the still of that frame: a dream glued to the scene reads {"lower than" if filmed_last < still_last else "as high as"} one
dreamed on the very frame, as a video's first frame is.
Still dream of the first frame: strength {first:.1f}, burn {first_burn:.2f} %. The photo dreamed as it is at the
default base size (another pattern scale), filmed the same way: E_warp {unmatched.e_warp:.5f}, sharpness {unmatched.look.sharpness:.1f}.

| mode | sharpness / filmed still | sharpness / stills of its frames | strength / still | E_warp / filmed still | activation coverage, last 8 / first | last 8 / frames 8-15 | the same over the filmed still's | last 8 over the filmed still's last 8 | burn, last 8 | E_warp | sharpness | strength | s/frame |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=str(ROOT / "samples" / "inception_v3_mixed5.keras"))
    p.add_argument("--preset", default="tutorial")
    p.add_argument("--precision", default="auto", help="the network's dtype (auto: this machine's fastest)")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--strips", help="folder for PNG strips of the frames (source, filmed still, each mode)")
    p.add_argument("--clips", default="pan,sample,hubble_deep_field,astronaut,grass,retina",
                   help="which clips: pan (the sub-pixel pan over coffee.png), sample (coffee_pan.mp4), or the name of "
                        "a scikit-image photo (or mosaic: nine of them, sharp at mosaic@1920) or LABEL=PATH, a picture file, "
                        "panned the same way; NAME@WIDTH for a wider window (and a larger photo)")
    p.add_argument("--all-modes", action="store_true", help="every video mode, not only the defaults")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "flicker-results.md"))
    args = p.parse_args(argv)
    loaded = load_model(ModelSettings(model=args.model))
    keep = Path(args.strips) if args.strips else None
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flicker-") as tmp:
        clips = {"pan": ("coffee.png sub-pixel pan", Pan(), args.frames),
                 "sample": ("samples/coffee_pan.mp4", sample_camera, min(args.frames, 72))}
        tables = []
        for c in args.clips.split(","):
            photo, _, width = c.partition("@")
            name, camera, frames = clips.get(c) or (f"{label(photo)}{'@' + width if width else ''} ({kind(photo)}) sub-pixel pan",
                                                    Pan(int(width or 480)), args.frames)
            tables.append(run_clip(name, camera, frames, 24.0, loaded, args, Path(tmp), keep=keep,
                                   photo_name="coffee" if c in clips else photo))
    video = DreamSettings()
    text = f"""# Flicker against a dream filmed still: sharpness, strength and E_warp of video mode

Generated by `benchmarks/flicker.py` (rerun it to refresh this file).

- Model: `{os.path.relpath(args.model, ROOT) if os.path.exists(args.model) else args.model}` (real ImageNet weights up
  to mixed5), objective `{args.preset}`, recipe `{video.recipe}`, precision {resolve_precision(args.precision)}, base size
  {video.resolved().base_size}
- Video defaults: {FlowSettings().carry} carried along DIS flow with occlusion and held at the first frame's
  strength, {VIDEO_ITERATIONS} iterations per octave per frame at {VIDEO_STEP_SHARE:g} of a still's step (more
  where the carried dream is weaker) with a smoothed gradient and laid on the frame as a still leaves it, frames {"" if FlowSettings().align else "not "}aligned
  to the network's grid; the first frame dreamed as a still.
- Machine: {device()}; {time.perf_counter() - began:.0f} s in all
- Sharpness: mean |Laplacian| of the grey frame. Strength: mean |output - source| (0-255). E_warp (Lai et al.
  2018) on frames scaled to [0, 1], DIS flow and occlusion mask of the source. Targets for the video defaults:
  sharpness >= 0.9, strength >= 0.9, E_warp <= 1.25, each against the filmed still (strength against a still
  dream of the first frame). Sharpness is also given over still dreams of the clip's own first, middle and last
  frames. Drift toward spots, frame by frame: the activation coverage (benchmarks/still_look.py)
  of the last 8 frames over the first frame's, target >= 0.9, and their burn, target <= the still's; beside it the
  last 8 over frames 8-15, once the chain has settled from its first frame, a still of that very frame. The filmed
  still, a dream that cannot drift, is measured the same way; the video's coverage ratio is also given over its,
  and the video's last 8 frames over the filmed still's last 8 (the same content, so new content entering the
  picture does not count against the video).

{chr(10).join(tables)}"""
    if args.out == "-":
        print(text)
        return
    write_keeping_notes(Path(args.out), text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
