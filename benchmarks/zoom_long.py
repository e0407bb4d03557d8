"""Long zooms: does the picture keep its sharpness and its palette over hundreds of frames?

Each picture (scikit-image's bundled photos, `pip install scikit-image`; fitted to a long side of --size px) is
zoomed for --frames frames at the zoom defaults with the sample model (real ImageNet weights to mixed5) and the
`tutorial` objective, once per variant. Measures against the first dreamed frame (frame 0):

- sharpness: mean |Laplacian| of the last 40 frames over frame 0's (target >= 0.9);
- colour: distance of each frame's mean CIELAB colour from frame 0's (target <= 6 on every frame);
- spread: each frame's a* and b* standard deviation over frame 0's (target within 1/1.25 to 1.25);
- with --loop: the step from the last frame to the first over the median step (target <= 1.5).

    .venv/bin/python benchmarks/zoom_long.py                    # rewrites its section of benchmarks/zoom-loop.md
    .venv/bin/python benchmarks/zoom_long.py --pictures coffee --frames 60 --variants "off:colour=0,sharpen=0" --out -
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddvideo.colour import lab_stats  # noqa: E402
from ddvideo.dream import Dreamer, DreamSettings  # noqa: E402
from ddvideo.media import read_image, write_image  # noqa: E402
from ddvideo.metrics import sharpness  # noqa: E402
from ddvideo.models import ModelSettings, load_model  # noqa: E402
from ddvideo.schedule import DreamSchedule  # noqa: E402
from ddvideo.zoom import ZoomSettings, loop_seam, render_zoom  # noqa: E402

from bench import cpu_model  # noqa: E402
from still_look import picture  # noqa: E402

VARIANTS = "before:colour=0,sharpen=0;defaults:;loop:loop=1"
LAST = 40  # frames at the end whose sharpness is compared with frame 0's
SECTION = "## Long zooms: sharpness and palette"  # this script's part of benchmarks/zoom-loop.md


def variants(spec: str) -> dict[str, dict]:
    """'off:colour=0,sharpen=0;on:' -> {'off': {'colour_coherence': False, 'sharpen': 0.0}, 'on': {}}."""
    names = {"colour": ("colour_coherence", lambda v: bool(int(v))), "sharpen": ("sharpen", float),
             "loop": ("loop", lambda v: bool(int(v))), "iterations": ("iterations", int), "strength": ("strength", float)}
    out = {}
    for item in filter(None, spec.split(";")):
        name, _, rest = item.partition(":")
        settings = {}
        for pair in filter(None, rest.split(",")):
            key, _, value = pair.partition("=")
            field, kind = names[key]
            settings[field] = kind(value)
        out[name] = settings  # strength goes to the DreamSchedule, the rest to ZoomSettings
    return out


def measure(frames: list[np.ndarray]) -> dict:
    first, stats = frames[0], [lab_stats(f) for f in frames]
    spreads = np.array([s.spread(stats[0]) for s in stats])
    seam, median = loop_seam(frames)
    sharp = [sharpness(f) for f in frames]
    return {
        "sharp0": sharp[0], "sharp_last": float(np.mean(sharp[-LAST:])) / sharp[0],
        "sharp_min": float(np.min(sharp[1:])) / sharp[0],
        "colour_max": max(s.distance(stats[0]) for s in stats),
        "colour_last": float(np.mean([s.distance(stats[0]) for s in stats[-LAST:]])),
        "spread_lo": float(spreads.min()), "spread_hi": float(spreads.max()),
        "loop": seam / median, "first": first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pictures", default="astronaut,coffee,hubble_deep_field")
    parser.add_argument("--variants", default=VARIANTS, help=f"name:key=value,...;... (default {VARIANTS!r})")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--model", default=str(ROOT / "samples" / "inception_v3_mixed5.keras"))
    parser.add_argument("--strip", default=None, help="write a strip of frames of each render to this folder")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "zoom-loop.md"))
    args = parser.parse_args()

    dreamer = Dreamer(load_model(ModelSettings(model=args.model)), DreamSettings(layers="tutorial"))
    rows = []
    for name in args.pictures.split(","):
        with tempfile.TemporaryDirectory() as work:
            source = os.path.join(work, f"{name}.png")
            write_image(source, picture(name, args.size))
            for label, settings in variants(args.variants).items():
                out = os.path.join(work, label)
                tick = time.perf_counter()
                schedule = DreamSchedule(strength=settings.pop("strength", None))
                render_zoom(source, out, dreamer=dreamer, schedule=schedule,
                            zoom=ZoomSettings(frames=args.frames, **settings))
                seconds = time.perf_counter() - tick
                frames = [read_image(os.path.join(out, f)) for f in sorted(os.listdir(out)) if f.endswith(".png")]
                m = measure(frames)
                rows.append((name, label, m, seconds / args.frames))
                print(name, label, {k: round(v, 3) for k, v in m.items() if k != "first"}, flush=True)
                if args.strip:
                    os.makedirs(args.strip, exist_ok=True)
                    picks = np.linspace(0, len(frames) - 1, 6).round().astype(int)
                    write_image(os.path.join(args.strip, f"{name}-{label}.png"),
                                np.concatenate([frames[i] for i in picks], axis=1))

    lines = [
        "| picture | variant | s/frame | sharpness frame 0 | last 40 / frame 0 | min / frame 0 | mean colour: max "
        "distance | last 40 | a*, b* spread (range over frames) | loop: last->first / median |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, label, m, per_frame in rows:
        lines.append(f"| {name} | {label} | {per_frame:.2f} | {m['sharp0']:.1f} | {m['sharp_last']:.2f} | "
                     f"{m['sharp_min']:.2f} | {m['colour_max']:.1f} | {m['colour_last']:.1f} | "
                     f"{m['spread_lo']:.2f}-{m['spread_hi']:.2f} | {m['loop']:.2f} |")
    table = "\n".join(lines)
    text = (f"{SECTION}\n\nGenerated by `benchmarks/zoom_long.py`: {args.frames} frames of the zoom defaults at {args.size} px "
            f"(long side), `tutorial` objective, the sample model (real weights to mixed5); variants "
            f"`{args.variants}`; {cpu_model()}, {os.cpu_count()} cores. Sharpness is the mean |Laplacian|, colour the "
            f"CIELAB mean and the a*, b* standard deviations, each against frame 0 (the first dreamed frame).\n\n"
            f"{table}\n")
    if args.out == "-":
        print(text)
        return
    out = Path(args.out)
    old = out.read_text() if out.exists() else ""
    if SECTION in old:  # replace this section, up to the next heading of its level, and keep the rest
        head, rest = old.split(SECTION, 1)
        tail = rest[rest.index("\n## "):] if "\n## " in rest else ""
        text = head + text + tail
    else:
        text = old + ("\n" if old else "") + text
    out.write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
