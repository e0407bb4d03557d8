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


def _dream_options(p: argparse.ArgumentParser, *, iterations: int) -> None:
    from .objective import PRESETS

    g = p.add_argument_group("dream")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=sorted(PRESETS), help="named layer objective (default: keras for inception_v3)")
    which.add_argument("--layers", help="layer objective, e.g. mixed4=1.0,mixed5=1.5 or mixed4:97 for one channel")
    g.add_argument("--octaves", type=int, default=3, help="number of scales (default 3)")
    g.add_argument("--octave-scale", type=float, default=1.4, help="size ratio between octaves (default 1.4)")
    g.add_argument("--iterations", type=int, default=iterations, help=f"gradient steps per octave (default {iterations})")
    g.add_argument("--step", type=float, default=20.0, help="step size on the [-1, 1] scale (default 20)")
    g.add_argument("--max-loss", type=float, default=15.0, help="stop an octave once the loss exceeds this (default 15)")
    g.add_argument("--normalize", choices=("l2", "std"), default="l2", help="gradient normalisation (default l2)")
    g.add_argument("--tile-size", type=int, default=512, help="dream larger frames in rolled tiles of this size; 0 = off")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    g.add_argument("--crf", type=int, default=18, help="H.264/VP9 quality, lower is better (default 18)")
    g.add_argument("--work-dir", help="where finished frames are kept for resuming (default OUT.ddwork)")
    g.add_argument("--keep-work", action="store_true", help="keep the work folder after a successful render")


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    from .video import VIDEO_ITERATIONS

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
    g.add_argument("--blend", type=float, help="weight of the new source frame in each init, 0..1 (default 0.5)")
    g.add_argument("--no-occlusion", action="store_true", help="warp the previous dream even where the flow is unreliable")
    g.add_argument("--no-audio", action="store_true", help="drop the source's audio")
    _model_options(p), _dream_options(p, iterations=VIDEO_ITERATIONS), _output_options(p), _quiet(p)
    p.set_defaults(run=cmd_video)

    p = commands.add_parser("layers", help="list a model's layers and output shapes")
    _model_options(p)
    p.set_defaults(run=cmd_layers)

    p = commands.add_parser("metrics", help="temporal stability (warping error) of a render against its source")
    p.add_argument("source", help="the source clip")
    p.add_argument("output", help="the dreamed clip")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="flow used on the source (default dis)")
    p.set_defaults(run=cmd_metrics)
    return parser


# -- settings from options ------------------------------------------------------------------------
def model_settings(opts: dict[str, Any]):
    from .models import ModelSettings

    return ModelSettings(model=opts["model"], weights=opts["weights"], seed=opts.get("seed", 0))


def dream_settings(opts: dict[str, Any]):
    from .dream import DreamSettings

    return DreamSettings(layers=opts.get("layers") or opts.get("preset"), octaves=opts["octaves"],
                         octave_scale=opts["octave_scale"], iterations=opts["iterations"], step=opts["step"],
                         max_loss=opts["max_loss"], normalize=opts["normalize"], tile_size=opts["tile_size"])


def make_dreamer(opts: dict[str, Any]):
    """Settings are checked before the model is built, so a typo fails in a second, not after a download."""
    from .dream import Dreamer
    from .models import load_model

    dream, model = dream_settings(opts), model_settings(opts)
    return Dreamer(load_model(model), dream)


def run_settings(opts: dict[str, Any]):
    from .render import OutputSettings, RunSettings

    return (RunSettings(seed=opts["seed"], work_dir=opts.get("work_dir"), keep_work=opts.get("keep_work", False)),
            OutputSettings(crf=opts["crf"], audio=not opts.get("no_audio", False)))


# -- commands -------------------------------------------------------------------------------------
def cmd_image(opts: dict[str, Any], progress) -> None:
    from .media import check_writable, read_image, write_image
    from .transforms import resize_to_fit

    check_writable(opts["output"])
    dreamer = make_dreamer(opts)
    frame = resize_to_fit(read_image(opts["input"]), max_size=opts["max_size"])
    result = dreamer.dream(frame, seed=opts["seed"])
    write_image(opts["output"], result.frame)
    progress(0, 1, result.loss)


def cmd_video(opts: dict[str, Any], progress) -> None:
    from .flow import FlowSettings
    from .video import ClipSettings, render_video

    flow = FlowSettings(method=opts["flow"], occlusion=not opts["no_occlusion"],
                        **({} if opts["blend"] is None else {"blend": opts["blend"]}))
    clip = ClipSettings(start=opts["start"], end=opts["end"], fps=opts["fps"], max_size=opts["max_size"])
    run, out = run_settings(opts)
    summary = render_video(opts["input"], opts["output"], dreamer=make_dreamer(opts), flow=flow, clip=clip,
                           out=out, run=run, progress=progress)
    for warning in summary.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


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


# -- entry point ----------------------------------------------------------------------------------
def _progress(opts: dict[str, Any]) -> tuple[Callable, Callable[[], None]]:
    """A tqdm bar of frames with the current loss, on stderr; a no-op when quiet."""
    if opts.get("quiet") or opts["command"] in ("layers", "metrics"):
        return (lambda index, total, loss: None), (lambda: None)
    from tqdm import tqdm

    bars: list = []  # made at the first frame, so an early error prints no empty bar

    def update(index: int, total: int | None, loss: float | None) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="frame", file=sys.stderr, dynamic_ncols=True))
        bar = bars[0]
        if total is not None and bar.total != total:
            bar.total = total
        if loss is not None:
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    return update, lambda: bars and bars[0].close()


def _import_tensorflow_quietly() -> None:
    """TensorFlow's native start-up lines (CUDA probing, oneDNN) ignore its log-level variables: hide them."""
    if os.environ.get("DDVIDEO_DEBUG") or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # the CUDA probe prints here
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
