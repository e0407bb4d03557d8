"""Flicker benchmark: warping error and time per frame of video mode's coherence methods on one clip.

Renders the same clip four ways with one model and objective: every frame dreamed independently (init = the
source frame; once with the video's iterations, once with a still's), plain blend (init = blend * source + (1 - blend) * previous dream, no motion), and flow +
occlusion (the previous dream moved along DIS flow, unreliable pixels from the source, then blended). Each
result goes to a folder of PNG frames, so E_warp is measured on exactly what was dreamed; the table goes to
benchmarks/flicker-results.md.

    .venv/bin/python benchmarks/flicker.py                       # samples/coffee_pan.mp4, real-weights sample model
    .venv/bin/python benchmarks/flicker.py --end 1.5 --iterations 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddvideo.dream import Dreamer, DreamSettings  # noqa: E402
from ddvideo.flow import FlowSettings  # noqa: E402
from ddvideo.media import VideoReader, read_image  # noqa: E402
from ddvideo.metrics import warping_error  # noqa: E402
from ddvideo.models import ModelSettings, load_model  # noqa: E402
from ddvideo.render import RunSettings  # noqa: E402
from ddvideo.video import VIDEO_ITERATIONS, VIDEO_STEP, ClipSettings, render_video  # noqa: E402

from bench import cpu_model, gpu_names  # noqa: E402  (benchmarks/ is on the path when run as a script)


NOTES = "## Notes"  # everything from this heading on is kept when the table is regenerated


def device() -> str:
    gpus = gpu_names()
    return ", ".join(gpus) if gpus else f"CPU only: {cpu_model()}, {os.cpu_count()} cores"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default=str(ROOT / "samples" / "coffee_pan.mp4"))
    p.add_argument("--model", default=str(ROOT / "samples" / "inception_v3_mixed5.keras"))
    p.add_argument("--weights", default="imagenet", help="for a named backbone: imagenet or none")
    p.add_argument("--preset", default="tutorial", help="layer objective (preset name or spec)")
    p.add_argument("--octaves", type=int, default=3)
    p.add_argument("--iterations", type=int, default=VIDEO_ITERATIONS)
    p.add_argument("--step", type=float, default=VIDEO_STEP)
    p.add_argument("--blend", type=float, default=FlowSettings().blend)
    p.add_argument("--end", type=float, help="seconds of the clip to use (default: all of it)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "flicker-results.md"))
    return p.parse_args(argv)


def run_mode(source: str, folder: Path, *, dreamer: Dreamer, flow: FlowSettings, clip: ClipSettings) -> dict:
    folder.mkdir()
    out = folder / "frames"
    summary = render_video(source, str(out), dreamer=dreamer, flow=flow, clip=clip,
                           run=RunSettings(work_dir=str(folder / "work")))  # fmt: skip
    frames = [read_image(p) for p in sorted(out.iterdir())]
    with VideoReader(source, start=clip.start, end=clip.end) as reader:
        e_warp = warping_error(iter(reader), frames)
    strength = float(np.mean([np.abs(f.astype(np.float32) - s).mean()
                              for f, s in zip(frames, VideoReader(source, start=clip.start, end=clip.end))]))  # fmt: skip
    return {"e_warp": e_warp, "frames": summary.frames, "wall": summary.seconds / summary.frames,
            "dream": summary.dream_seconds / summary.dreamed, "strength": strength}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clip = ClipSettings(end=args.end)
    model = ModelSettings(model=args.model, weights=args.weights)
    dream = DreamSettings(layers=args.preset, octaves=args.octaves, iterations=args.iterations, step=args.step)
    loaded = load_model(model)
    dreamer = Dreamer(loaded, dream)
    # how a still is dreamed (`ddvideo image`, 30 iterations): what dreaming each frame on its own usually means
    still = Dreamer(loaded, DreamSettings(layers=args.preset, octaves=args.octaves))
    with VideoReader(args.source, end=args.end) as reader:
        source = list(reader)
        size, fps = (reader.width, reader.height), reader.fps
    dreamer.dream(source[0])  # compile before timing
    still.dream(source[0])
    floor = warping_error(source, source)
    modes = {
        "independent frames": (FlowSettings(method="none", blend=1.0), dreamer),
        "independent frames, still settings": (FlowSettings(method="none", blend=1.0), still),
        "plain blend": (FlowSettings(method="none", blend=args.blend), dreamer),
        "flow + occlusion": (FlowSettings(method="dis", blend=args.blend, occlusion=True), dreamer),
    }
    results = {}
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flicker-") as tmp:
        for i, (name, (flow, mode_dreamer)) in enumerate(modes.items()):
            results[name] = run_mode(args.source, Path(tmp) / str(i), dreamer=mode_dreamer, flow=flow, clip=clip)
            r = results[name]
            print(f"{name:20s} E_warp {r['e_warp']:.5f}  {r['wall']:.2f} s/frame", flush=True)
    total = time.perf_counter() - began

    indep, indep_still, plain, flow = (results[k]["e_warp"] for k in modes)
    rows = []
    for (name, (settings, mode_dreamer)), r in zip(modes.items(), results.values()):
        name = f"{name} ({mode_dreamer.settings.iterations} it., step {mode_dreamer.settings.step:g})"
        method = "none" if settings.method == "none" else f"{settings.method}, occlusion"
        rows.append(f"| {name} | {method} | {settings.blend:g} | {r['e_warp']:.5f} | {r['e_warp'] / plain:.2f} | "
                    f"{r['e_warp'] / indep:.2f} | {r['strength']:.1f} | {r['wall']:.2f} | {r['dream']:.2f} |")  # fmt: skip
    met = flow <= plain / 2 and flow <= indep / 4
    met_still = flow <= plain / 2 and flow <= indep_still / 4
    text = f"""# Flicker: warping error of video mode's coherence methods

Generated by `benchmarks/flicker.py` (rerun it to refresh this file).

- Clip: `{os.path.relpath(args.source, ROOT)}`, {len(source)} frames{f' (up to {args.end:g} s)' if args.end else ''}, {size[0]}x{size[1]} at {fps:g} fps
- Model: `{os.path.relpath(args.model, ROOT) if os.path.exists(args.model) else args.model}`, objective `{args.preset}`
- Dream per frame: {dream.octaves} octaves x {dream.iterations} iterations, step {dream.step:g}, max loss {dream.max_loss}, {dream.normalize} gradients
- Machine: {device()}; {total:.0f} s for the four renders
- E_warp (Lai et al. 2018) on frames scaled to [0, 1], DIS flow and occlusion mask of the source; lower is steadier.
  The source against itself gives {floor:.5f}, the floor set by resampling and compression.
- Dream strength: mean |output - source| per pixel and channel, on the 0-255 scale.

| mode | flow | blend | E_warp | / plain blend | / independent | dream strength | s/frame (wall) | s/frame (dream) |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Target (flow + occlusion at most 1/2 of plain blend and 1/4 of independent frames):
- against independent frames dreamed with the video's iterations: {'met' if met else 'NOT met'}
  ({flow / plain:.2f} of plain blend, {flow / indep:.2f} of independent frames);
- against independent frames dreamed as stills ({still.settings.iterations} iterations, step {still.settings.step:g}): {'met' if met_still else 'NOT met'}
  ({flow / plain:.2f} of plain blend, {flow / indep_still:.2f} of independent frames).
"""
    out = Path(args.out)
    if out.exists() and NOTES in out.read_text():  # hand-written findings below the table survive a rerun
        text += "\n" + NOTES + out.read_text().split(NOTES, 1)[1]
    out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
