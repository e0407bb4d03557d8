"""Per-frame cost of a video top-up at 540x360: `cover` with its look set at 384 px and at 640 px (the default), and
the `keras` recipe at 384 px (the default before `cover`). Random weights (speed does not depend on them), the
keras objective, a 540x360 frame as video mode dreams it (unaligned, the default), the video's iterations, detail
share and reinject; median of interleaved frames.

    .venv/bin/python benchmarks/frame_cost.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ddvideo.dream import Dreamer, DreamSettings  # noqa: E402
from ddvideo.media import VideoReader  # noqa: E402
from ddvideo.models import ModelSettings, load_model  # noqa: E402
from ddvideo.video import VIDEO_ITERATIONS, top_up  # noqa: E402

CONFIGS = {
    "cover, look at 384 px": DreamSettings(layers="keras", iterations=VIDEO_ITERATIONS, base_size=384),
    "cover, look at 640 px (default)": DreamSettings(layers="keras", iterations=VIDEO_ITERATIONS),
    "keras recipe, look at 384 px": DreamSettings(layers="keras", iterations=VIDEO_ITERATIONS, recipe="keras",
                                                  base_size=384),
}


def main(rounds: int = 3) -> None:
    loaded = load_model(ModelSettings(model="inception_v3", weights="none", seed=0))
    with VideoReader(ROOT / "samples" / "coffee_pan.mp4") as reader:
        frames = [cv2.resize(f, (540, 360), interpolation=cv2.INTER_AREA) for _, f in zip(range(3), reader)]
    dreamers = {name: Dreamer(loaded, settings) for name, settings in CONFIGS.items()}
    options = {name: top_up(dreamer.settings) for name, dreamer in dreamers.items()}
    for name, dreamer in dreamers.items():
        dreamer.dream(frames[0], **options[name])  # traces outside the timing
    times = {name: [] for name in dreamers}
    for _ in range(rounds):
        for frame in frames:
            for name, dreamer in dreamers.items():
                tick = time.perf_counter()
                dreamer.dream(frame, **options[name])
                times[name].append(time.perf_counter() - tick)
    for name, values in times.items():
        octaves = [max(s) for s in dreamers[name].octaves(*frames[0].shape[:2])]
        print(f"{name}: median {np.median(values):.3f} s/frame, octaves (long side) {octaves}")


if __name__ == "__main__":
    main()
