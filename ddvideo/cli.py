"""The `ddvideo` command line: parse options, build settings, call the library, turn errors into one line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Any, Callable, Sequence

from .errors import DDVideoError

PROG = "ddvideo"


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump): the same shape as every other error of the tool."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


# -- options shared by the commands ---------------------------------------------------------------
def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="inception_v3",
                   help="backbone: inception_v3 (default), vgg16, vgg19, resnet50, xception, mobilenet_v2, or a .keras file")
    g.add_argument("--weights", default="imagenet",
                   help="imagenet (Keras download, cached), none (seeded random), or a path to a weights file")


def _dream_options(p: argparse.ArgumentParser, *, iterations: int, step: float = 20.0) -> None:
    from .models import PRECISIONS
    from .objective import PRESETS

    g = p.add_argument_group("dream")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=sorted(PRESETS), help="named layer objective (default: keras for inception_v3)")
    which.add_argument("--layers", help="layer objective, e.g. mixed4=1.0,mixed5=1.5 or mixed4:97 for one channel")
    g.add_argument("--octaves", type=int, default=3, help="number of scales (default 3)")
    g.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default 1.4)")
    g.add_argument("--iterations", type=int, default=iterations, help=f"gradient steps per octave (default {iterations})")
    g.add_argument("--step", type=float, default=step, help=f"step size on the [-1, 1] scale (default {step:g})")
    g.add_argument("--max-loss", type=float, default=15.0, help="stop an octave once the loss exceeds this (default 15)")
    g.add_argument("--normalize", choices=("l2", "std"), default="l2", help="gradient normalisation (default l2)")
    g.add_argument("--tile-size", type=int, default=512, help="dream larger frames in rolled tiles of this size; 0 = off")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="network dtype (default auto: bfloat16 on GPUs of compute capability 8.0+ and CPUs with AMX or "
                        "AVX512-BF16, else float32); float32 is exactly the Keras example, float16 helps older GPUs")
    g.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the dream with XLA (default: on with a GPU, off on CPU where it is slower)")


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--crf", type=int, default=18, help="H.264/VP9 quality, lower is better (default 18)")
    g.add_argument("--work-dir", help="where finished frames are kept for resuming (default OUT.ddwork)")
    g.add_argument("--keep-work", action="store_true", help="keep the work folder after a successful render")


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    from .flow import FlowSettings
    from .video import VIDEO_ITERATIONS, VIDEO_STEP

    parser = _Parser(prog=PROG, description="DeepDream videos and infinite-zoom animations.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("image", help="dream a still image", description="Dream a still image.")
    p.add_argument("input", help="input image (png, jpg, webp, ...)")
    p.add_argument("output", help="output image; the format follows the extension")
    p.add_argument("--max-size", type=int, help="downscale so the long side is at most this many pixels")
    _model_options(p), _dream_options(p, iterations=30), _quiet(p)
    p.set_defaults(run=cmd_image)

    p = commands.add_parser("video", help="dream a video clip, frame to frame coherent",
                            description="Dream a clip frame by frame; rerun the same command to resume.")
    p.add_argument("input", help="input video (any container ffmpeg reads)")
    p.add_argument("output", help="output: .mp4, .mov, .mkv, .webm, .gif, or a folder/ of PNG frames")
    g = p.add_argument_group("clip")
    g.add_argument("--start", type=float, default=0.0, help="start at this many seconds")
    g.add_argument("--end", type=float, help="stop at this many seconds")
    g.add_argument("--fps", type=float, help="resample to this frame rate (default: the source's)")
    g.add_argument("--max-size", type=int, help="downscale so the long side is at most this many pixels")
    g = p.add_argument_group("coherence")
    g.add_argument("--flow", choices=("dis", "farneback", "none"), default="dis",
                   help="optical flow that carries the previous dream (default dis; none = plain blend)")
    g.add_argument("--blend", type=float, help=f"weight of the new source frame in each init, 0..1 (default {FlowSettings.blend:g})")
    g.add_argument("--no-occlusion", action="store_true", help="warp the previous dream even where the flow is unreliable")
    g.add_argument("--no-align", action="store_true",
                   help="do not shift frames to keep the camera's motion on the network's stride grid (a little faster, more flicker)")
    g.add_argument("--no-audio", action="store_true", help="drop the source's audio")
    _model_options(p), _dream_options(p, iterations=VIDEO_ITERATIONS, step=VIDEO_STEP), _output_options(p), _quiet(p)
    p.set_defaults(run=cmd_video)

    from .zoom import ZOOM, ZOOM_ITERATIONS, ZoomSettings

    p = commands.add_parser("zoom", help="dream an infinite zoom: dream, fly in, dream again; --loop for a seamless loop",
                            description="Dream a picture, zoom into it, dream again, frame after frame; "
                                        "rerun the same command to resume.")
    p.add_argument("input", nargs="?", help="start image (png, jpg, ...); leave out to start from noise of --size")
    p.add_argument("output", help="output: .mp4, .mov, .mkv, .webm, .gif, or a folder/ of PNG frames")
    g = p.add_argument_group("camera, per frame")
    g.add_argument("--zoom", type=float, default=ZOOM, help=f"scale about the centre; >1 flies in, <1 pulls out (default {ZOOM})")
    g.add_argument("--rotate", type=float, default=0.0, help="degrees, counter-clockwise (default 0)")
    g.add_argument("--pan", default="0,0", metavar="DX,DY", help="DX,DY pixels the view moves right and down (default 0,0; write --pan=-2,1)")
    g = p.add_argument_group("animation")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, metavar="N", help=f"number of frames (default {ZoomSettings.frames})")
    length.add_argument("--seconds", type=float, metavar="S", help="length in seconds, at --fps")
    g.add_argument("--fps", type=float, default=ZoomSettings.fps, help=f"frame rate (default {ZoomSettings.fps:g})")
    g.add_argument("--dream-every", type=int, default=1, metavar="K", help="dream every K-th frame, the camera move alone between (default 1)")
    g.add_argument("--loop", action="store_true", help="end by flying back into the first frame: the file repeats seamlessly")
    g.add_argument("--size", metavar="WxH", help="WIDTHxHEIGHT: crop and scale the image to fill it, or the noise canvas (default 512x512)")
    g.add_argument("--max-size", type=int, help="downscale so the long side is at most this many pixels")
    _model_options(p), _dream_options(p, iterations=ZOOM_ITERATIONS), _output_options(p), _quiet(p)
    p.set_defaults(run=cmd_zoom)

    p = commands.add_parser("layers", help="list a model's layers and output shapes")
    _model_options(p)
    p.set_defaults(run=cmd_layers)

    p = commands.add_parser("metrics", help="temporal stability (warping error) of a render against its source")
    p.add_argument("source", help="the source clip")
    p.add_argument("output", help="the dreamed clip")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="flow used on the source (default dis)")
    p.set_defaults(run=cmd_metrics)

    p = commands.add_parser("batch", help="run the renders of a TOML manifest unattended, on every GPU or a Ray cluster",
                            description="Run every [[job]] of a TOML manifest (format: the README's Batch section); rerun it to resume. "
                                        "The results go to MANIFEST.summary.json.")
    p.add_argument("manifest", help="TOML file: a [defaults] table and one [[job]] table per render")
    p.add_argument("--gpus", metavar="IDS", help="GPUs to use, e.g. 0,1 (default: every visible GPU; none = one CPU worker)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the jobs as tasks on a Ray cluster: its address, or auto")
    p.add_argument("--segments", type=int, metavar="N",
                   help="split each video job into N segments rendered in parallel (default: only where GPUs would idle)")
    _quiet(p)
    p.set_defaults(run=cmd_batch)
    return parser


# -- settings from options ------------------------------------------------------------------------
def model_settings(opts: dict[str, Any]):
    from .models import ModelSettings

    return ModelSettings(model=opts["model"], weights=opts["weights"], seed=opts.get("seed", 0))


def dream_settings(opts: dict[str, Any]):
    from .dream import DreamSettings

    return DreamSettings(layers=opts.get("layers") or opts.get("preset"), octaves=opts["octaves"],
                         octave_scale=opts["octave_scale"], iterations=opts["iterations"], step=opts["step"],
                         max_loss=opts["max_loss"], normalize=opts["normalize"], tile_size=opts["tile_size"],
                         precision=opts.get("precision", "auto"))


def make_dreamer(opts: dict[str, Any]):
    """Settings are checked before the model is built, so a typo fails in a second, not after a download. The
    network and compiled dream are kept for the next render of this process (a batch worker's next job)."""
    from .reuse import shared_dreamer

    dream, model = dream_settings(opts), model_settings(opts)
    return shared_dreamer(model, dream, jit_compile=opts.get("jit"))


def run_settings(opts: dict[str, Any]):
    from .render import OutputSettings, RunSettings

    return (RunSettings(seed=opts["seed"], work_dir=opts.get("work_dir"), keep_work=opts.get("keep_work", False)),
            OutputSettings(crf=opts["crf"], audio=not opts.get("no_audio", False)))


# -- commands -------------------------------------------------------------------------------------
def cmd_image(opts: dict[str, Any], progress) -> None:
    from .media import check_writable, read_image, write_image
    from .transforms import resize_to_fit

    check_writable(opts["output"])
    # the picture first: a bad input fails before the model loads
    frame = resize_to_fit(read_image(opts["input"]), max_size=opts["max_size"])
    result = make_dreamer(opts).dream(frame, seed=opts["seed"])
    write_image(opts["output"], result.frame)
    progress(0, 1, result.loss)


def video_settings(opts: dict[str, Any]):
    """(FlowSettings, ClipSettings) of a video render, from the `video` command's options."""
    from .flow import FlowSettings
    from .video import ClipSettings

    flow = FlowSettings(method=opts["flow"], occlusion=not opts["no_occlusion"], align=not opts["no_align"],
                        **({} if opts["blend"] is None else {"blend": opts["blend"]}))
    clip = ClipSettings(start=opts["start"], end=opts["end"], fps=opts["fps"], max_size=opts["max_size"])
    return flow, clip


def zoom_settings(opts: dict[str, Any]):
    """ZoomSettings of a zoom render, from the `zoom` command's options."""
    from .zoom import ZoomSettings, parse_pan, parse_size

    fps = opts["fps"]
    frames = opts["frames"] if opts["seconds"] is None else round(opts["seconds"] * fps)
    return ZoomSettings(zoom=opts["zoom"], rotate=opts["rotate"], pan=parse_pan(opts["pan"]), fps=fps,
                        dream_every=opts["dream_every"], loop=opts["loop"], max_size=opts["max_size"],
                        size=None if opts["size"] is None else parse_size(opts["size"]), iterations=opts["iterations"],
                        **({} if frames is None else {"frames": frames}))


def cmd_video(opts: dict[str, Any], progress) -> None:
    from .media import probe_video
    from .video import render_video

    flow, clip = video_settings(opts)
    run, out = run_settings(opts)
    probe_video(opts["input"])  # a missing or unreadable clip fails before the model loads
    summary = render_video(opts["input"], opts["output"], dreamer=make_dreamer(opts), flow=flow, clip=clip,
                           out=out, run=run, progress=progress)
    for warning in summary.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def cmd_zoom(opts: dict[str, Any], progress) -> None:
    from .zoom import render_zoom, start_frame

    zoom = zoom_settings(opts)
    run, out = run_settings(opts)
    start_frame(opts["input"], zoom, seed=run.seed)  # a missing input or impossible move fails before the model loads
    render_zoom(opts["input"], opts["output"], dreamer=make_dreamer(opts), zoom=zoom, out=out, run=run,
                progress=progress)


def cmd_layers(opts: dict[str, Any], progress) -> None:
    from .models import load_model

    loaded = load_model(model_settings(opts))
    blocks = set(loaded.block_layers())
    for name in loaded.dreamable_layers():
        shape = tuple(loaded.model.get_layer(name).output.shape[1:])
        print(f"{name:32s} {str(shape):22s}{'  *' if name in blocks else ''}")


def cmd_metrics(opts: dict[str, Any], progress) -> None:
    from .media import VideoReader
    from .metrics import warping_error

    with VideoReader(opts["source"]) as source, VideoReader(opts["output"]) as output:
        value = warping_error(iter(source), iter(output), method=opts["flow"])
    print(f"E_warp {value:.6f}")


def cmd_batch(opts: dict[str, Any], progress) -> None:
    from tqdm import tqdm

    from .batch import format_event, format_summary, load_manifest, parse_gpus, run_batch

    manifest = load_manifest(opts["manifest"])

    def report(event) -> None:
        if event.kind == "frames":
            for _ in range(event.frames):
                progress(0, event.total, None)
        elif not opts["quiet"] and (line := format_event(event, len(manifest.jobs))):
            tqdm.write(line, file=sys.stderr)

    summary = run_batch(manifest, gpus=parse_gpus(opts["gpus"]), ray=opts["ray"], segments=opts["segments"],
                        progress=report)
    tqdm.write(format_summary(summary), file=sys.stdout)
    if summary.failed:
        raise DDVideoError(f"{len(summary.failed)} of {len(summary.results)} jobs failed; "
                           f"the table above and {summary.path} say why")


# -- entry point ----------------------------------------------------------------------------------
def _progress(opts: dict[str, Any]) -> tuple[Callable, Callable[[], None]]:
    """A tqdm bar of frames with the current loss, on stderr; a no-op when quiet."""
    if opts.get("quiet") or opts["command"] in ("layers", "metrics"):
        return (lambda index, total, loss: None), (lambda: None)
    from tqdm import tqdm

    bars: list = []  # made at the first frame, so an early error prints no empty bar

    def update(index: int, total: int | None, loss: float | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True,
                             desc=_precision_label(opts)))
        bar = bars[0]
        if total is not None and bar.total != total:
            bar.total = total
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    return update, lambda: bars and bars[0].close()


def _precision_label(opts: dict[str, Any]) -> str | None:
    """The network's dtype for the progress line, e.g. "bfloat16 (auto)"; None for commands without a dream."""
    if "precision" not in opts:
        return None
    from .models import resolve_precision

    chosen = resolve_precision(opts["precision"])
    return f"{chosen} (auto)" if opts["precision"] == "auto" else chosen


def _import_tensorflow_quietly() -> None:
    """TensorFlow's native start-up lines (CUDA probing, oneDNN) ignore its log-level variables: hide them."""
    if os.environ.get("DDVIDEO_DEBUG") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        for gpu in tf.config.list_physical_devices("GPU"):  # the CUDA probe prints here
            tf.config.experimental.set_memory_growth(gpu, True)  # share the card; take what the frames need
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _terminate(signum, frame) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary outputs are removed, finished frames kept


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (0 ok, 1 user error, 2 malformed options, 130 interrupted)."""
    _import_tensorflow_quietly()
    try:
        opts = vars(build_parser().parse_args(argv))
    except SystemExit as exit_:  # --help, or a malformed option (already reported on one line)
        return int(exit_.code or 0)
    if threading_main():
        signal.signal(signal.SIGTERM, _terminate)
    progress, close = _progress(opts)
    try:
        opts["run"](opts, progress)
    except DDVideoError as exc:
        close()
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        close()
        print(f"{PROG}: interrupted; finished frames are kept: run the same command again to continue", file=sys.stderr)
        return 130
    close()
    return 0


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    sys.exit(main())
