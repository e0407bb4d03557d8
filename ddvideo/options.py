"""The commands' options, each declared once, and the settings built from them: the CLI and batch both use them."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
from typing import Any

from .errors import SettingsError

PROG = "ddvideo"
_VIDEO_OUTPUT = "output: .mp4, .mov, .mkv, .webm, .gif, or a folder/ of PNG frames"  # a video or zoom render


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump): the same shape as every other error of the tool."""

    optional_input = False  # a command whose input may be left out ([IN] OUT): its paths may sit among the options

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # a value starting with a minus, a digit, a point or a bracket is a value, not an option: a schedule such as
        # --rotate "-2*sin(t)" (argparse takes only plain negative numbers)
        self._negative_number_matcher = re.compile(r"^-[\d.(]")

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        opts, extras = super().parse_known_args(args, namespace)
        if self.optional_input:  # argparse fills [IN] OUT from the first paths only: take the rest from the extras
            paths = [p for p in (opts.input, opts.output) if p is not None]
            paths += [e for e in extras if not e.startswith("-")][: 2 - len(paths)]
            extras = [e for e in extras if e not in paths]
            if not paths:
                self.error("the following arguments are required: output")
            from .media import IMAGE_EXTENSIONS

            if len(paths) == 1 and os.path.splitext(paths[0])[1].lower() in IMAGE_EXTENSIONS:
                self.error(f"{paths[0]} is a picture, not an output: give the output after it, e.g. "
                           f"{self.prog} {paths[0]} out.mp4")
            opts.input, opts.output = ([None, *paths])[-2:]
        return opts, extras


# -- options shared by the commands ---------------------------------------------------------------
def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", default="inception_v3",
                   help="backbone: inception_v3 (default), vgg16, vgg19, resnet50, xception, mobilenet_v2, or a .keras file")
    g.add_argument("--weights", default="imagenet",
                   help="imagenet (Keras download, cached), none (seeded random), or a path to a weights file")


SCHEDULE_HELP = "; or a schedule, e.g. '0:(1.04), 2s:(1.01+0.04*beat)' (README: Motion and music)"


def _dream_options(p: argparse.ArgumentParser, *, iterations: int, schedules: bool = False) -> None:
    from .dream import RECIPE, RECIPES
    from .models import PRECISIONS
    from .objective import PRESETS

    g = p.add_argument_group("dream")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=sorted(PRESETS), help="named layer objective (default: keras for inception_v3)")
    which.add_argument("--layers", type=_layers,
                       help="layer objective, e.g. mixed4=1.0,mixed5=1.5 or mixed4:97 for one channel")
    g.add_argument("--recipe", choices=list(RECIPES), default=RECIPE,
                   help=f"the ascent: {RECIPE} (default) covers the picture with the dream and keeps its detail; keras is "
                        f"the Keras DeepDream example exactly, tutorial the TensorFlow tutorial's; the options below "
                        f"left unset take the recipe's values")
    g.add_argument("--octaves", type=int, default=3, help="number of scales (default 3)")
    g.add_argument("--octave-scale", type=float, help="size ratio between octaves (default: the recipe's)")
    g.add_argument("--iterations", type=int, default=iterations, help=f"gradient steps per octave (default {iterations})")
    g.add_argument("--strength", type=str if schedules else float, default=1.0,
                   help="how strong the dream is: multiplies the step; the same look at every size and in every mode "
                        "(default 1; 0.5 half as hard, 2 twice)" + (SCHEDULE_HELP if schedules else ""))
    if schedules:
        g.add_argument("--layer-weights", metavar="LAYER=SCHEDULE;...",
                       help="schedules for the weights of the objective's layers, separated by ';', e.g. "
                            "'mixed3=0:(1), 96:(0); mixed5=0:(0), 96:(1)' morphs from mixed3's look to mixed5's")
    g.add_argument("--step", type=float, help="step size of a still on the [-1, 1] scale after normalising the "
                                              "gradient (default: the recipe's; each video frame after the first "
                                              "takes a fifth of it, less above the base size)")
    g.add_argument("--base-size", type=int,
                   help=f"long side in pixels at which the look is set: larger frames add finer detail on top, so a "
                        f"preview and a full render dream alike (default: the recipe's, {RECIPES[RECIPE].base_size} "
                        f"for {RECIPE}; 0 = octaves from the frame's own size, as the Keras example)")

    g.add_argument("--max-loss", type=float,
                   help="stop an octave once the loss exceeds this (default: the recipe's; only keras has one, 15)")
    g.add_argument("--normalize", choices=("l2", "std"),
                   help="gradient normalisation: l2 over the picture, or std per pixel (default: the recipe's)")
    g.add_argument("--tile-size", type=int, default=512, help="dream larger frames in rolled tiles of this size; 0 = off")
    g.add_argument("--guide", metavar="IMAGE",
                   help="steer the dream toward the features of this picture (each layer's features matched to the guide's)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="network dtype (default auto: bfloat16 on GPUs of compute capability 8.0+ and CPUs with AMX or "
                        "AVX512-BF16, else float32); float32 is exactly the Keras example, float16 helps older GPUs")
    g.add_argument("--jit", action=argparse.BooleanOptionalAction, default=None,
                   help="compile the dream with XLA (default: on with a GPU, off on CPU where it is slower)")


def _output_options(p: argparse.ArgumentParser) -> None:
    from .preview import PREVIEW_SECONDS, PREVIEW_SIZE

    g = p.add_argument_group("output")
    g.add_argument("--plot", metavar="PNG",
                   help="draw every scheduled setting over time, with the music's loudness and beats under them, to "
                        "this PNG, and stop: the timing can be checked without rendering")
    g.add_argument("--preview", type=float, nargs="?", const=PREVIEW_SECONDS, metavar="SECONDS",
                   help=f"render only the first SECONDS (default {PREVIEW_SECONDS:g}) at a long side of at most "
                        f"{PREVIEW_SIZE} px to OUT.preview.EXT: the same dream as the full render, quickly; the "
                        f"output and its work folder are left alone")
    g.add_argument("--crf", type=int, default=18, help="H.264/VP9 quality, lower is better (default 18)")
    g.add_argument("--work-dir", help="where finished frames are kept for resuming (default OUT.ddwork)")
    g.add_argument("--keep-work", action="store_true", help="keep the work folder after a successful render")


def _layers(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("names no layer: give some, e.g. --layers mixed3,mixed5, or leave it out for "
                                         "the model's default")
    return text


def _clip_range(g) -> None:
    g.add_argument("--start", type=float, default=0.0, help="start at this many seconds")
    g.add_argument("--end", type=float, help="stop at this many seconds")
    g.add_argument("--fps", type=float, help="resample to this frame rate (default: the source's)")


def _max_size(p) -> None:
    p.add_argument("--max-size", type=int, help="downscale so the long side is at most this many pixels")


def _quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")


def build_parser() -> argparse.ArgumentParser:
    from .flow import CARRIES, CARRY_BLEND, FlowSettings
    from .objective import PRESETS
    from .video import VIDEO_ITERATIONS

    parser = _Parser(prog=PROG, description="DeepDream videos and infinite-zoom animations.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("image", help="dream a still image", description="Dream a still image.")
    p.add_argument("input", help="input image (png, jpg, webp, ...)")
    p.add_argument("output", help="output image; the format follows the extension")
    _max_size(p)
    _model_options(p), _dream_options(p, iterations=30), _quiet(p)

    p = commands.add_parser("video", help="dream a video clip, frame to frame coherent",
                            description="Dream a clip frame by frame; rerun the same command to resume.")
    p.add_argument("input", help="input video (any container ffmpeg reads)")
    p.add_argument("output", help=_VIDEO_OUTPUT)
    g = p.add_argument_group("clip")
    _clip_range(g)
    _max_size(g)
    g = p.add_argument_group("coherence")
    g.add_argument("--flow", choices=("dis", "farneback", "none"), default="dis",
                   help="optical flow that carries the previous dream (default dis; none = plain blend)")
    g.add_argument("--carry", choices=CARRIES, default=FlowSettings.carry,
                   help="what moves along the flow: the previous frame's dream on the fresh source frame (residual, "
                        "the default), or the whole previous output (frame: smears the picture)")
    g.add_argument("--blend",
                   help=f"how much of the carried dream fades each frame, 0..1 (default {CARRY_BLEND['residual']:g}: the "
                        f"hold keeps it at the first frame's strength); with --carry frame, the weight of the new "
                        f"source frame (default {CARRY_BLEND['frame']:g})" + SCHEDULE_HELP)
    g.add_argument("--no-hold", action="store_true",
                   help="let the carried dream settle wherever the motion takes it, rather than at the first frame's strength")
    g.add_argument("--no-occlusion", action="store_true", help="warp the previous dream even where the flow is unreliable")
    g.add_argument("--align", action="store_true",
                   help="shift frames to keep the camera's motion on the network's stride grid (crisper and a little "
                        "stronger, and more flicker)")
    g.add_argument("--no-audio", action="store_true", help="drop the source's audio")
    g.add_argument("--audio", metavar="FILE",
                   help="music (any file ffmpeg reads) that replaces the clip's sound; schedules follow it")
    _model_options(p), _dream_options(p, iterations=VIDEO_ITERATIONS, schedules=True), _output_options(p), _quiet(p)

    from .zoom import ZOOM, ZOOM_ITERATIONS, ZoomSettings

    p = commands.add_parser("zoom", help="dream an infinite zoom: dream, fly in, dream again; --loop for a seamless loop",
                            description="Dream a picture, zoom into it, dream again, frame after frame; "
                                        "rerun the same command to resume.")
    p.add_argument("input", nargs="?", help="start image (png, jpg, ...); leave out to start from noise of --size")
    p.add_argument("output", nargs="?", help=_VIDEO_OUTPUT)
    p.optional_input = True
    g = p.add_argument_group("camera, per frame")
    g.add_argument("--zoom", default=ZOOM, help=f"scale about the centre; >1 flies in, <1 pulls out (default {ZOOM})"
                                                + SCHEDULE_HELP)
    g.add_argument("--rotate", default=0.0, help="degrees, counter-clockwise (default 0)" + SCHEDULE_HELP)
    g.add_argument("--pan", default="0,0", metavar="DX,DY", help="DX,DY pixels the view moves right and down (default 0,0; write --pan=-2,1)")
    g.add_argument("--pan-x", metavar="SCHEDULE", help="pixels the view moves right, replacing DX of --pan" + SCHEDULE_HELP)
    g.add_argument("--pan-y", metavar="SCHEDULE", help="pixels the view moves down, replacing DY of --pan" + SCHEDULE_HELP)
    g = p.add_argument_group("animation")
    length = g.add_mutually_exclusive_group()
    length.add_argument("--frames", type=int, metavar="N", help=f"number of frames (default {ZoomSettings.frames})")
    length.add_argument("--seconds", type=float, metavar="S", help="length in seconds, at --fps (default: the --audio's length)")
    g.add_argument("--fps", type=float, default=ZoomSettings.fps, help=f"frame rate (default {ZoomSettings.fps:g})")
    g.add_argument("--dream-every", default=1, metavar="K",
                   help="dream every K-th frame, the camera move alone between (default 1)" + SCHEDULE_HELP)
    g.add_argument("--audio", metavar="FILE",
                   help="music (any file ffmpeg reads): the soundtrack, and rms, onset, beat, bass and treble for the "
                        "schedules; the animation lasts as long as it unless --frames or --seconds is given")
    g.add_argument("--loop", action="store_true", help="end by flying back into the first frame: the file repeats seamlessly")
    g.add_argument("--colour-coherence", "--color-coherence", dest="colour_coherence",
                   action=argparse.BooleanOptionalAction, default=ZoomSettings.colour_coherence,
                   help="hold every frame's palette (CIELAB mean and spread) to the first dreamed frame's, so a long "
                        "zoom keeps its colours (default on; --no-colour-coherence lets them drift)")
    g.add_argument("--size", metavar="WxH", help="WIDTHxHEIGHT: crop and scale the image to fill it, or the noise canvas (default 512x512)")
    _max_size(g)
    _model_options(p), _dream_options(p, iterations=ZOOM_ITERATIONS, schedules=True), _output_options(p), _quiet(p)

    from .sheet import DEFAULT_CHANNELS, SheetSettings

    p = commands.add_parser("sheet", help="compare layers, presets, strengths or channels: one dream per tile, in one image",
                            description="Dream one picture once per layer (or preset, strength, channel) and tile the "
                                        "results, labelled, into one image. Without --presets, --strengths or --channels, "
                                        "each term of --layers or --preset is one tile (default: every block layer).")
    p.add_argument("input", help="a still image, or a clip (its frame at --at)")
    p.add_argument("output", help="the sheet: .png (or .jpg, .webp, ...)")
    g = p.add_argument_group("sheet")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--presets", metavar="A,B,..", help=f"one tile per named objective, e.g. {','.join(sorted(PRESETS))}")
    which.add_argument("--strengths", metavar="S,S,..",
                       help="one tile per strength (replaces --strength), objective from --layers or --preset, e.g. 0.5,1,2")
    which.add_argument("--channels", metavar="LAYER[:N]",
                       help=f"one tile per channel: the first N (default {DEFAULT_CHANNELS}) channels of LAYER")
    g.add_argument("--at", type=float, metavar="SECONDS", help="with a clip: dream its frame at this time (default 0)")
    g.add_argument("--columns", type=int, default=SheetSettings.columns,
                   help=f"tiles per row (default {SheetSettings.columns})")
    g.add_argument("--max-size", type=int, default=SheetSettings.max_size,
                   help=f"scale the picture down so its long side is at most this: each tile's size (default {SheetSettings.max_size})")
    _model_options(p), _dream_options(p, iterations=30), _quiet(p)

    p = commands.add_parser("layers", help="list a model's layers and output shapes")
    _model_options(p)

    p = commands.add_parser("metrics", help="flicker, sharpness, strength, burn and coverage of a render against its source",
                            description="Measure a dreamed clip or still against its source: flicker (E_warp, clips "
                                        "only), sharpness, strength, burn, pixel coverage and structure; with --model, "
                                        "also the objective's gain and activation coverage in the network's own eyes.")
    p.add_argument("source", help="the source clip, or the source picture of a still")
    p.add_argument("output", help="the dreamed clip, or the dreamed still")
    p.add_argument("--flow", choices=("dis", "farneback"), default="dis", help="flow used on the source (default dis)")
    _clip_range(p.add_argument_group("the part of the source clip the render read, as given to the render"))
    g = p.add_argument_group("the network's view (optional)")
    g.add_argument("--model", help="measure objective gain and activation coverage with this backbone or .keras file, "
                                   "e.g. samples/inception_v3_mixed5.keras")
    g.add_argument("--weights", default="imagenet", help="imagenet, none (seeded random), or a weights file (default imagenet)")
    which = g.add_mutually_exclusive_group()
    which.add_argument("--preset", choices=sorted(PRESETS), help="the objective, as the render's (default: the model's)")
    which.add_argument("--layers", type=_layers, help="the objective as layers, e.g. mixed3=1.0,mixed5=1.0")

    p = commands.add_parser("batch", help="run the renders of a TOML manifest unattended, on every GPU or a Ray cluster",
                            description="Run every [[job]] of a TOML manifest (format: the README's Batch section); rerun it to resume. "
                                        "The results go to MANIFEST.summary.json.")
    p.add_argument("manifest", help="TOML file: a [defaults] table and one [[job]] table per render")
    p.add_argument("--gpus", metavar="IDS", help="GPUs to use, e.g. 0,1 (default: every visible GPU; none = one CPU worker)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the jobs as tasks on a Ray cluster: its address, or auto")
    p.add_argument("--segments", type=int, metavar="N",
                   help="split each video job into N segments rendered in parallel (default: only where GPUs would idle)")
    _quiet(p)
    return parser


# -- what a command takes -------------------------------------------------------------------------
def command_parsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser of each command of `parser`, by name (argparse offers no public way to reach them)."""
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            return dict(action.choices)
    return {}


def dest_name(key: str) -> str:
    """The options key of an option written as on the command line: octave-scale -> octave_scale."""
    return key.replace("-", "_")


def long_options(command: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Options key -> action, for every --long option of a command (--jit/--no-jit is the one key jit)."""
    return {action.dest: action for action in command._actions
            if any(opt.startswith("--") for opt in action.option_strings) and action.dest != "help"}


def switch_flag(action: argparse.Action, on: bool) -> str | None:
    """The flag that sets a switch on or off; None where leaving the switch out does (no_audio = false)."""
    if isinstance(action, argparse.BooleanOptionalAction):
        return action.option_strings[0 if on else 1]  # --jit, --no-jit
    return max(action.option_strings, key=len) if on else None


def positional_args(command: argparse.ArgumentParser) -> list[argparse.Action]:
    """The positional arguments of a command (input, output, ...), in order."""
    return [a for a in command._actions if not a.option_strings]


def option_keys(command: argparse.ArgumentParser) -> set[str]:
    """Every key a command's options carry: its --long options and its positionals, dest-style."""
    return set(long_options(command)) | {a.dest for a in positional_args(command)}


def exclusive_groups(command: argparse.ArgumentParser) -> list[set[str]]:
    """The keys of each group of options that exclude one another (e.g. preset and layers)."""
    return [{a.dest for a in group._group_actions} for group in command._mutually_exclusive_groups]


def parse_argv(parser: argparse.ArgumentParser, argv: list[str]) -> dict[str, Any]:
    """Parse a command line with `parser`; its error comes back as a SettingsError instead of an exit."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return vars(parser.parse_args(argv))
    except SystemExit:
        lines = err.getvalue().strip().splitlines() or ["invalid options"]
        message = re.sub(r"^.*?: error: ", "", lines[-1]).removesuffix(" (see --help)")
        raise SettingsError(message) from None


# -- settings from options ------------------------------------------------------------------------
def model_settings(opts: dict[str, Any]):
    from .models import ModelSettings

    return ModelSettings(model=opts["model"], weights=opts["weights"], seed=opts.get("seed", 0))


def dream_settings(opts: dict[str, Any]):
    """DreamSettings; a scheduled strength (video, zoom) leaves 1 here and goes to dream_schedule."""
    from .dream import DreamSettings
    from .schedule import scheduled

    strength = scheduled(opts["strength"], option="--strength")
    return DreamSettings(layers=opts.get("layers") or opts.get("preset"), recipe=opts["recipe"], octaves=opts["octaves"],
                         octave_scale=opts["octave_scale"], iterations=opts["iterations"], step=opts["step"],
                         strength=strength if isinstance(strength, float) else 1.0, base_size=opts["base_size"], max_loss=opts["max_loss"],
                         normalize=opts["normalize"], tile_size=opts["tile_size"],
                         precision=opts.get("precision", "auto"))


def dream_schedule(opts: dict[str, Any]):
    """The DreamSchedule of a video or zoom render: a strength that changes, and layer weight schedules."""
    from .schedule import DreamSchedule, scheduled

    strength = scheduled(opts["strength"], option="--strength")
    return DreamSchedule(strength=strength if isinstance(strength, str) else None,
                         layer_weights=opts.get("layer_weights"))


def music_option(opts: dict[str, Any], *, start: float = 0.0):
    """The --audio track decoded (ddvideo.audio.Music), or None."""
    from .audio import load_music

    return load_music(opts["audio"], start=start) if opts.get("audio") else None


def input_paths(opts: dict[str, Any]) -> list[str]:
    """Every file a command reads: its input, --audio, --guide, and a --model or --weights file. Nothing it writes may
    replace one of them (media.check_not_source)."""
    paths = [opts.get(key) for key in ("input", "audio", "guide")]
    paths += [opts.get(key) for key in ("model", "weights") if opts.get(key) and os.path.isfile(opts[key])]
    return [path for path in paths if path]


def guide_option(opts: dict[str, Any]):
    """The --guide picture, or None."""
    from .guide import read_guide

    return read_guide(opts["guide"]) if opts.get("guide") else None


def make_dreamer(opts: dict[str, Any]):
    """Settings and the guide are checked before the model is built, so a typo fails in a second, not after a
    download. The network and compiled dream are kept for the next render of this process (a batch worker's next
    job); a guided dream holds its guide's features, so it gets a dreamer of its own on the kept network."""
    from .dream import Dreamer
    from .reuse import shared_dreamer, shared_model

    dream, model, guide = dream_settings(opts), model_settings(opts), guide_option(opts)
    if guide is not None:
        return Dreamer(shared_model(model), dream, jit_compile=opts.get("jit"), guide=guide)
    return shared_dreamer(model, dream, jit_compile=opts.get("jit"))


def run_settings(opts: dict[str, Any]):
    from .render import OutputSettings, RunSettings

    return (RunSettings(seed=opts["seed"], work_dir=opts.get("work_dir"), keep_work=opts.get("keep_work", False)),
            OutputSettings(crf=opts["crf"], audio=not opts.get("no_audio", False)))


def video_settings(opts: dict[str, Any]):
    """(FlowSettings, ClipSettings) of a video render, from the `video` command's options."""
    from .flow import FlowSettings
    from .video import ClipSettings

    from .schedule import scheduled

    blend = None if opts["blend"] is None else scheduled(opts["blend"], option="--blend")
    flow = FlowSettings(method=opts["flow"], carry=opts["carry"], hold=not opts["no_hold"],
                        occlusion=not opts["no_occlusion"], align=opts["align"],
                        **({} if blend is None else {"blend": blend}))
    clip = ClipSettings(start=opts["start"], end=opts["end"], fps=opts["fps"], max_size=opts["max_size"])
    return flow, clip


def zoom_settings(opts: dict[str, Any], *, music=None):
    """ZoomSettings of a zoom render, from the `zoom` command's options; without --frames or --seconds, a zoom
    with `music` (music_option) lasts as long as it."""
    from .zoom import ZoomSettings, parse_pan, parse_size

    fps = opts["fps"]
    frames = opts["frames"] if opts["seconds"] is None else round(opts["seconds"] * fps)
    if frames is None and music is not None:
        frames = music.frames(fps)
    pan = parse_pan(opts["pan"])
    pan = (pan[0] if opts.get("pan_x") is None else opts["pan_x"], pan[1] if opts.get("pan_y") is None else opts["pan_y"])
    return ZoomSettings(zoom=opts["zoom"], rotate=opts["rotate"], pan=pan, fps=fps,
                        dream_every=opts["dream_every"], loop=opts["loop"], colour_coherence=opts["colour_coherence"],
                        max_size=opts["max_size"],
                        size=None if opts["size"] is None else parse_size(opts["size"]), iterations=opts["iterations"],
                        **({} if frames is None else {"frames": frames}))
