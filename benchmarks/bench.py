"""Speed benchmark: dream iterations per second, ddvideo against the Keras example's loop, per-frame and end-to-end
video time, peak memory at 1080p and 4K (memory.py), and whole processes: start-up against the Keras example script
and a batch of stills against separate runs (startup.py). Prints markdown and writes benchmarks/results-<machine>.md,
section by section.

    .venv/bin/python benchmarks/bench.py                  # everything, on the GPU if there is one (~40 min on 2 CPU cores)
    .venv/bin/python benchmarks/bench.py --quick          # a small subset, a few minutes
    .venv/bin/python benchmarks/bench.py --device cpu     # hide the GPUs
    .venv/bin/python benchmarks/bench.py --sections speed,reference

Random weights (--weights none) by default: speed does not depend on the weights, but the dreams and their early
stops do, so output differences are measured on random-weight dreams. Everything from the "## Notes" heading of an
existing results file on is kept when the file is regenerated.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SECTIONS = ("speed", "reference", "frame", "video", "memory", "startup", "batch")
SIZES = {"256x256": (256, 256), "540x360": (360, 540), "1280x720": (720, 1280), "1920x1080": (1080, 1920),
         "3840x2160": (2160, 3840)}  # name: (H, W)
NOTES = "## Notes"  # a results file's hand-written findings start at this heading


def write_keeping_notes(path: Path, text: str) -> None:
    """Write a results file, keeping its hand-written findings: everything from its NOTES heading on survives."""
    old = path.read_text() if path.exists() else ""
    path.write_text(text + ("\n" + old[old.index(NOTES):] if NOTES in old else ""))


# -- the machine ------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gb(field: str = "MemTotal") -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 2**20
    return float("nan")


def gpu_names() -> list[str]:
    import tensorflow as tf

    return [tf.config.experimental.get_device_details(g).get("device_name", g.name)
            for g in tf.config.list_physical_devices("GPU")]


def machine() -> dict:
    import keras
    import tensorflow as tf

    flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_fp16") if f" {f}" in flags]
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "simd": simd, "memory_gb": round(memory_gb(), 1),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (TensorFlow's default: on)"),
            "gpus": gpu_names(), "tensorflow": tf.__version__, "keras": keras.__version__,
            "python": platform.python_version(), "date": datetime.date.today().isoformat()}


def machine_name(info: dict) -> str:
    if info["gpus"]:
        return re.sub(r"[^a-z0-9]+", "-", info["gpus"][0].lower()).strip("-")
    return f"cpu-{info['cores']}core"


def load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


# -- inputs ----------------------------------------------------------------------------------------
def make_clip(folder: Path, *, size: str = "540x360", seconds: float = 2.0) -> Path:
    import imageio_ffmpeg

    path = folder / "testsrc2.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=24", "-t", str(seconds), "-pix_fmt", "yuv420p", str(path)], check=True)
    return path


def as_video_dreams(frame, grid: int):
    """`frame` as video mode hands it to the dream with its defaults: on a canvas a stride larger where the defaults
    align frames to the network's grid (FlowSettings.align), else as it is."""
    import numpy as np

    from ddvideo.flow import FlowSettings
    from ddvideo.transforms import grid_canvas

    return grid_canvas(frame, offset=np.zeros(2), grid=grid)[0] if FlowSettings().aligns else frame


def clip_frames(path: Path, count: int, size: tuple[int, int] | None = None) -> list:
    """The first `count` frames of the clip, resized to (H, W) when given."""
    import cv2

    from ddvideo.media import VideoReader

    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame if size is None else cv2.resize(frame, size[::-1], interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    tick = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - tick, result


def variants(gpu: bool, size_name: str) -> list[tuple[str, str, bool]]:
    """(label, precision, jit) to time at this size: XLA both ways on a GPU; on CPU, where it is slow, at 256 only."""
    out = []
    for precision in ("float32", "bfloat16", "float16"):
        jits = (True, False) if gpu else ((False, True) if precision == "float32" and size_name == "256x256" else (False,))
        out += [(f"{precision}{' +XLA' if jit else ''}", precision, jit) for jit in jits]
    return out


# -- 1. iterations per second ----------------------------------------------------------------------
def bench_speed(loaded, args, gpu: bool) -> list[str]:
    import numpy as np

    from ddvideo.dream import Dreamer, DreamSettings

    names = ["256x256", "540x360"] if args.quick else ["256x256", "540x360", "1280x720", "1920x1080"]
    target = 1.0 if args.quick else 3.0  # seconds per timed call
    reps = 2 if args.quick else 3
    rows = ["| size | precision | it/s | s/it | vs float32 |", "|---|---|---|---|---|"]
    for name in names:
        height, width = SIZES[name]
        image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        runs = {}
        for label, precision, jit in variants(gpu, name):
            dreamer = Dreamer(loaded, DreamSettings(octaves=1, max_loss=None, precision=precision), jit_compile=jit)
            dreamer.dream(image, iterations=1)  # trace
            per_it = timed(dreamer.dream, image, iterations=2)[0] / 2
            runs[label] = (dreamer, max(1, min(100, round(target / per_it))), [])
        for _ in range(reps):  # interleaved, so a busy moment of the machine hits every variant alike
            for dreamer, n, times in runs.values():
                times.append(timed(dreamer.dream, image, iterations=n)[0] / n)
        base = median(runs["float32"][2])
        for label, (_, _, times) in runs.items():
            s = median(times)
            rows.append(f"| {name} | {label} | {1 / s:.2f} | {s:.3f} | {base / s:.2f}x |")
        print("\n".join(rows[-len(runs):]), flush=True)
    return rows


# -- 2. against the Keras example ------------------------------------------------------------------
def bench_reference(loaded, args, clip: Path) -> tuple[list[str], list[float]]:
    import numpy as np

    from ddvideo.dream import Dreamer, DreamSettings
    from ddvideo.objective import PRESETS, parse_objective
    from keras_reference import KerasExampleDream

    iterations = 3 if args.quick else 10
    count, rounds = (2, 1) if args.quick else (3, 2)
    weights = {t.layer: t.weight for t in parse_objective(PRESETS["keras"])}
    rows = ["| size | ddvideo | Keras example s/frame | ddvideo s/frame | speed-up | mean \\|diff\\| (grey levels) |",
            "|---|---|---|---|---|---|"]
    ratios = []
    for name in ("256x256", "540x360"):
        frames = clip_frames(clip, count, SIZES[name])
        reference = KerasExampleDream(loaded.model, weights, iterations=iterations)
        ours = {p: Dreamer(loaded, DreamSettings(iterations=iterations, precision=p)) for p in ("float32", "bfloat16")}
        reference.dream(frames[0])  # trace every octave shape
        for dreamer in ours.values():
            dreamer.dream(frames[0])
        times = {"keras": [], **{p: [] for p in ours}}
        diff = {p: [] for p in ours}
        for _ in range(rounds):
            for frame in frames:  # interleaved frame by frame
                seconds, theirs = timed(reference.dream, frame)
                times["keras"].append(seconds)
                for p, dreamer in ours.items():
                    seconds, result = timed(dreamer.dream, frame)
                    times[p].append(seconds)
                    diff[p].append(np.abs(result.frame.astype(int) - theirs).mean())
        keras_s = sum(times["keras"]) / len(times["keras"])
        for p in ours:
            s = sum(times[p]) / len(times[p])
            label = p if p == "float32" else f"{p} (not like for like)"
            rows.append(f"| {name} | {label} | {keras_s:.3f} | {s:.3f} | {keras_s / s:.2f}x | {np.mean(diff[p]):.2f} |")
            if p == "float32":
                ratios.append(keras_s / s)
        print("\n".join(rows[-2:]), flush=True)
    # the same computation: one step of one octave agrees; later steps amplify rounding differences
    frame = clip_frames(clip, 1, SIZES["256x256"])[0]
    one = KerasExampleDream(loaded.model, weights, octaves=1, iterations=1).dream(frame)
    ours_one = Dreamer(loaded, DreamSettings(octaves=1, iterations=1, precision="float32")).dream(frame).frame
    noisy = np.clip(frames[0] + np.random.default_rng(0).integers(-1, 2, frames[0].shape), 0, 255).astype(np.uint8)
    control = np.abs(reference.dream(noisy).astype(int) - reference.dream(frames[0])).mean()  # 540x360
    rows.append(f"\nSettings: keras preset (mixed4..mixed7), 3 octaves x {iterations} iterations, scale 1.4, step 20, "
                f"max loss 15 (random weights never reach it, so every step runs in both); {count} frames of the test "
                f"clip x {rounds} rounds, the implementations alternating frame by frame; mean s/frame. "
                f"Same computation: after one step of one octave, ddvideo float32 and the Keras loop differ by at most "
                f"{int(np.abs(ours_one.astype(int) - one).max())} grey level(s). Over more steps rounding differences "
                f"grow: a random-weight dream amplifies any change (+-1 grey level of noise on the input moves the Keras "
                f"loop's own 540x360 output by {control:.2f} on average).")
    return rows, ratios


# -- 3. seconds per frame with the video defaults -----------------------------------------------------
def bench_frame(loaded, args, clip: Path, gpu: bool) -> tuple[list[str], object, dict[str, float]]:
    """Seconds per frame with the video defaults in each precision (XLA on and off on a GPU, where 1080p is timed
    too); returns the rows, a dreamer in the default precision and XLA choice, and its s/frame per size."""
    import numpy as np

    from ddvideo.dream import Dreamer, DreamSettings, default_jit_compile
    from ddvideo.models import resolve_precision
    from ddvideo.flow import FlowSettings
    from ddvideo.video import VIDEO_ITERATIONS, frame_share, top_up

    rounds = 1 if args.quick else 2
    default = (resolve_precision("auto"), default_jit_compile())
    rows = ["| size | precision | s/frame | frames/s | vs float32 | mean \\|out - float32 out\\| |", "|---|---|---|---|---|---|"]
    seconds, kept, notes = {}, None, []
    for name in ("540x360", "1920x1080") if gpu else ("540x360",):
        configs = [(p, jit) for p in ("float32", "bfloat16", "float16") for jit in ((True, False) if gpu else (False,))]
        if name != "540x360":
            configs = [(default[0], True), (default[0], False)]  # one precision at 1080p: compiles take long
        dreamers = {c: Dreamer(loaded, DreamSettings(iterations=VIDEO_ITERATIONS, precision=c[0]), jit_compile=c[1])
                    for c in configs}
        # each frame as video mode dreams it after the first: a top-up (video.top_up) of the frame as it is handed over
        grid = next(iter(dreamers.values())).grid
        sources = clip_frames(clip, 2 if args.quick else 3, None if name == "540x360" else SIZES[name])
        frames = [as_video_dreams(f, grid) for f in sources]
        options = {c: top_up(d.settings, share=frame_share(d, *frames[0].shape[:2])) for c, d in dreamers.items()}
        outputs = {c: d.dream(frames[0], **options[c]).frame.astype(int) for c, d in dreamers.items()}  # also traces
        times = {c: [] for c in dreamers}
        for _ in range(rounds):
            for frame in frames:
                for c, dreamer in dreamers.items():
                    times[c].append(timed(dreamer.dream, frame, **options[c])[0])
        for (p, jit), values in times.items():
            s, base = median(values), times.get(("float32", jit))
            same = outputs.get(("float32", jit))
            change = "-" if p == "float32" or same is None else f"{np.abs(outputs[(p, jit)] - same).mean():.2f}"
            label = f"{p}{' +XLA' if jit else ''}{' (default)' if (p, jit) == default else ''}"
            rows.append(f"| {name} | {label} | {s:.3f} | {1 / s:.2f} | {f'{median(base) / s:.2f}x' if base else '-'} | {change} |")
        if default in dreamers:
            seconds[name], kept = median(times[default]), dreamers[default]
        if ("float32", False) in dreamers:
            noisy = np.clip(frames[0] + np.random.default_rng(0).integers(-1, 2, frames[0].shape), 0, 255).astype(np.uint8)
            control = np.abs(dreamers[("float32", False)].dream(noisy, **options[("float32", False)]).frame
                             - outputs[("float32", False)]).mean()
            strength = np.abs(outputs[("float32", False)] - frames[0]).mean()
            notes.append(f"for scale: at {name} the float32 dream changes the frame by {strength:.2f} on average, and "
                         f"+-1 grey level of noise on the input changes the float32 dream by {control:.2f}")
    rows.append(f"\nFrames of the test clip (540x360, scaled up for 1920x1080) dreamed as video mode tops up a frame "
                f"with its defaults ({'on a canvas one ' + str(grid) + ' px stride larger, ' if FlowSettings().aligns else 'unaligned, '}"
                f"{VIDEO_ITERATIONS} iterations x 3 octaves at a share of a still's step, `video.top_up`), "
                f"median of {rounds * len(frames)} frames. Default: precision auto ({default[0]} here), XLA "
                f"{'on' if default[1] else 'off'}. Output change on the 0-255 scale; {'; '.join(notes)}.")
    print("\n".join(rows), flush=True)
    return rows, kept, seconds


# -- 4. end-to-end video --------------------------------------------------------------------------------
def bench_video(dreamer, args, clip: Path, work: Path) -> tuple[list[str], float]:
    from ddvideo.flow import FlowSettings, blend_init, motion
    from ddvideo.media import VideoWriter, write_image
    from ddvideo.metrics import strength
    from ddvideo.render import RunSettings
    from ddvideo.video import render_video

    count = 4 if args.quick else 24
    calls = []
    dream = dreamer.dream  # count the dream calls, with their options (the first frame is dreamed as a still)

    def counting(frame, **kwargs):
        calls.append((frame, kwargs))  # what the render dreamed (aligned frames on their grid canvases)
        return dream(frame, **kwargs)

    dreamer.dream = counting
    try:
        summary = render_video(str(clip), str(work / "out.mp4"), dreamer=dreamer, stop=count,
                               run=RunSettings(work_dir=str(work / "out.ddwork")))
    finally:
        del dreamer.dream
    frames = clip_frames(clip, count)
    # the render's own dream calls again, twice (their mean: one pass varies by several % on a shared host)
    passes = [sum(timed(dreamer.dream, frame, **kwargs)[0] for frame, kwargs in calls) for _ in range(2)]
    pure = sum(passes) / 2

    # the work around the dream, each part alone, per frame; saving and encoding on dreamed frames, whose
    # texture costs PNG and H.264 several times what the flat test pattern does
    flow = FlowSettings()
    decode = timed(clip_frames, clip, count)[0]
    dreamed = clip_frames(work / "out.mp4", count)
    flow_s = sum(timed(motion, a, b, settings=flow)[0] for a, b in zip(frames, frames[1:]))
    step = motion(frames[0], frames[1], settings=flow)
    hold = strength(dreamed[0], frames[0])  # the render's own carry: the residual, held
    blend_s = sum(timed(blend_init, f, dreamed[0], step, settings=flow, prev_source=frames[0], hold=hold)[0]
                  for f in frames[1:])
    png = sum(timed(write_image, str(work / f"{i:06d}.png"), f, fast=True)[0] for i, f in enumerate(dreamed))
    tick = time.perf_counter()
    with VideoWriter(work / "enc.mp4", fps=24, size=(frames[0].shape[1], frames[0].shape[0])) as writer:
        for frame in dreamed:
            writer.write(frame)
    encode = time.perf_counter() - tick
    overhead = summary.seconds / pure - 1
    rows = ["| frames | dream calls | wall s | dream s (in render) | pure dream s | overhead vs pure dream |"
            " overhead vs in-render dream |", "|---|---|---|---|---|---|---|",
            f"| {summary.frames} | {len(calls)} | {summary.seconds:.2f} | {summary.dream_seconds:.2f} | {pure:.2f} | "
            f"{overhead:+.1%} | {summary.seconds / summary.dream_seconds - 1:+.1%} |",
            "", "The work around the dream, each part timed alone (ms per frame): "
            f"decode {1000 * decode / count:.1f}, flow + occlusion {1000 * flow_s / (count - 1):.1f}, "
            f"blend {1000 * blend_s / (count - 1):.1f}, PNG to the work folder {1000 * png / count:.1f}, "
            f"H.264 encode (ffmpeg, start to finish) {1000 * encode / count:.1f}. Decode and flow run in a prefetch thread, "
            "PNG and encode in the writer thread, so they overlap the dream where there are cores to spare.",
            f"\nClip: ffmpeg testsrc2 540x360 24 fps; video defaults (flow dis + occlusion, "
            f"{dreamer.settings.iterations} iterations, 3 octaves, {dreamer.settings.precision}); the dreamer was traced beforehand. "
            "Pure dream: the render's own dream inputs dreamed again in a bare loop, "
            f"twice ({passes[0]:.2f} s and {passes[1]:.2f} s; their mean)."]
    print("\n".join(rows), flush=True)
    return rows, overhead


# -- report ------------------------------------------------------------------------------------------
def report(info: dict, args, parts: dict[str, list[str]], verdicts: list[str], seconds: float) -> str:
    device = ", ".join(info["gpus"]) if info["gpus"] else "none (CPU only)"
    lines = [f"# ddvideo speed on {machine_name(info)}", "",
             f"Generated by `benchmarks/bench.py{' --quick' if args.quick else ''}` in {seconds / 60:.1f} min on {info['date']}.",
             "", f"- CPU: {info['cpu']}, {info['cores']} cores ({', '.join(info['simd'])}), {info['memory_gb']} GB memory",
             f"- GPU: {device}",
             f"- TensorFlow {info['tensorflow']}, Keras {info['keras']}, Python {info['python']}; "
             f"TF_ENABLE_ONEDNN_OPTS={info['onednn']} (CPU kernels, for ddvideo and the Keras loop alike)",
             f"- Model: InceptionV3, weights {args.weights}, objective keras preset (mixed4..mixed7) unless said otherwise",
             f"- Load average (1, 5, 15 min) at start: {parts.pop('load_start')}; at end: {load()} "
             "(the machine may be shared: figures are medians of interleaved runs)", ""]
    titles = {"speed": "1. Dream iterations per second (1 octave, tiles of 512 px above that size)",
              "reference": "2. ddvideo against the Keras example's loop (same weights, settings, frames, run)",
              "frame": "5. Seconds per frame with the video defaults",
              "video": "3. End-to-end video render", "memory": "4. Peak memory",
              "startup": "6. Start-up: whole `ddvideo image` processes against the Keras example script",
              "batch": "7. Batch: 12 stills in 3 sizes, one batch against separate runs"}
    for key in SECTIONS:
        if key in parts:
            lines += [f"## {titles[key]}", "", *parts[key], ""]
    if verdicts:
        lines += ["## Targets", "", *[f"- {v}" for v in verdicts], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a few minutes)")
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="cpu hides the GPUs")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    parser.add_argument("--weights", default="none", help="InceptionV3 weights: none (random, default), imagenet, or a file")
    parser.add_argument("--machine", help="name in results-<machine>.md (default: from the GPU or the CPU cores)")
    parser.add_argument("--out", help="results file (default benchmarks/results-<machine>.md); - for none")
    parser.add_argument("--mem-cap", type=float, help="GB of RSS at which a memory run is stopped (default 80%% of free)")
    parser.add_argument("--mem-timeout", type=float, default=900, help="seconds before a memory run is stopped")
    args = parser.parse_args(argv)
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = "-1"  # before TensorFlow starts; children inherit it
    import ddvideo  # noqa: F401  its environment defaults apply before TensorFlow starts, as for a user

    began = time.perf_counter()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    parts: dict[str, list[str]] = {"load_start": load()}
    info = machine()
    gpu = bool(info["gpus"])
    if args.device == "gpu" and not gpu:
        parser.error("--device gpu, but TensorFlow sees no GPU")
    print(json.dumps(info), flush=True)

    from ddvideo.models import ModelSettings, load_model, resolve_precision
    from startup import bench_batch, bench_startup

    loaded = load_model(ModelSettings(weights=args.weights))
    verdicts = []
    path = None if args.out == "-" else (
        Path(args.out) if args.out else Path(__file__).resolve().parent / f"results-{args.machine or machine_name(info)}.md")

    def save() -> None:
        """Write what is measured so far (a run cut short by a time limit still leaves its finished sections)."""
        if path is not None:
            write_keeping_notes(path, report(info, args, dict(parts), verdicts, time.perf_counter() - began))

    with tempfile.TemporaryDirectory(prefix="ddbench-") as tmp:
        clip = make_clip(Path(tmp), seconds=1.0 if args.quick else 2.0)
        dreamer = None
        for key in sections:  # in the order asked: a run stopped by a time limit keeps the sections it finished
            if key == "speed":
                parts["speed"] = bench_speed(loaded, args, gpu)
            elif key == "reference":
                parts["reference"], ratios = bench_reference(loaded, args, clip)
                verdicts.append(f"ddvideo at least 1.3x the Keras example's loop in float32: "
                                f"{'met' if min(ratios) >= 1.3 else 'NOT met'} ({', '.join(f'{r:.2f}x' for r in ratios)})")
            elif key == "frame":
                parts["frame"], dreamer, seconds = bench_frame(loaded, args, clip, gpu)
                if gpu:
                    fps = {name: 1 / s for name, s in seconds.items()}
                    verdicts.append(f"video defaults on the GPU at least 15 frames/s at 540x360 and 3 at 1920x1080: "
                                    f"{'met' if fps.get('540x360', 0) >= 15 and fps.get('1920x1080', 0) >= 3 else 'NOT met'} "
                                    f"({', '.join(f'{n} {f:.1f}' for n, f in fps.items())})")
                else:
                    verdicts.append(f"video defaults at most 0.55 s per 540x360 frame on the CPU: "
                                    f"{'met' if seconds['540x360'] <= 0.55 else 'NOT met'} ({seconds['540x360']:.3f} s)")
            elif key == "video":
                if dreamer is None:
                    from ddvideo.dream import Dreamer, DreamSettings
                    from ddvideo.video import VIDEO_ITERATIONS

                    dreamer = Dreamer(loaded, DreamSettings(iterations=VIDEO_ITERATIONS))
                    # traced on what the render dreams (as bench_frame does), so its trace is not timed as dreaming
                    dreamer.dream(as_video_dreams(clip_frames(clip, 1)[0], dreamer.grid))
                work = Path(tmp) / "video"
                work.mkdir()
                parts["video"], overhead = bench_video(dreamer, args, clip, work)
                verdicts.append(f"end-to-end overhead over pure dream time at most 10%: "
                                f"{'met' if overhead <= 0.10 else 'NOT met'} ({overhead:+.1%})")
            elif key == "memory":
                from memory import bench_memory

                parts["memory"] = bench_memory(args, gpu)
            elif key == "startup":
                parts["startup"], ratio = bench_startup(args, Path(tmp), resolve_precision("auto"))
                verdicts.append(f"whole-process `ddvideo image` (defaults) at most 0.70x the Keras example script: "
                                f"{'met' if ratio <= 0.70 else 'NOT met'} ({ratio:.2f}x)")
            elif key == "batch":
                parts["batch"], ratio = bench_batch(args, Path(tmp))
                verdicts.append(f"a batch of stills in 3 sizes at most 0.33x the same stills in separate runs: "
                                f"{'met' if ratio <= 0.33 else 'NOT met'} ({ratio:.2f}x)")
            save()
    print("\n" + report(info, args, dict(parts), verdicts, time.perf_counter() - began))
    if path is not None:
        save()
        print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
