"""Loading a batch manifest: TOML jobs turned into checked command lines, every problem named with its line."""

from __future__ import annotations

import argparse
import contextlib
import difflib
import functools
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Sequence

from ..errors import DDVideoError, OutputError, SettingsError
from ..media import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, check_not_source, check_writable
from ..options import (build_parser, command_parsers, dest_name, exclusive_groups, long_options, option_keys, parse_argv,
                       positional_args, switch_flag)
from ..render import check_paths, default_work_dir
from .segments import SEGMENT_CONTAINERS, warmup_frames

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

MODES = ("video", "zoom", "image")  # the commands a job may run
BATCH_KEYS = ("mode", "name", "segments")  # job keys of the batch itself; every other key is an option of the command


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
    origin: float = 0.0  # video jobs: seconds into the input file of the clip's first frame, where its audio starts
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
    must be readable, outputs must be writable and distinct, the objective's layers must be in the model, and a
    guide must be a readable picture large enough for those layers.
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


def job_keys(mode: str, *, parser: argparse.ArgumentParser | None = None) -> set[str]:
    """The keys a job of `mode` may hold: the batch's own and its command's options, dest-style (octave_scale)."""
    return option_keys(command_parsers(parser or build_parser())[mode]) | set(BATCH_KEYS)


# -- checking a manifest ------------------------------------------------------------------------------
def _path(base: str, value: str) -> str:
    """A path of the manifest, relative to its folder; a trailing slash (a folder of frames) is kept."""
    full = os.path.normpath(os.path.join(base, os.path.expanduser(value)))
    return full + os.sep if value.endswith(("/", os.sep)) else full


def _same_path(path: str) -> str:
    return os.path.normcase(os.path.abspath(path.rstrip("/\\")))


@functools.lru_cache(maxsize=4)
def _layer_model(model: str):
    """The backbone with random weights: enough to know its layer names, and no download."""
    from ..models import ModelSettings, load_model

    _coordinator_off_gpus()
    return load_model(ModelSettings(model=model, weights="none", seed=0))


def _coordinator_off_gpus() -> None:
    """The batch's own process only checks the manifest: keep its TensorFlow off the GPUs the workers render on."""
    import tensorflow as tf

    with contextlib.suppress(RuntimeError):  # already initialised (a notebook, a test session): leave it be
        tf.config.set_visible_devices([], "GPU")


class _Checker:
    """Turns the parsed TOML into jobs, collecting every problem with its line."""

    def __init__(self, path: str, shown: str, text: str):
        self.path, self.shown = path, shown
        self.base = os.path.dirname(path)
        self.lines = text.splitlines()
        self.problems: list[tuple[int, str]] = []  # (line, message), reported in line order
        self.targets: list[tuple] = []  # (index, label, line, output, work folder or None, input) of every job
        self.parser = build_parser()
        self.commands = {name: sub for name, sub in command_parsers(self.parser).items() if name in MODES}

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
        found = (line or 0, f"{where}: {job + ': ' if job else ''}{message}")
        if found not in self.problems:  # two settings that read one option report its problem once
            self.problems.append(found)

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
        known = set().union(*(job_keys(mode, parser=self.parser) for mode in self.commands)) - {"name"}
        for key in defaults:
            if dest_name(key) not in known:
                close = difflib.get_close_matches(dest_name(key), known, n=1)
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
            if named and dest_name(named[1]) in entries:  # "--octaves must be ...": point at the octaves line
                origin, key = entries[dest_name(named[1])][:2]
            at = line if key is None else self._key_line(self.defaults_line if origin == "defaults" else line, key)
            self.problem(at, label, message)

        # dest-style key -> (where it was written, key as written, value); the job's own keys win
        entries = {dest_name(k): ("defaults", k, v) for k, v in defaults.items()}
        entries.update({dest_name(k): ("job", k, v) for k, v in table.items()})
        mode_entry = entries.get("mode")
        if mode_entry is None:
            bad(None, "job", 'no mode: add mode = "video" (or "image", "zoom") to the job or to [defaults]')
            return None
        mode = mode_entry[2]
        if mode not in self.commands:
            bad(mode_entry[1], mode_entry[0], f"unknown mode {mode!r}: use one of {', '.join(self.commands)}")
            return None
        sub = self.commands[mode]
        options, positionals = long_options(sub), positional_args(sub)
        for members in exclusive_groups(sub):  # a job's --layers replaces a default --preset, and so on
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
                    valid = sorted(job_keys(mode, parser=self.parser))
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
                elif switch := switch_flag(action, value):
                    args.append((key, origin, switch))
                continue
            if isinstance(value, bool):
                bad(key, origin, f"{key} takes a value (see `ddvideo {mode} --help`), not {str(value).lower()}")
                continue
            text = str(value)
            if dest in ("work_dir", "guide", "audio") or (dest == "weights" and text not in ("imagenet", "none")) \
                    or (dest == "model" and text.endswith(".keras")):
                text = values[dest] = _path(self.base, text)
            args.append((key, origin, f"{flag}={text}"))
        missing = [a for a in positionals if a.dest not in values and a.nargs not in ("?", "*")]
        for action in missing:
            bad(None, "job", f"missing {action.dest}: add {action.dest} = \"...\" ({action.help})")
        if missing:
            return None
        if "output" in values:
            self.targets.append((index, label, line, values["output"], values.get("work_dir"), values.get("input")))
        head = [mode, *(values[a.dest] for a in positionals if a.dest in values)]
        for key, origin, arg in args:  # one at a time, so that each bad value is reported on its own line
            try:
                parse_argv(self.parser, [*head, arg])
            except SettingsError as exc:
                bad(key, origin, str(exc))
        if len(self.problems) > before:
            return None

        argv = [*head, *(arg for _, _, arg in args)]
        try:
            opts = parse_argv(self.parser, argv)
        except SettingsError as exc:
            bad(None, "job", str(exc))
            return None
        return self._settings(index, table, entries, mode, argv, opts, label, line, bad)

    def _settings(self, index, table, entries, mode, argv, opts, label, line, bad) -> Job | None:
        """Build the settings the command would build, look at the input and output, and check the layers."""
        from ..commands import schedule_ranges
        from ..options import (dream_schedule, dream_settings, input_paths, model_settings, run_settings,
                               video_settings, zoom_settings)
        from ..schedule import uses_audio

        def key_of(dest: str) -> tuple[str | None, str]:
            entry = entries.get(dest)
            return (entry[1], entry[0]) if entry else (None, "job")

        frames = fps = clip = zoom = flow = None
        warmup, origin = 0, 0.0
        failed: set = set()
        mode_settings = {"video": [video_settings, dream_schedule], "zoom": [zoom_settings, dream_schedule]}.get(mode, [])
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
                warmup = warmup_frames(flow)
            if build is zoom_settings:
                zoom = built
            if build is zoom_settings and not opts.get("audio"):
                if uses_audio(built.zoom, built.rotate, *built.pan, built.dream_every, opts.get("strength"),
                              *(v for _, v in dream_schedule(opts).weight_entries())):
                    bad(None, "job", "a schedule follows the music (rms, onset, beat, bass or treble), but the job "
                                     "has no audio: add audio = \"FILE\"")
        source, output = opts.get("input"), opts["output"]
        if source is not None:
            if not os.path.isfile(source):
                bad(*key_of("input"), f"input not found: {source}; check the path "
                                      "(relative paths start at the manifest's folder)")
            elif clip is not None:
                from ..media import VideoReader

                try:
                    reader = VideoReader(source, start=clip.start, end=clip.end, fps=clip.fps, max_size=clip.max_size)
                    frames, fps, origin = reader.n_frames, reader.fps, reader.origin
                except DDVideoError as exc:
                    bad(*key_of("input"), str(exc))
        if opts.get("plot"):
            bad(*key_of("plot"), "plot draws a render's schedules instead of rendering it: run it on the command line")
        if opts.get("audio") and not os.path.isfile(opts["audio"]):
            bad(*key_of("audio"), f"audio not found: {opts['audio']}; check the path "
                                  "(relative paths start at the manifest's folder)")
        guide = None
        if opts.get("guide"):
            from ..guide import read_guide

            try:
                guide = read_guide(opts["guide"])
            except DDVideoError as exc:
                bad(*key_of("guide"), str(exc))
        ext = os.path.splitext(output.rstrip("/\\"))[1].lower()
        folder = output.endswith(("/", os.sep)) or not ext
        if mode == "image" and ext not in IMAGE_EXTENSIONS:
            bad(*key_of("output"), f"output {output} is no image: end it in one of {', '.join(IMAGE_EXTENSIONS)}")
        elif mode != "image" and not folder and ext not in VIDEO_EXTENSIONS:
            bad(*key_of("output"), f"output {output}: unknown extension {ext!r}; use one of "
                                   f"{', '.join(VIDEO_EXTENSIONS)}, or end it in / for a folder of frames")
        work_dir = os.path.abspath(opts.get("work_dir") or default_work_dir(output))
        try:
            check_not_source(output, input_paths(opts))
            check_writable(output, creatable=True)  # the batch makes missing output folders
        except OutputError as exc:
            bad(*key_of("output"), str(exc))
        else:
            try:
                check_paths(output, work_dir, sources=input_paths(opts))
            except OutputError as exc:
                bad(*key_of("work_dir" if opts.get("work_dir") else "output"), str(exc))
        if not failed & {model_settings, dream_settings}:  # else the model or objective is reported already
            from ..objective import build_extractor, check_guide, min_input_side, parse_objective

            try:
                loaded = _layer_model(opts["model"])
                spec = opts.get("layers") or opts.get("preset") or loaded.default_layers
                terms = parse_objective(spec)
                extractor = build_extractor(loaded, terms)
            except DDVideoError as exc:
                bad(*key_of("layers" if opts.get("layers") else "preset"), str(exc))
            else:
                if dream_schedule in mode_settings and dream_schedule not in failed:
                    try:
                        schedule = dream_schedule(opts)
                        schedule.check_weight_keys(terms)
                        length, rate = (frames, fps) if zoom is None else (zoom.frames, zoom.fps)
                        # as the command would check them; one that follows the music, once its job analyses it
                        if length and not uses_audio(*schedule.texts, *([flow.blend] if flow is not None else [])):
                            schedule_ranges(opts, schedule, terms, flow=flow, frames=length, fps=rate)
                    except DDVideoError as exc:
                        bad(None, "job", str(exc))  # at the line of the option it names
                if guide is not None:
                    try:
                        border = dream_settings(opts).ascent.border
                        check_guide(guide.shape, terms=terms, min_side=min_input_side(extractor, border=border))
                    except DDVideoError as exc:
                        bad(*key_of("guide"), str(exc))
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
                   work_dir=work_dir, line=line,
                   frames=frames, fps=fps, origin=origin, warmup=warmup, segments=segments, segmentable=segmentable)

    def _check_distinct(self) -> None:
        """Two jobs writing one output (or one work folder) would overwrite each other's frames; a job writing
        another job's input would change it under that job."""
        seen: dict[tuple[str, str], tuple] = {}
        inputs = [(target, target[5]) for target in self.targets if target[5]]
        for target in self.targets:
            index, label, line, output, work_dir, _ = target
            for what, path in (("output", output), ("work folder", work_dir or default_work_dir(output))):
                other = seen.setdefault((what, _same_path(path)), target)
                if other is not target:
                    self.problem(line, label, f"{what} {path} is also written by {_where(other)}: "
                                              f"give each job its own {what}")
                    break  # the same output means the same work folder too: say it once
            else:
                for other, source in inputs:
                    if source == target[5]:
                        continue  # its own input: checked with the job
                    try:
                        check_paths(output, work_dir, sources=[source])
                    except OutputError as exc:
                        self.problem(line, label, f"{exc} (the input of {_where(other)})")
                        break


def _where(target: tuple) -> str:
    """'job N (line L)' of a target of _Checker."""
    return f"job {target[0]}" + (f" (line {target[2]})" if target[2] else "")
