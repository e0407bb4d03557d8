"""Batch renders: a TOML manifest of video, zoom and image jobs, run unattended on every GPU or a Ray cluster."""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import json
import math
import multiprocessing
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter, deque
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from .errors import DDVideoError, OutputError, SettingsError
from .media import (FRAME_NAME, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, VideoWriter, atomic_path, check_writable,
                    ffmpeg_exe, probe_video, read_image)
from .render import default_work_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODES = ("video", "zoom", "image")  # the commands a job may run
BATCH_KEYS = ("mode", "name", "segments")  # job keys of the batch itself; every other key is an option of the command
SEGMENT_CONTAINERS = {".mp4": ".mkv", ".mov": ".mkv", ".mkv": ".mkv", ".webm": ".webm"}  # output -> segment file
MIN_SEGMENT_FRAMES = 250  # automatic splitting keeps segments this long, so warm-up stays a small overhead
SETTLED = 0.01  # a segment warms up until its cold start weighs less than this in the blend chain
BRIDGE_FRAMES = 8  # frames over which one segment's dream dissolves into the next one's at a seam
MAX_WARMUP = 100
MAX_RETRIES = 3  # a unit whose worker process dies is run again this many times (it resumes from its frames)
EVENT_EVERY_S = 0.5  # frame counts go from workers to the batch at most this often
JOIN_TIMEOUT_S = 600.0

# emit(message): how a worker reports to the batch: ("start", slot, key, where), ("frames", key, done, total)
Emit = Callable[[tuple], None]


class ManifestError(SettingsError):
    """A manifest that cannot run: every problem found, each with its file, line and job."""

    def __init__(self, message: str, problems: Sequence[str] = ()):
        super().__init__(message)
        self.problems = tuple(problems) or (message,)


# -- jobs ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Job:
    """One render of the manifest, as the command line of its subcommand (paths made absolute)."""

    index: int  # 1-based, in manifest order
    name: str
    mode: str  # "video", "zoom" or "image"
    argv: tuple[str, ...]  # e.g. ("video", "/abs/in.mp4", "/abs/out.mp4", "--octaves=1")
    input: str | None
    output: str
    work_dir: str  # where its finished frames (or segments) wait until the output is written
    line: int | None  # line of its [[job]] header
    frames: int | None = None  # video jobs: frames the clip yields; None when not known before rendering
    fps: float | None = None
    warmup: int = 0  # video jobs: frames a segment starts early so that its blend chain has settled
    segments: int | None = None  # segment count the manifest asks for; None = the batch chooses
    segmentable: bool = False  # a video job whose output container can be joined from segments by stream copy


@dataclass(frozen=True)
class Manifest:
    path: str  # absolute
    jobs: tuple[Job, ...]

    @property
    def summary_path(self) -> str:
        """Where the batch writes its results: JOBS.summary.json next to JOBS.toml."""
        return os.path.splitext(self.path)[0] + ".summary.json"


def load_manifest(path: str | os.PathLike) -> Manifest:
    """Read and check a whole manifest; raise ManifestError naming every problem (file:line, job) before any render.

    Each job's table (over [defaults]) becomes the argv of its subcommand and is parsed by the CLI's own parser,
    so unknown keys, types and choices fail as they would on the command line; inputs must exist, video inputs
    must be readable, outputs must be writable and distinct, and the objective's layers must be in the model.
    """
    shown = os.fspath(path)
    full = os.path.abspath(shown)
    try:
        with open(full, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {shown}; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read manifest {shown}: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{shown}: malformed TOML: {exc}; fix it and run again") from None
    return _Checker(full, shown, text).manifest(data)


def warmup_frames(blend: float) -> int:
    """Frames until a cold start weighs under SETTLED: each init keeps (1 - blend) of the previous dream."""
    carry = 1.0 - blend
    if carry <= 0:
        return 0
    if carry >= 1:
        return MAX_WARMUP
    return min(MAX_WARMUP, math.ceil(math.log(SETTLED) / math.log(carry)))


def split_frames(total: int, parts: int) -> list[tuple[int, int]]:
    """(first, stop) of `parts` nearly equal, non-empty ranges covering frames [0, total)."""
    parts = max(1, min(parts, total))
    edges = [round(i * total / parts) for i in range(parts + 1)]
    return list(zip(edges, edges[1:]))


def dissolve(ending: Sequence[np.ndarray], starting: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Cross-fade two renders of the same K frames: frame j weighs (j + 1) / (K + 1) of `starting`.

    Two dream chains never agree pixel for pixel (each reinforces its own pattern), so a seam between
    segments is bridged: no step between frames is more than 1 / (K + 1) of the difference of the chains.
    """
    k = len(ending)
    if len(starting) != k:
        raise ValueError(f"a bridge needs the same frames from both segments, got {k} and {len(starting)}")
    return [np.rint((1 - (j + 1) / (k + 1)) * a.astype(np.float32) + (j + 1) / (k + 1) * b.astype(np.float32)
                    ).astype(np.uint8) for j, (a, b) in enumerate(zip(ending, starting))]


def parse_gpus(text: str | None) -> list[str] | None:
    """--gpus: None = every visible GPU, "none" = one CPU worker, "0,2" = those devices."""
    if text is None:
        return None
    if text.strip().lower() in ("none", "cpu"):
        return []
    ids = [g.strip() for g in text.split(",")]
    if not all(ids):
        raise SettingsError(f"--gpus {text!r} has an empty entry: give ids as nvidia-smi numbers them (0,1) or none")
    return ids


def visible_gpus() -> list[str]:
    """GPU ids of this machine: CUDA_VISIBLE_DEVICES when set, else nvidia-smi's list; [] when neither has any."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = []
        for gpu in (g.strip() for g in env.split(",")):
            if not gpu or gpu.startswith("-"):  # CUDA stops at the first invalid id
                break
            ids.append(gpu)
        return ids
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        listing = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return re.findall(r"^GPU (\d+):", listing, re.M)


# -- checking a manifest ------------------------------------------------------------------------------
def _subcommands(parser) -> dict:
    """The subcommand parsers of the CLI, by name (argparse offers no public way to reach them)."""
    for action in parser._actions:
        if action.choices and isinstance(action.choices, dict):
            return dict(action.choices)
    return {}


def _dest(key: str) -> str:
    return key.replace("-", "_")


def _options(sub) -> dict:
    """dest-style name -> action, for every --long option of a subcommand."""
    names = {}
    for action in sub._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                names[_dest(opt[2:])] = action
    return names


def _positionals(sub) -> list:
    return [a for a in sub._actions if not a.option_strings]


def _path(base: str, value: str) -> str:
    """A path of the manifest, relative to its folder; a trailing slash (a folder of frames) is kept."""
    full = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    return full + os.sep if value.endswith(("/", os.sep)) else full


def _same_path(path: str) -> str:
    return os.path.normcase(os.path.abspath(path.rstrip("/\\")))


@functools.lru_cache(maxsize=4)
def _layer_model(model: str):
    """The backbone with random weights: enough to know its layer names, and no download."""
    from .models import ModelSettings, load_model

    _coordinator_off_gpus()
    return load_model(ModelSettings(model=model, weights="none", seed=0))


def _coordinator_off_gpus() -> None:
    """The batch's own process only checks the manifest: keep its TensorFlow off the GPUs the workers render on."""
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised (a notebook, a test session): leave it be
        tf.config.set_visible_devices([], "GPU")


def _parse(parser, argv: list[str]) -> dict[str, Any]:
    """Parse a job's argv with the CLI's parser; its error comes back as a SettingsError instead of an exit."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            return vars(parser.parse_args(argv))
    except SystemExit:
        lines = err.getvalue().strip().splitlines() or ["invalid options"]
        message = re.sub(r"^.*?: error: ", "", lines[-1]).removesuffix(" (see --help)")
        raise SettingsError(message) from None


class _Checker:
    """Turns the parsed TOML into jobs, collecting every problem with its line."""

    def __init__(self, path: str, shown: str, text: str):
        from .cli import build_parser

        self.path, self.shown = path, shown
        self.base = os.path.dirname(path)
        self.lines = text.splitlines()
        self.problems: list[tuple[int, str]] = []  # (line, message), reported in line order
        self.targets: list[tuple] = []  # (index, label, line, output, work folder or None) of every job
        self.parser = build_parser()
        self.commands = {name: sub for name, sub in _subcommands(self.parser).items() if name in MODES}

    # -- lines --------------------------------------------------------------------------------------
    def _headers(self, pattern: str) -> list[int]:
        return [i + 1 for i, line in enumerate(self.lines) if re.match(pattern, line)]

    def _key_line(self, table_line: int | None, key: str) -> int | None:
        """Line of `key = ...` in the table whose header is on `table_line` (None: the keys atop the file)."""
        pattern = re.compile(rf"""^\s*(["']?){re.escape(key)}\1\s*=""")
        for i in range(table_line or 0, len(self.lines)):  # the header is on index table_line - 1
            if self.lines[i].lstrip().startswith("["):
                break
            if pattern.match(self.lines[i]):
                return i + 1
        return table_line

    def problem(self, line: int | None, job: str | None, message: str) -> None:
        where = f"{self.shown}:{line}" if line else self.shown
        self.problems.append((line or 0, f"{where}: {job + ': ' if job else ''}{message}"))

    # -- the manifest -------------------------------------------------------------------------------
    def manifest(self, data: dict[str, Any]) -> Manifest:
        for key in sorted(set(data) - {"defaults", "job"}):
            line = next((i + 1 for i, l in enumerate(self.lines) if re.match(rf"\s*\[*\s*{re.escape(key)}\b", l)), None)
            self.problem(line, None, f"unknown table or key {key!r}: "
                                     "a manifest holds one [defaults] table and [[job]] entries")
        defaults_lines = self._headers(r"\s*\[\s*defaults\s*\]")
        self.defaults_line = defaults_lines[0] if defaults_lines else None
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            self.problem(None, None, "defaults must be a table: write [defaults] and the keys below it")
            defaults = {}
        self._check_defaults(defaults)
        tables = data.get("job", [])
        if not isinstance(tables, list):
            single = self._headers(r"\s*\[\s*job\s*\]")
            self.problem(single[0] if single else None, None, "write [[job]] (two brackets) before each job, not [job]")
            tables = []
        if not tables and not self.problems:
            self.problem(None, None, "no jobs: add a [[job]] table for each render")
        job_lines = self._headers(r"\s*\[\[\s*job\s*\]\]")
        if len(job_lines) != len(tables):
            job_lines = [None] * len(tables)
        jobs = [self._job(i + 1, table, defaults, job_lines[i]) for i, table in enumerate(tables)]
        self._check_distinct()
        if self.problems:
            problems = [text for _, text in sorted(self.problems, key=lambda p: p[0])]
            n = len(problems)
            head = f"{self.shown}: {n} problem{'s' if n > 1 else ''}, nothing was started"
            raise ManifestError(problems[0] if n == 1 else head + "\n  " + "\n  ".join(problems), problems)
        return Manifest(self.path, tuple(jobs))

    def _check_defaults(self, defaults: dict[str, Any]) -> None:
        known = set(BATCH_KEYS) - {"name"}
        for sub in self.commands.values():
            known |= set(_options(sub)) | {a.dest for a in _positionals(sub)}
        for key in defaults:
            if _dest(key) not in known:
                close = difflib.get_close_matches(_dest(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; see `ddvideo {'/'.join(self.commands)} --help`"
                self.problem(self._key_line(self.defaults_line, key), "[defaults]",
                             f"unknown key {key!r}: not an option of any command{hint}")

    # -- one job ------------------------------------------------------------------------------------
    def _job(self, index: int, table: dict[str, Any], defaults: dict[str, Any], line: int | None) -> Job | None:
        if not isinstance(table, dict):
            self.problem(line, f"job {index}", "each job must be a table: write [[job]] and its keys below it")
            return None
        label = f"job {index}" + (f" ({table['name']})" if isinstance(table.get("name"), str) else "")
        before = len(self.problems)

        def bad(key: str | None, origin: str, message: str) -> None:
            named = re.search(r"--([a-z][a-z0-9-]*)", message) if key is None else None
            if named and _dest(named[1]) in entries:  # "--octaves must be ...": point at the octaves line
                origin, key = entries[_dest(named[1])][:2]
            at = line if key is None else self._key_line(self.defaults_line if origin == "defaults" else line, key)
            self.problem(at, label, message)

        # dest-style key -> (where it was written, key as written, value); the job's own keys win
        entries = {_dest(k): ("defaults", k, v) for k, v in defaults.items()}
        entries.update({_dest(k): ("job", k, v) for k, v in table.items()})
        mode_entry = entries.get("mode")
        if mode_entry is None:
            bad(None, "job", 'no mode: add mode = "video" (or "image", "zoom") to the job or to [defaults]')
            return None
        mode = mode_entry[2]
        if mode not in self.commands:
            bad(mode_entry[1], mode_entry[0], f"unknown mode {mode!r}: use one of {', '.join(self.commands)}")
            return None
        sub = self.commands[mode]
        options, positionals = _options(sub), _positionals(sub)
        for group in sub._mutually_exclusive_groups:  # a job's --layers replaces a default --preset, and so on
            members = {a.dest for a in group._group_actions}
            if any(entries.get(m, ("",))[0] == "job" for m in members):
                for m in members:
                    if entries.get(m, ("job",))[0] == "defaults":
                        del entries[m]

        values: dict[str, str] = {}  # positionals and path options, resolved
        args: list[tuple[str, str, str]] = []  # (key, origin, --option=value)
        for dest, (origin, key, value) in entries.items():
            if dest in BATCH_KEYS:
                continue
            is_positional = dest in {a.dest for a in positionals}
            if not is_positional and dest not in options:
                if origin == "job":
                    valid = sorted(set(options) | {a.dest for a in positionals} | set(BATCH_KEYS))
                    close = difflib.get_close_matches(dest, valid, n=1)
                    hint = f"did you mean {close[0]!r}?" if close else f"see `ddvideo {mode} --help`"
                    bad(key, origin, f"unknown key {key!r} for {mode} jobs; {hint}")
                continue  # a default for another command
            if isinstance(value, (dict, list)):
                bad(key, origin, f"{key} must be one value, not a {'table' if isinstance(value, dict) else 'list'}")
                continue
            if is_positional:
                if not isinstance(value, str):
                    bad(key, origin, f"{key} must be a path in quotes, got {value!r}")
                    continue
                values[dest] = _path(self.base, value)
                continue
            action = options[dest]
            flag = max(action.option_strings, key=len)
            if action.nargs == 0:  # a switch
                if not isinstance(value, bool):
                    bad(key, origin, f"{key} is a switch: write {key} = true (or leave it out)")
                elif value:
                    args.append((key, origin, flag))
                continue
            if isinstance(value, bool):
                bad(key, origin, f"{key} takes a value (see `ddvideo {mode} --help`), not {str(value).lower()}")
                continue
            text = str(value)
            if dest == "work_dir" or (dest == "weights" and text not in ("imagenet", "none")) \
                    or (dest == "model" and text.endswith(".keras")):
                text = values[dest] = _path(self.base, text)
            args.append((key, origin, f"{flag}={text}"))
        missing = [a for a in positionals if a.dest not in values and a.nargs not in ("?", "*")]
        for action in missing:
            bad(None, "job", f"missing {action.dest}: add {action.dest} = \"...\" ({action.help})")
        if missing:
            return None
        if "output" in values:
            self.targets.append((index, label, line, values["output"], values.get("work_dir")))
        head = [mode, *(values[a.dest] for a in positionals if a.dest in values)]
        for key, origin, arg in args:  # one at a time, so that each bad value is reported on its own line
            try:
                _parse(self.parser, [*head, arg])
            except SettingsError as exc:
                bad(key, origin, str(exc))
        if len(self.problems) > before:
            return None

        argv = [*head, *(arg for _, _, arg in args)]
        try:
            opts = _parse(self.parser, argv)
        except SettingsError as exc:
            bad(None, "job", str(exc))
            return None
        return self._settings(index, table, entries, mode, argv, opts, label, line, bad)

    def _settings(self, index, table, entries, mode, argv, opts, label, line, bad) -> Job | None:
        """Build the settings the command would build, look at the input and output, and check the layers."""
        from .cli import dream_settings, model_settings, run_settings, video_settings, zoom_settings

        def key_of(dest: str) -> tuple[str | None, str]:
            entry = entries.get(dest)
            return (entry[1], entry[0]) if entry else (None, "job")

        frames = fps = clip = None
        warmup = 0
        failed: set = set()
        mode_settings = {"video": [video_settings], "zoom": [zoom_settings]}.get(mode, [])
        builds = [model_settings, dream_settings] + [run_settings] * ("crf" in opts) + mode_settings
        for build in builds:
            try:
                built = build(opts)
            except DDVideoError as exc:
                bad(None, "job", str(exc))
                failed.add(build)
                continue
            if build is video_settings:
                flow, clip = built
                warmup = warmup_frames(flow.blend)
        source, output = opts.get("input"), opts["output"]
        if source is not None:
            if not os.path.isfile(source):
                bad(*key_of("input"), f"input not found: {source}; check the path "
                                      "(relative paths start at the manifest's folder)")
            elif clip is not None:
                from .media import VideoReader

                try:
                    reader = VideoReader(source, start=clip.start, end=clip.end, fps=clip.fps, max_size=clip.max_size)
                    frames, fps = reader.n_frames, reader.fps
                except DDVideoError as exc:
                    bad(*key_of("input"), str(exc))
        ext = os.path.splitext(output.rstrip("/\\"))[1].lower()
        folder = output.endswith(("/", os.sep)) or not ext
        if mode == "image" and ext not in IMAGE_EXTENSIONS:
            bad(*key_of("output"), f"output {output} is no image: end it in one of {', '.join(IMAGE_EXTENSIONS)}")
        elif mode != "image" and not folder and ext not in VIDEO_EXTENSIONS:
            bad(*key_of("output"), f"output {output}: unknown extension {ext!r}; use one of "
                                   f"{', '.join(VIDEO_EXTENSIONS)}, or end it in / for a folder of frames")
        try:
            check_writable(output)
        except OutputError as exc:
            bad(*key_of("output"), str(exc))
        if not failed & {model_settings, dream_settings}:  # else the model or objective is reported already
            from .objective import build_extractor, parse_objective

            try:
                loaded = _layer_model(opts["model"])
                spec = opts.get("layers") or opts.get("preset") or loaded.default_layers
                build_extractor(loaded, parse_objective(spec))
            except DDVideoError as exc:
                bad(*key_of("layers" if opts.get("layers") else "preset"), str(exc))
        segmentable = mode == "video" and not folder and ext in SEGMENT_CONTAINERS
        segments = entries.get("segments", (None, None, None))[2]
        if segments is not None and (isinstance(segments, bool) or not isinstance(segments, int) or segments < 1):
            bad(*key_of("segments"), f"segments must be a whole number of 1 or more, got {segments!r}")
            segments = None
        elif segments is not None and segments > 1 and not segmentable:
            bad(*key_of("segments"), f"segments needs a video job writing {', '.join(SEGMENT_CONTAINERS)}; "
                                     "drop it or change the output")
        name = table.get("name")
        if name is not None and not isinstance(name, str):
            bad(*key_of("name"), f"name must be text in quotes, got {name!r}")
        name = name if isinstance(name, str) else os.path.basename(output.rstrip("/\\"))
        return Job(index=index, name=name, mode=mode, argv=tuple(argv), input=source, output=output,
                   work_dir=os.path.abspath(opts.get("work_dir") or default_work_dir(output)), line=line,
                   frames=frames, fps=fps, warmup=warmup, segments=segments, segmentable=segmentable)

    def _check_distinct(self) -> None:
        """Two jobs writing one output (or one work folder) would overwrite each other's frames."""
        seen: dict[tuple[str, str], tuple] = {}
        for target in self.targets:
            index, label, line, output, work_dir = target
            for what, path in (("output", output), ("work folder", work_dir or default_work_dir(output))):
                other = seen.setdefault((what, _same_path(path)), target)
                if other is not target:
                    where = f"job {other[0]}" + (f" (line {other[2]})" if other[2] else "")
                    self.problem(line, label, f"{what} {path} is also written by {where}: give each job its own {what}")
                    break  # the same output means the same work folder too: say it once


# -- running one unit (in a worker) --------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    """Frames [first, stop) of a video job, rendered in pieces inside `folder` (under the job's work folder).

    The pieces: `lead` frames before `first` from this segment's own chain (started cold `warmup` frames
    earlier), to dissolve with the previous segment's `tail`; the main part [first, stop - tail) continuing
    from the lead, encoded as the output will be; and the last `tail` frames, continuing from the main part.
    """

    index: int
    count: int
    first: int
    stop: int
    lead: int
    tail: int
    warmup: int
    folder: str
    ext: str  # container of the encoded pieces: joinable into the output by stream copy

    @property
    def main(self) -> str:
        return os.path.join(self.folder, "main" + self.ext)

    @property
    def lead_dir(self) -> str:
        return os.path.join(self.folder, "lead") + os.sep  # a folder of PNG frames: lossless for the dissolve

    @property
    def tail_dir(self) -> str:
        return os.path.join(self.folder, "tail") + os.sep

    @property
    def bridge(self) -> str:
        """The encoded dissolve from the previous segment's tail into this one's lead."""
        return os.path.join(self.folder, "bridge" + self.ext)

    def done(self) -> bool:
        pieces = [self.main] + ([self.lead_dir] if self.lead else []) + ([self.tail_dir] if self.tail else [])
        return all(_finished(p, default_work_dir(p)) for p in pieces)


def plan_segments(job: Job, parts: int) -> list[Segment]:
    """Split a video job into `parts` segments, with a bridge of up to BRIDGE_FRAMES at each seam."""
    ranges = split_frames(job.frames or 0, parts)
    bridge = min(BRIDGE_FRAMES, min(b - a for a, b in ranges) // 3)
    ext = SEGMENT_CONTAINERS[os.path.splitext(job.output)[1].lower()]
    n = len(ranges)
    segments = []
    for i, (first, stop) in enumerate(ranges):
        lead = bridge if i else 0
        folder = os.path.join(job.work_dir, "segments", f"{i:03d}-of-{n:03d}")
        segments.append(Segment(i, n, first, stop, lead, bridge if i < n - 1 else 0,
                                min(job.warmup, first - lead), folder, ext))
    return segments


@dataclass(frozen=True)
class Unit:
    """What one worker renders at a time: a whole job, or one segment of a video job."""

    job: Job
    segment: Segment | None = None

    @property
    def key(self) -> str:
        return str(self.job.index) if self.segment is None else f"{self.job.index}.{self.segment.index}"

    def done(self) -> bool:
        if self.segment is None:
            return _finished(self.job.output, self.job.work_dir)
        return self.segment.done()

    def frames(self) -> int:
        """Frames of the finished unit's output."""
        if self.segment is None:
            return _output_frames(self.job.output)
        return self.segment.stop - self.segment.first


@dataclass(frozen=True)
class UnitResult:
    key: str
    ok: bool
    frames: int = 0  # frames of the output, resumed ones included
    dreamed: int = 0  # frames dreamed by this run
    seconds: float = 0.0
    error: str | None = None
    detail: str | None = None  # the traceback of an unexpected exception
    where: str | None = None


def _finished(output: str, work_dir: str) -> bool:
    """A render is finished when its output exists and its work folder is gone (Render removes it on success)."""
    return os.path.exists(output) and not os.path.exists(work_dir)


def _output_frames(path: str) -> int:
    ext = os.path.splitext(path.rstrip("/\\"))[1].lower()
    if os.path.isdir(path):
        return len([n for n in os.listdir(path) if n.endswith(".png")])
    if ext in IMAGE_EXTENSIONS:
        return 1
    try:
        return probe_video(path).n_frames
    except DDVideoError:
        return 0


class _Counter:
    """The progress callback of a unit: counts frames, sends the count at most every EVENT_EVERY_S."""

    def __init__(self, key: str, emit: Emit | None, alive: Callable[[], bool] | None, *, total: int | None = None):
        self.key, self.emit, self.alive = key, emit, alive
        self.frames = self.dreamed = 0
        self.total, self.fixed = total, total is not None
        self.sent = 0.0

    def check(self, *_: Any) -> None:
        """Stop if the batch is gone; the finished frames stay for the rerun."""
        if self.alive is not None and not self.alive():
            raise KeyboardInterrupt

    def __call__(self, index: int, total: int | None, loss: float | None) -> None:
        self.check()
        self.frames += 1
        self.dreamed += loss is not None
        if not self.fixed:
            self.total = total
        if time.monotonic() - self.sent >= EVENT_EVERY_S:
            self.flush()

    def skip(self, frames: int) -> None:
        """Count frames finished by an earlier run."""
        self.frames += frames

    def flush(self) -> None:
        if self.emit is not None:
            self.emit(("frames", self.key, self.frames, self.total))
        self.sent = time.monotonic()


def run_unit(unit: Unit, *, emit: Emit | None = None, alive: Callable[[], bool] | None = None,
             where: str | None = None) -> UnitResult:
    """Render one unit in this process through its CLI command; a failure comes back in the result, never raised.

    A unit that is already finished (its result was lost with a worker) is not rendered again.
    """
    began = time.perf_counter()
    if unit.done():
        return UnitResult(unit.key, True, frames=unit.frames(), where=where)
    counter = _Counter(unit.key, emit, alive, total=unit.frames() if unit.segment else None)
    error = detail = None
    try:
        from .cli import build_parser

        opts = _parse(build_parser(), list(unit.job.argv))
        if unit.segment is None:
            opts["run"](opts, counter)
        else:
            _render_segment(opts, unit.segment, counter)
    except DDVideoError as exc:
        error = str(exc)
    except Exception as exc:  # a bug, not a user mistake: keep the traceback for the summary
        error, detail = f"unexpected {type(exc).__name__}: {exc}", traceback.format_exc()
    counter.flush()
    return UnitResult(unit.key, error is None, counter.frames, counter.dreamed, time.perf_counter() - began,
                      error, detail, where)


def _render_segment(opts: dict[str, Any], segment: Segment, counter: _Counter) -> None:
    """Render the pieces of one segment as `ddvideo video` renders a clip, silent: the audio is added at the join.

    Each piece is a resumable render of its own; a piece continues from the last frame of the one before it.
    """
    from .cli import make_dreamer, run_settings, video_settings
    from .video import render_video

    flow, clip = video_settings(opts)
    run, out = run_settings(opts)
    dreamer = make_dreamer(opts)
    os.makedirs(segment.folder, exist_ok=True)

    def piece(output: str, first: int, stop: int, *, progress, warmup: int = 0, previous=None, keep_work=False) -> None:
        render_video(opts["input"], output, dreamer=dreamer, flow=flow, clip=clip, out=replace(out, audio=False),
                     run=replace(run, work_dir=None, keep_work=keep_work), first=first, stop=stop, warmup=warmup,
                     previous=previous, progress=progress)

    previous = None
    if segment.lead:
        if not _finished(segment.lead_dir, default_work_dir(segment.lead_dir)):
            piece(segment.lead_dir, segment.first - segment.lead, segment.first, warmup=segment.warmup,
                  progress=counter.check)  # frames of the bridge, not of this segment's count
        previous = read_image(os.path.join(segment.lead_dir, FRAME_NAME.format(segment.lead - 1)))
    main_stop = segment.stop - segment.tail
    main_work = default_work_dir(segment.main)
    if os.path.exists(segment.main):  # finished; its work folder is kept only for the tail to continue from
        counter.skip(main_stop - segment.first)
    else:
        piece(segment.main, segment.first, main_stop, warmup=0 if previous is not None else segment.warmup,
              previous=previous, keep_work=bool(segment.tail), progress=counter)
    if segment.tail:
        if _finished(segment.tail_dir, default_work_dir(segment.tail_dir)):
            counter.skip(segment.tail)
        else:
            last = read_image(os.path.join(main_work, "frames", FRAME_NAME.format(main_stop - segment.first - 1)))
            piece(segment.tail_dir, main_stop, segment.stop, previous=last, progress=counter)
        shutil.rmtree(main_work, ignore_errors=True)


def _write_bridge(ending: str, starting: str, output: str, *, fps: float, crf: int) -> None:
    """Encode the dissolve of two folders of frames as a piece the segments' mains can be joined with."""
    def frames(folder: str) -> list[np.ndarray]:
        return [read_image(os.path.join(folder, name)) for name in sorted(os.listdir(folder)) if name.endswith(".png")]

    bridge = dissolve(frames(ending), frames(starting))
    with VideoWriter(output, fps=fps, size=(bridge[0].shape[1], bridge[0].shape[0]), crf=crf) as writer:
        for frame in bridge:
            writer.write(frame)


# -- joining segments ----------------------------------------------------------------------------------
def join_segments(segments: Sequence[str], output: str, *, audio_from: str | None = None,
                  audio_start: float = 0.0, duration: float | None = None) -> None:
    """Concatenate encoded segments into `output` without re-encoding (ffmpeg's concat demuxer), atomically.

    The segments must share codec settings and each start with a keyframe (separate encodes of one writer
    do). The audio of `audio_from` from `audio_start` for `duration` seconds is muxed in, copied when the
    container takes it, else re-encoded.
    """
    ext = os.path.splitext(output)[1].lower()
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        for path in segments:
            escaped = os.path.abspath(path).replace("'", "'\\''")
            listing.write(f"file '{escaped}'\n")
    try:
        inputs = ["-f", "concat", "-safe", "0", "-i", listing.name]
        maps = ["-map", "0:v:0"]
        if audio_from is not None:
            inputs += ["-ss", f"{audio_start:.6f}", *(["-t", f"{duration:.6f}"] if duration else []), "-i", audio_from]
            maps += ["-map", "1:a:0?"]  # `?`: a source without audio gives a file without audio
        encode = ["-c:a", "libopus", "-b:a", "128k"] if ext == ".webm" else ["-c:a", "aac", "-b:a", "192k"]
        faststart = ["-movflags", "+faststart"] if ext in (".mp4", ".mov") else []
        with atomic_path(output) as tmp:
            for audio in (["-c:a", "copy"], encode):
                cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error", "-y", *inputs, *maps,
                       "-c:v", "copy", *audio, *faststart, str(tmp)]
                try:
                    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                            errors="replace", timeout=JOIN_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    raise OutputError(f"ffmpeg did not join the segments of {output} within {JOIN_TIMEOUT_S:.0f} s") from None
                if result.returncode == 0:
                    break
            else:
                reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
                raise OutputError(f"cannot join the segments of {output} (ffmpeg: {reason})")
    finally:
        os.unlink(listing.name)


# -- results and events --------------------------------------------------------------------------------
@dataclass(frozen=True)
class JobResult:
    index: int
    name: str
    mode: str
    line: int | None
    status: str  # "done" (rendered now), "skipped" (finished by an earlier run) or "failed"
    frames: int
    dreamed: int  # frames dreamed by this run; the rest were resumed or already finished
    seconds: float  # wall time of this run
    output: str
    error: str | None = None
    detail: str | None = None
    where: str | None = None  # the worker(s): "GPU 1", "CPU", a Ray node


@dataclass(frozen=True)
class BatchSummary:
    manifest: str
    results: tuple[JobResult, ...]
    path: str  # the JSON copy of the results

    @property
    def failed(self) -> tuple[JobResult, ...]:
        return tuple(r for r in self.results if r.status == "failed")


@dataclass(frozen=True)
class BatchEvent:
    """What the batch reports while it runs: a job starts, frames finish, a job finishes."""

    kind: str  # "start", "frames" or "finish"
    job: Job
    where: str | None = None
    frames: int = 0  # "frames": frames finished since the last event, over all jobs
    total: int | None = None  # "frames": frames of the whole batch, as far as known
    result: JobResult | None = None  # "finish"


BatchProgress = Callable[[BatchEvent], None]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def format_event(event: BatchEvent, jobs: int) -> str | None:
    """One line for a job's start or finish; None for frame counts."""
    head = f"[{event.job.index}/{jobs}] {event.job.name}"
    if event.kind == "start":
        return f"{head}: started ({event.job.mode}{', ' + event.where if event.where else ''})"
    if event.kind == "finish" and event.result is not None:
        r = event.result
        if r.status == "failed":
            return f"{head}: FAILED after {_clock(r.seconds)}: {r.error}"
        if r.status == "skipped":
            return f"{head}: already finished, skipped ({r.output})"
        return f"{head}: done, {r.frames} frames in {_clock(r.seconds)} -> {r.output}"
    return None


def format_summary(summary: BatchSummary) -> str:
    """The results as a table: job, status, frames, time, output or error."""
    rows = [(f"{r.index} {r.name}", r.status, str(r.frames), _clock(r.seconds),
             r.error if r.status == "failed" else r.output) for r in summary.results]
    header = ("job", "status", "frames", "time", "output / error")
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(4)]
    lines = [f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c:>{widths[2]}}  {d:>{widths[3]}}  {e}"
             for a, b, c, d, e in [header, *rows]]
    counts = Counter(r.status for r in summary.results)
    tally = ", ".join(f"{counts[s]} {s}" for s in ("done", "skipped", "failed") if counts[s])
    return "\n".join(lines + [f"{len(summary.results)} jobs: {tally}; results in {summary.path}"])


# -- the batch (parent process) ------------------------------------------------------------------------
class _Batch:
    """The batch's bookkeeping in the parent: plan units, follow their reports, join segments, keep the summary."""

    def __init__(self, manifest: Manifest, progress: BatchProgress | None):
        self.manifest = manifest
        self.progress = progress or (lambda event: None)
        self.results: dict[int, JobResult] = {}
        self.segments: dict[int, list[Segment]] = {}
        self.unit_results: dict[str, UnitResult] = {}
        self.units: dict[str, Unit] = {}
        self.began: dict[int, float] = {}
        self.wheres: dict[int, list[str]] = {}
        self.seen: dict[str, int] = {}  # frames reported per unit
        self.totals: dict[str, int] = {}

    # -- planning -----------------------------------------------------------------------------------
    def plan(self, *, segments: int | None, slots: int) -> list[Unit]:
        """Skip finished jobs; split video jobs into segments where asked (or where workers would idle)."""
        pending = []
        for job in self.manifest.jobs:
            if _finished(job.output, job.work_dir):
                self._finish(job, "skipped", frames=_output_frames(job.output))
            else:
                pending.append(job)
        units = []
        for job in pending:
            parts = self._parts(job, segments, slots, len(pending))
            if parts <= 1:
                units.append(Unit(job))
                continue
            segs = self.segments[job.index] = plan_segments(job, parts)
            for seg in segs:
                unit = Unit(job, seg)
                if unit.done():
                    self.unit_results[unit.key] = UnitResult(unit.key, True, frames=unit.frames())
                else:
                    units.append(unit)
            if all(Unit(job, s).key in self.unit_results for s in segs):  # a crash came between segments and join
                self._join(job)
        self.units = {unit.key: unit for unit in units}
        self._save()
        return units

    def _parts(self, job: Job, segments: int | None, slots: int, pending: int) -> int:
        if not job.segmentable or not job.frames:
            return 1
        if job.segments is not None:
            parts = job.segments
        elif segments is not None:
            parts = segments
        else:
            parts = _layout(job)  # keep the split of an earlier, interrupted run: its frames are in it
            if parts is None:
                parts = min(math.ceil(slots / pending), job.frames // MIN_SEGMENT_FRAMES) if slots > pending else 1
        return max(1, min(parts, job.frames))

    # -- reports from workers -----------------------------------------------------------------------
    def on_message(self, message: tuple) -> None:
        kind = message[0]
        if kind == "start":
            _, _, key, where = message
            unit = self.units.get(key)
            if unit is None:
                return
            job = unit.job
            if where and where not in self.wheres.setdefault(job.index, []):
                self.wheres[job.index].append(where)
            if job.index not in self.began:
                self.began[job.index] = time.perf_counter()
                self.progress(BatchEvent("start", job, where=where))
        elif kind == "frames":
            _, key, done, total = message
            self._frames(key, done, total)
        elif kind == "result":
            self.on_result(message[2])

    def _frames(self, key: str, done: int, total: int | None) -> None:
        unit = self.units.get(key)
        if unit is None:
            return
        if total is not None:
            self.totals[key] = total
        new = done - self.seen.get(key, 0)
        if new > 0:
            self.seen[key] = done
            self.progress(BatchEvent("frames", unit.job, frames=new, total=self._total_frames()))

    def _total_frames(self) -> int:
        def expected(unit: Unit) -> int:
            if unit.key in self.totals:
                return self.totals[unit.key]
            if unit.segment is not None:
                return unit.segment.stop - unit.segment.first
            return unit.job.frames or (1 if unit.job.mode == "image" else 0)

        return sum(expected(unit) for unit in self.units.values())

    def on_result(self, result: UnitResult) -> None:
        unit = self.units[result.key]
        job = unit.job
        self._frames(result.key, result.frames, None if result.ok else result.frames)  # a failure shrinks the total
        if result.where and result.where not in self.wheres.setdefault(job.index, []):
            self.wheres[job.index].append(result.where)
        if job.index in self.results:  # a segment of a job that already failed
            return
        if unit.segment is None:
            self._finish(job, "done" if result.ok else "failed", frames=result.frames, dreamed=result.dreamed,
                         error=result.error, detail=result.detail, seconds=result.seconds)
            return
        self.unit_results[result.key] = result
        segs = self.segments[job.index]
        if not result.ok:
            error = f"segment {unit.segment.index + 1} of {len(segs)}: {result.error}"
            self._finish(job, "failed", frames=self._segment_sum(job, "frames"),
                         dreamed=self._segment_sum(job, "dreamed"), error=error, detail=result.detail)
        elif all(Unit(job, s).key in self.unit_results for s in segs):
            self._join(job)

    def _segment_sum(self, job: Job, field: str) -> int:
        return sum(getattr(self.unit_results[k], field) for k in (Unit(job, s).key for s in self.segments[job.index])
                   if k in self.unit_results)

    def _join(self, job: Job) -> None:
        from .cli import build_parser, run_settings, video_settings

        segs = self.segments[job.index]
        frames, dreamed = self._segment_sum(job, "frames"), self._segment_sum(job, "dreamed")
        try:
            opts = _parse(build_parser(), list(job.argv))
            _, clip = video_settings(opts)
            run, out = run_settings(opts)
            pieces = []
            for before, seg in zip([None, *segs], segs):
                if seg.lead:
                    if not os.path.exists(seg.bridge):
                        _write_bridge(before.tail_dir, seg.lead_dir, seg.bridge, fps=job.fps, crf=out.crf)
                    pieces.append(seg.bridge)
                pieces.append(seg.main)
            join_segments(pieces, job.output, audio_from=job.input if out.audio else None,
                          audio_start=clip.start, duration=frames / job.fps)
        except DDVideoError as exc:
            self._finish(job, "failed", frames=frames, dreamed=dreamed, error=str(exc))
            return
        if not run.keep_work:
            shutil.rmtree(job.work_dir, ignore_errors=True)
        self._finish(job, "done", frames=frames, dreamed=dreamed)

    def _finish(self, job: Job, status: str, *, frames: int = 0, dreamed: int = 0, error: str | None = None,
                detail: str | None = None, seconds: float | None = None) -> None:
        if job.index in self.began:
            seconds = time.perf_counter() - self.began[job.index]
        result = JobResult(job.index, job.name, job.mode, job.line, status, frames, dreamed, seconds or 0.0,
                           job.output, error, detail, ", ".join(self.wheres.get(job.index, [])) or None)
        self.results[job.index] = result
        self._save()
        self.progress(BatchEvent("finish", job, where=result.where, result=result))

    # -- the summary --------------------------------------------------------------------------------
    def _save(self, *, interrupted: bool = False) -> None:
        """Write the results so far next to the manifest (atomically): a killed batch leaves them too."""
        jobs = []
        for job in self.manifest.jobs:
            if job.index in self.results:
                jobs.append(asdict(self.results[job.index]))
            else:
                status = "interrupted" if interrupted and job.index in self.began else "pending"
                jobs.append({"index": job.index, "name": job.name, "mode": job.mode, "line": job.line,
                             "status": status, "output": job.output})
        record = {"manifest": self.manifest.path, "finished": len(self.results) == len(self.manifest.jobs),
                  "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "jobs": jobs}
        path = self.manifest.summary_path
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        os.replace(tmp, path)

    def summary(self) -> BatchSummary:
        return BatchSummary(self.manifest.path, tuple(self.results[i] for i in sorted(self.results)),
                            self.manifest.summary_path)


def _layout(job: Job) -> int | None:
    """The segment count an interrupted run of `job` used (1: it ran whole), or None if it left no frames."""
    frames = os.path.join(job.work_dir, "frames")
    if os.path.isdir(frames) and os.listdir(frames):
        return 1
    with contextlib.suppress(OSError):
        counts = [int(m[1]) for name in os.listdir(os.path.join(job.work_dir, "segments"))
                  if (m := re.fullmatch(r"\d{3}-of-(\d{3})", name))]
        if counts:
            return max(counts)
    return None


def run_batch(manifest: Manifest, *, gpus: Sequence[str] | None = None, ray: str | None = None,
              segments: int | None = None, progress: BatchProgress | None = None) -> BatchSummary:
    """Render every job of `manifest`: finished ones are skipped, interrupted ones resume, a failure stops no other.

    Locally, one worker process per GPU (`gpus`: ids as nvidia-smi numbers them; None = every visible GPU,
    [] = one CPU worker), each pinned with CUDA_VISIBLE_DEVICES and handed the next job as it frees up. With
    `ray` (an address or "auto") the jobs run as Ray tasks of one GPU each on that cluster instead. `segments`
    splits each video job into that many parts rendered in parallel and joined without re-encoding (default:
    only where workers would otherwise idle). The results are also written to `manifest.summary_path`.
    """
    if segments is not None and segments < 1:
        raise SettingsError(f"--segments must be 1 or more, got {segments}")
    batch = _Batch(manifest, progress)
    try:
        if ray is None:
            devices: list[str | None] = list(gpus) if gpus else ([""] if gpus is not None else visible_gpus() or [None])
            units = batch.plan(segments=segments, slots=len(devices))
            _run_local(units, devices, batch.on_message)
        else:
            if gpus is not None:
                raise SettingsError("--gpus chooses GPUs of this server; on a Ray cluster each task gets one GPU from Ray")
            ray_module, slots, use_gpus, owned = _connect_ray(ray)
            try:
                units = batch.plan(segments=segments, slots=slots)
                _run_ray(ray_module, units, use_gpus, batch.on_message)
            finally:
                if owned:
                    ray_module.shutdown()
    except BaseException:
        batch._save(interrupted=True)
        raise
    return batch.summary()


# -- local workers: one process per GPU ----------------------------------------------------------------
def _interrupt(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second signal must not cut the clean-up short
    raise KeyboardInterrupt  # the render unwinds as on Ctrl-C: finished frames kept, temporaries removed


def _worker_main(slot: int, device: str | None, inbox, outbox) -> None:
    """A worker process: pinned to `device` before TensorFlow loads, it renders the units it is handed."""
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device  # "" = no GPU
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the batch, which stops its workers with SIGTERM
    from .cli import _import_tensorflow_quietly

    _import_tensorflow_quietly()
    parent = os.getppid()

    def alive() -> bool:
        return os.getppid() == parent

    where = f"GPU {device}" if device else "CPU"
    with contextlib.suppress(KeyboardInterrupt):
        while alive():
            try:
                unit = inbox.get(timeout=1.0)
            except queue.Empty:
                continue
            if unit is None:
                return
            outbox.put(("start", slot, unit.key, where))
            outbox.put(("result", slot, run_unit(unit, emit=outbox.put, alive=alive, where=where)))


class _Worker:
    def __init__(self, ctx, slot: int, device: str | None, outbox):
        self.ctx, self.slot, self.device, self.outbox = ctx, slot, device, outbox
        self.unit: Unit | None = None
        self.process = None

    def give(self, unit: Unit) -> None:
        if self.process is None or not self.process.is_alive():
            self.inbox = self.ctx.Queue()
            self.process = self.ctx.Process(target=_worker_main, name=f"ddvideo-batch-{self.slot}", daemon=True,
                                            args=(self.slot, self.device, self.inbox, self.outbox))
            self.process.start()
        self.unit = unit
        self.inbox.put(unit)

    def stop(self, *, interrupt: bool) -> None:
        if self.process is None:
            return
        if interrupt:
            self.process.terminate()  # SIGTERM: the render unwinds and keeps its frames
        else:
            self.inbox.put(None)
        self.process.join(timeout=60)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _run_local(units: list[Unit], devices: list[str | None], on_message: Callable[[tuple], None]) -> None:
    """Hand units to one worker process per device as they free up; a unit whose worker dies runs again."""
    if not units:
        return
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: CUDA_VISIBLE_DEVICES is set before TF loads
    outbox = ctx.Queue()
    workers = [_Worker(ctx, slot, device, outbox) for slot, device in enumerate(devices[:len(units)])]
    ready = deque(units)
    deaths: Counter = Counter()
    interrupted = True
    try:
        while ready or any(w.unit for w in workers):
            for worker in workers:
                if worker.unit is None and ready:
                    worker.give(ready.popleft())
            try:
                message = outbox.get(timeout=0.5)
            except queue.Empty:
                for worker in workers:
                    if worker.unit is not None and not worker.process.is_alive():
                        unit, worker.unit = worker.unit, None
                        deaths[unit.key] += 1
                        if deaths[unit.key] <= MAX_RETRIES:
                            ready.appendleft(unit)  # it resumes from its work folder
                        else:
                            code = worker.process.exitcode
                            on_message(("result", worker.slot, UnitResult(
                                unit.key, False, error=f"the worker process died {deaths[unit.key]} times "
                                                       f"(last exit code {code}); out of memory?")))
                continue
            if message[0] == "result":
                workers[message[1]].unit = None
            on_message(message)
        interrupted = False
    finally:
        for worker in workers:
            worker.stop(interrupt=interrupted)


# -- Ray: tasks of one GPU each on a cluster ----------------------------------------------------------
def _connect_ray(address: str):
    """(ray, task slots, whether tasks take a GPU, whether we started the connection)."""
    try:
        import ray
    except ImportError:
        raise SettingsError("--ray needs Ray: pip install 'ddvideo[ray]'") from None
    owned = not ray.is_initialized()
    if owned:
        try:
            ray.init(address=address, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise DDVideoError(f"cannot connect to the Ray cluster at {address} ({exc}); "
                               "start it with `ray start --head`, or give its address") from None
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    return ray, gpus or max(1, int(resources.get("CPU", 1))), gpus > 0, owned


class _QueueEmit:
    """Worker reports through a Ray queue; a lost report never stops a render."""

    def __init__(self, events):
        self.events = events

    def __call__(self, message: tuple) -> None:
        with contextlib.suppress(Exception):
            self.events.put(message, block=False)


def _ray_unit(unit: Unit, events) -> UnitResult:
    import ray

    gpu_ids = ray.get_gpu_ids()
    where = ray.util.get_node_ip_address() + (f" GPU {','.join(map(str, gpu_ids))}" if gpu_ids else "")
    emit = _QueueEmit(events)
    emit(("start", None, unit.key, where))
    return run_unit(unit, emit=emit, where=where)


def _run_ray(ray, units: list[Unit], use_gpus: bool, on_message: Callable[[tuple], None]) -> None:
    """Submit every unit as a task; Ray runs them as GPUs free up and retries those whose worker dies."""
    if not units:
        return
    from ray.util.queue import Queue

    events = Queue()
    # max_calls=1: a fresh process per GPU task, so TensorFlow's memory goes back and the next task can pin anew
    options = {"num_gpus": 1, "max_calls": 1} if use_gpus else {"num_gpus": 0}
    task = ray.remote(max_retries=MAX_RETRIES, **options)(_ray_unit)
    pending = {task.remote(unit, events): unit for unit in units}

    def drain() -> None:
        with contextlib.suppress(Exception):
            for message in events.get_nowait_batch(events.qsize()):
                on_message(message)

    try:
        while pending:
            done, _ = ray.wait(list(pending), num_returns=len(pending), timeout=EVENT_EVERY_S)
            drain()
            for ref in done:
                unit = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                    result = UnitResult(unit.key, False, error=f"the Ray task failed ({first[:200]})")
                on_message(("result", None, result))
    finally:
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref)
        with contextlib.suppress(Exception):
            events.shutdown()
