"""The look of a still, recipe against recipe, in the network's own eyes and in pixels, on many kinds of picture.

Each picture (scikit-image's bundled photos: a face, a dark field of stars, foliage, a rocket on a launch pad, a
motorcycle, a retina, a cup, a cat; `pip install scikit-image`) is fitted to a long side of --size px and dreamed
with each recipe at equal work (--iterations steps at each of 3 octaves), the sample model (real ImageNet weights
to mixed5) and each objective. Measures (ddvideo.metrics): objective gain and activation coverage (the network's
view: blur cannot fake them), pixel coverage, burn, strength, structure, and sharpness over the source's.

    .venv/bin/python benchmarks/still_look.py                       # writes benchmarks/still-look-results.md
    .venv/bin/python benchmarks/still_look.py --recipes keras,tutorial --pictures astronaut,grass --out -
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddvideo import metrics  # noqa: E402
from ddvideo.dream import RECIPES, Dreamer, DreamSettings  # noqa: E402
from ddvideo.objective import objective_map  # noqa: E402
from ddvideo.media import read_image, write_image  # noqa: E402
from ddvideo.models import ModelSettings, load_model  # noqa: E402

from bench import cpu_model, gpu_names, write_keeping_notes  # noqa: E402

PICTURES = ("astronaut", "hubble_deep_field", "grass", "rocket", "motorcycle", "retina", "coffee", "chelsea")
KINDS = {"astronaut": "face", "hubble_deep_field": "bright points on dark", "grass": "foliage (grey)",
         "rocket": "outdoor scene", "motorcycle": "objects, indoors", "retina": "dark, one hue",
         "coffee": "still life", "chelsea": "animal", "mosaic": "nine photos"}
MOSAIC = ("retina", "hubble_deep_field", "motorcycle", "coffee", "rocket", "astronaut", "grass", "chelsea", "gravel")


def label(name: str) -> str:
    """What a picture is called in the tables: a scikit-image name, or the LABEL of LABEL=PATH."""
    return name.partition("=")[0]


def kind(name: str) -> str:
    """What kind of picture it is: KINDS' word for a scikit-image photo (or just that), the file's name for
    LABEL=PATH."""
    return KINDS.get(name) or Path(name.partition("=")[2]).name or "scikit-image photo"


def photo(name: str) -> np.ndarray:
    """A scikit-image photo at its own size, (H, W, 3) uint8; LABEL=PATH reads the picture file at PATH
    (benchmarks/README.md names free ones: a painting, lights on a dark ground, colour foliage)."""
    path = name.partition("=")[2]
    if path:
        return read_image(path)
    import skimage.data

    image = skimage.data.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skimage.data, name)()
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    return image[..., :3]


def mosaic(size: int) -> np.ndarray:
    """MOSAIC's nine photos on a 3x3 grid of 3:2 tiles (each cropped to 3:2 about its centre), long side `size`: a
    picture sharp at a 1080p frame's size (at 2560 px its photos sit at 0.6-1.9x their own scale, 1.4x on average,
    where the star field alone is scaled up 2.6x and the largest photo, the retina, 1.8x)."""
    th, tw = round(size * 2 / 9), round(size / 3)
    tiles = []
    for name in MOSAIC:
        image = photo(name)
        h, w = image.shape[:2]
        ch, cw = (h, round(h * 1.5)) if w / h > 1.5 else (round(w / 1.5), w)
        image = image[(h - ch) // 2 : (h - ch) // 2 + ch, (w - cw) // 2 : (w - cw) // 2 + cw]
        tiles.append(cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA if cw > tw else cv2.INTER_CUBIC))
    return np.concatenate([np.concatenate(tiles[r * 3 : r * 3 + 3], axis=1) for r in range(3)], axis=0)


def picture(name: str, size: int) -> np.ndarray:
    """A scikit-image photo (or the mosaic) as (H, W, 3) uint8, its long side `size`."""
    if name == "mosaic":
        return mosaic(size)
    image = photo(name)
    scale = size / max(image.shape[:2])
    h, w = round(image.shape[0] * scale) // 2 * 2, round(image.shape[1] * scale) // 2 * 2
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


def variant(spec: str) -> tuple[str, dict]:
    """'tutorial' or 'cover:reinject=0.5;step=0.02' -> (recipe name, DreamSettings overrides). Overrides of the
    recipe's own values (reinject, clip, loss, border) register the changed recipe under the spec's name."""
    name, _, rest = spec.partition(":")
    overrides, recipe = {}, {}
    for item in filter(None, rest.split(";")):
        key, _, value = item.partition("=")
        value = value if key in ("normalize", "loss") else float(value) if "." in value else int(value)
        (recipe if key in ("reinject", "clip", "loss", "border") else overrides)[key] = value
    if recipe:
        RECIPES[spec] = replace(RECIPES[name], **recipe)
        name = spec
    return name, overrides


def measure(dreamer: Dreamer, photo: np.ndarray, seed: int = 0) -> tuple[dict, np.ndarray]:
    tick = time.perf_counter()
    out = dreamer.dream(photo, seed=seed).frame
    seconds = time.perf_counter() - tick
    look = metrics.measure_look(out, photo, energy=functools.partial(objective_map, dreamer))
    return {
        "gain": look.gain, "act_cov": look.activation_coverage, "pix_cov": look.pixel_coverage,
        "burn": 100 * look.burn, "strength": look.strength, "structure": look.structure,
        "sharp": look.sharpness / look.source_sharpness, "seconds": seconds,
    }, out


COLUMNS = ("gain", "act_cov", "pix_cov", "burn", "strength", "structure", "sharp")
FORMATS = {"gain": "x{:.2f}", "act_cov": "{:.3f}", "pix_cov": "{:.3f}", "burn": "{:.2f} %", "strength": "{:.1f}",
           "structure": "{:.4f}", "sharp": "{:.2f}"}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "samples" / "inception_v3_mixed5.keras"))
    p.add_argument("--presets", default="tutorial,book")
    p.add_argument("--recipes", default="tutorial,keras,cover",
                   help="recipe names, each optionally with overrides: 'cover:reinject=0.5;step=0.02'")
    p.add_argument("--pictures", default=",".join(PICTURES))
    p.add_argument("--size", type=int, default=480)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--precision", default="auto")
    p.add_argument("--strips", help="folder for a PNG per picture: source, then each recipe's dream")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "still-look-results.md"), help="'-' prints only")
    args = p.parse_args(argv)
    loaded = load_model(ModelSettings(model=args.model))
    recipes = args.recipes.split(",")
    pictures = {name: picture(name, args.size) for name in args.pictures.split(",")}
    sections = []
    for preset in args.presets.split(","):
        dreamers = {}
        for spec in recipes:
            name, overrides = variant(spec)
            dreamers[spec] = Dreamer(loaded, DreamSettings(layers=preset, recipe=name, iterations=args.iterations,
                                                           precision=args.precision, **overrides))
        rows, table = [], {spec: [] for spec in recipes}
        for pname, photo in pictures.items():
            dreams = [photo]
            for spec, dreamer in dreamers.items():
                row, out = measure(dreamer, photo)
                table[spec].append(row)
                dreams.append(out)
                line = " | ".join(FORMATS[c].format(row[c]) for c in COLUMNS)
                rows.append(f"| {label(pname)} | {spec} | {line} | {row['seconds']:.1f} |")
                print(preset, rows[-1], flush=True)
            if args.strips:
                os.makedirs(args.strips, exist_ok=True)
                write_image(Path(args.strips) / f"{preset}-{label(pname)}.png", np.concatenate(dreams, axis=1))
        summary = []
        for spec in recipes:
            cells = []
            for c in COLUMNS:
                values = [r[c] for r in table[spec]]
                cells.append(f"{FORMATS[c].format(min(values))} - {FORMATS[c].format(max(values))}")
            summary.append(f"| {spec} | " + " | ".join(cells) + " |")
        sections.append((preset, rows, summary, table))
        print("\n".join(summary), flush=True)
    if args.out == "-":
        return
    write_results(args, sections, recipes)


def write_results(args, sections, recipes) -> None:
    gpus = gpu_names()
    machine = ", ".join(gpus) if gpus else f"CPU only: {cpu_model()}, {os.cpu_count()} cores"
    header = "| " + " | ".join(COLUMNS) + " |"
    parts = [f"""# The look of a still: recipes side by side

Generated by `benchmarks/still_look.py`. Pictures: {", ".join(f"{label(n)} ({kind(n)})" for n in args.pictures.split(","))},
each at a long side of {args.size} px. Model `samples/inception_v3_mixed5.keras` (real ImageNet weights to mixed5),
{args.iterations} steps at each of 3 octaves for every recipe, precision {args.precision}, seed 0. Machine: {machine}.

Columns: objective gain (the objective's per-position mean-square activations, averaged over the objective's layers
on the coarsest one's grid, dream over source), activation coverage (share of those positions holding half of the
positive gain), pixel coverage (share of 16x16 blocks holding half of sum |out - source|), burn (pixels moved more
than 80 grey levels in some channel), strength (mean |out - source|, 0-255), structure (correlation of the grey
pictures blurred by sigma 4 px), sharpness (mean |Laplacian| over the source's).
"""]
    for preset, rows, summary, table in sections:
        parts.append(f"## Objective `{preset}`: range over the pictures\n\n| recipe {header}\n|---{'|---' * len(COLUMNS)}|\n"
                     + "\n".join(summary) + "\n")
        if "tutorial" in table:
            ratio_lines = []
            for spec in recipes:
                if spec == "tutorial":
                    continue
                pairs = list(zip(table[spec], table["tutorial"]))
                g = [a["gain"] / b["gain"] for a, b in pairs]
                c = [a["act_cov"] / b["act_cov"] for a, b in pairs]
                bu = [a["burn"] - b["burn"] for a, b in pairs]
                st = [a["structure"] - b["structure"] for a, b in pairs]
                sh = [a["sharp"] / b["sharp"] for a, b in pairs]
                ratio_lines.append(f"| {spec} | {min(g):.2f} - {max(g):.2f} | {min(c):.2f} - {max(c):.2f} | "
                                   f"{min(bu):+.2f} - {max(bu):+.2f} | {min(st):+.4f} - {max(st):+.4f} | "
                                   f"{min(sh):.2f} - {max(sh):.2f} |")
            parts.append("Against the tutorial recipe, picture by picture (targets: gain >= 0.8x, activation coverage "
                         ">= 0.9x, burn <= +0.2 points, structure >= -0.005):\n\n| recipe | gain | activation coverage | "
                         "burn (points) | structure | sharpness |\n|---|---|---|---|---|---|\n" + "\n".join(ratio_lines) + "\n")
        parts.append(f"### Every picture\n\n| picture | recipe {header} seconds |\n|---|---{'|---' * len(COLUMNS)}|---|\n"
                     + "\n".join(rows) + "\n")
    write_keeping_notes(Path(args.out), "\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
