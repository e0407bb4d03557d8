"""What each command but batch does with its parsed options: check the paths, build the settings, call the library."""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

import numpy as np

from .errors import InputError
from .options import (PROG, dream_schedule, dream_settings, guide_option, input_paths, make_dreamer, model_settings,
                      music_option, run_settings, video_settings, zoom_settings)


def cmd_image(opts: dict[str, Any], progress) -> None:
    from .media import VIDEO_EXTENSIONS, check_not_source, check_writable, read_image, write_image
    from .transforms import resize_to_fit

    check_not_source(opts["output"], input_paths(opts))
    check_writable(opts["output"])
    # the picture first: a bad input fails before the model loads
    try:
        picture = read_image(opts["input"])
    except InputError as err:
        if not os.path.isfile(opts["input"]) or os.path.splitext(opts["input"])[1].lower() not in VIDEO_EXTENSIONS:
            raise
        raise InputError(f"{opts['input']} is a video, not a picture: dream a clip with `ddvideo video`, or give a "
                         "PNG, JPEG, WebP, BMP or TIFF file") from err
    frame = resize_to_fit(picture, max_size=opts["max_size"])
    result = make_dreamer(opts).dream(frame, seed=opts["seed"])
    write_image(opts["output"], result.frame)
    progress(0, 1, result.loss)


def cmd_video(opts: dict[str, Any], progress) -> None:
    from .media import check_unlocked, check_writable, probe_video
    from .render import check_paths, default_work_dir
    from .video import render_video

    flow, clip = video_settings(opts)
    schedule = dream_schedule(opts)
    run, out = run_settings(opts)
    output = opts["output"]
    if opts.get("preview") is not None:
        from .preview import preview_clip, preview_path

        clip, output, run = preview_clip(clip, seconds=opts["preview"]), preview_path(output), _preview_run(run)
    info = probe_video(opts["input"])  # a missing or unreadable clip fails before the model loads
    music, frames, fps = video_music(opts, flow, schedule, clip=clip)
    features = _check_schedules(opts, schedule, music=music, frames=frames, fps=fps, flow=flow)
    if opts.get("plot"):
        return _plot(opts, {"--blend": flow.blend}, schedule, features=features, frames=frames, fps=fps)
    check_writable(output)
    check_paths(output, run.work_dir, sources=input_paths(opts))
    check_unlocked(run.work_dir or default_work_dir(output), output=output)  # another render of it: say so now
    opts["progress_label"] = rate_label(info, fps=clip.fps)
    _warn_no_sound(opts, output)
    summary = render_video(opts["input"], output, dreamer=make_dreamer(opts), flow=flow, clip=clip, schedule=schedule,
                           music=music, features=features, out=out, run=run, progress=progress)
    for warning in summary.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def video_music(opts: dict[str, Any], flow, schedule, *, clip):
    """(music, frames, fps) of a video render: the --audio track, or the clip's own sound from its first frame
    when a schedule follows the music (else None), and the clip's length and rate as it will be read."""
    from .media import VideoReader
    from .schedule import uses_audio

    reader = VideoReader(opts["input"], start=clip.start, end=clip.end, fps=clip.fps, max_size=clip.max_size)
    music = music_option(opts)
    if music is None and uses_audio(flow.blend, *schedule.texts):
        from .audio import load_music

        music = load_music(opts["input"], start=reader.origin)
    return music, reader.n_frames, reader.fps


def rate_label(info, *, fps: float | None) -> str:
    """The output frame rate as the progress line states it, and why when the source's rate varies."""
    if fps is not None:
        return f"{fps:g} fps (--fps)"
    if info.variable:
        return f"{info.fps:.4g} fps (constant; the source's varies, {info.mean_fps:.3g} on average)"
    return f"{info.fps:.4g} fps"


def cmd_zoom(opts: dict[str, Any], progress) -> None:
    from .media import check_unlocked, check_writable
    from .render import check_paths, default_work_dir
    from .zoom import render_zoom, start_frame

    music = music_option(opts)  # an unreadable track fails first, and sets the length
    zoom, schedule = zoom_settings(opts, music=music), dream_schedule(opts)
    run, out = run_settings(opts)
    start = start_frame(opts["input"], zoom, seed=run.seed)  # a missing input fails before the model loads
    output = opts["output"]
    if opts.get("preview") is not None:
        from .preview import preview_path, preview_zoom

        zoom = preview_zoom(zoom, frame_size=(start.shape[1], start.shape[0]), seconds=opts["preview"])
        output, run = preview_path(output), _preview_run(run)
        start = start_frame(opts["input"], zoom, seed=run.seed)
    features = _check_schedules(opts, schedule, music=music, frames=zoom.frames, fps=zoom.fps)
    zoom.camera(audio=features and features.values).check_frame(start.shape[1], start.shape[0])
    if opts.get("plot"):
        return _plot(opts, {"--zoom": zoom.zoom, "--rotate": zoom.rotate, "--pan-x": zoom.pan[0],
                            "--pan-y": zoom.pan[1], "--dream-every": zoom.dream_every}, schedule,
                     features=features, frames=zoom.frames, fps=zoom.fps)
    check_writable(output)
    check_paths(output, run.work_dir, sources=input_paths(opts))
    check_unlocked(run.work_dir or default_work_dir(output), output=output)
    _warn_no_sound(opts, output)
    render_zoom(opts["input"], output, dreamer=make_dreamer(opts), zoom=zoom, schedule=schedule, music=music,
                features=features, out=out, run=run, progress=progress)


def _warn_no_sound(opts: dict[str, Any], output: str) -> None:
    """Say so where --audio cannot be heard: a GIF or a folder of frames holds no sound."""
    if opts.get("audio") and os.path.splitext(output.rstrip("/\\"))[1].lower() in ("", ".gif"):
        print(f"{PROG}: warning: {output} holds no sound: --audio {opts['audio']} only drives the schedules; "
              "write .mp4, .mov, .mkv or .webm to hear it", file=sys.stderr)


def schedule_ranges(opts: dict[str, Any], schedule, terms, *, flow, frames: int, fps: float, audio=None) -> None:
    """Raise if the strength schedule, the layer weights' (given the objective's `terms`; None: not checked) or the
    blend's (given video's `flow`) leaves its range within `frames`, or follows music that `audio` does not give."""
    from .video import blend_values

    schedule.strengths(dream_settings(opts).strength, frames=frames, fps=fps, audio=audio)
    if terms is not None:
        schedule.weights(terms, frames=frames, fps=fps, audio=audio)
    if flow is not None:
        blend_values(flow, frames=frames, fps=fps, audio=audio)


def _check_schedules(opts: dict[str, Any], schedule, *, music, frames: int, fps: float, flow=None):
    """The music analysed for a render of `frames` frames (None without), the dream's schedules (and video's blend)
    checked against it before any model loads: one that follows the music without any, or leaves its range, fails
    here. Zoom's camera schedules are checked by the caller."""
    from .audio import analyse
    from .objective import parse_objective

    features = analyse(music, frames=frames, fps=fps) if music is not None else None
    layers = opts.get("layers") or opts.get("preset")
    # without layers the model's default objective, checked at render
    terms = parse_objective(layers) if layers is not None and schedule.layer_weights is not None else None
    schedule_ranges(opts, schedule, terms, flow=flow, frames=frames, fps=fps, audio=features and features.values)
    return features


def _plot(opts: dict[str, Any], settings: dict[str, float | str], schedule, *, features, frames: int,
          fps: float) -> None:
    """Draw the render's scheduled settings (those that change; all of them when none does) to --plot."""
    from .media import check_image_output, check_not_source, write_image
    from .objective import parse_objective
    from .plot import plot_schedules
    from .schedule import frame_values

    check_not_source(opts["plot"], input_paths(opts), what="--plot")
    check_image_output(opts["plot"])
    audio = features and features.values
    curves = {option: frame_values(value, option=option, frames=frames, fps=fps, audio=audio)
              for option, value in settings.items()}
    curves["--strength"] = schedule.strengths(dream_settings(opts).strength, frames=frames, fps=fps, audio=audio)
    if schedule.layer_weights is not None:
        terms = parse_objective(opts.get("layers") or opts.get("preset") or "keras")
        weights = schedule.weights(terms, frames=frames, fps=fps, audio=audio)
        curves.update({f"weight {term.key}": weights[:, i] for i, term in enumerate(terms)})
    changing = {name: v for name, v in curves.items() if np.ptp(v) > 0}
    image = plot_schedules(changing or curves, fps=fps, music=audio,
                           beat_frames=None if features is None else features.beat_frames)
    write_image(opts["plot"], image)


def _preview_run(run):
    """A preview keeps its frames in a work folder of its own (beside the preview), never the render's."""
    from dataclasses import replace

    return replace(run, work_dir=None, keep_work=False)


def cmd_sheet(opts: dict[str, Any], progress) -> None:
    from .media import check_image_output, check_not_source, write_image
    from .models import load_model
    from .sheet import (SheetDreamer, SheetSettings, block_entries, check_channels, compose_sheet, parse_entries,
                        sheet_frame)

    check_not_source(opts["output"], input_paths(opts))
    check_image_output(opts["output"])
    sheet = SheetSettings(columns=opts["columns"], max_size=opts["max_size"], at=opts["at"])
    entries = parse_entries(layers=opts["layers"] or opts["preset"], presets=opts["presets"],
                            strengths=opts["strengths"], channels=opts["channels"])
    frame = sheet_frame(opts["input"], sheet=sheet)  # a missing or unreadable input fails before the model loads
    dream, guide = dream_settings(opts), guide_option(opts)
    loaded = load_model(model_settings(opts))
    check_channels(loaded, opts["channels"])
    dreamer = SheetDreamer(loaded, entries or block_entries(loaded), dream, guide=guide, jit_compile=opts["jit"])
    results = dreamer.dream(frame, seed=opts["seed"], progress=progress)
    tiles, labels = [r.frame for r in results], [e.label for e in dreamer.entries]
    write_image(opts["output"], compose_sheet(tiles, labels, columns=sheet.columns))


def cmd_layers(opts: dict[str, Any], progress) -> None:
    from .models import load_model

    loaded = load_model(model_settings(opts))
    blocks = set(loaded.block_layers())
    for name in loaded.dreamable_layers():
        shape = tuple(loaded.model.get_layer(name).output.shape[1:])
        print(f"{name:32s} {str(shape):22s}{'  *' if name in blocks else ''}")


def cmd_metrics(opts: dict[str, Any], progress) -> None:
    from .media import IMAGE_EXTENSIONS, VideoReader, read_image
    from .metrics import measure_clip, measure_look

    stills = [os.path.splitext(opts[k])[1].lower() in IMAGE_EXTENSIONS for k in ("source", "output")]
    if stills[0] != stills[1]:
        raise InputError(f"metrics compares a still with its source picture or a clip with its source clip, got "
                         f"{opts['source']} and {opts['output']}")
    energy = None
    if opts["model"] is not None:
        from .dream import Dreamer, DreamSettings
        from .models import load_model
        from .objective import objective_map

        dreamer = Dreamer(load_model(model_settings(opts)), DreamSettings(layers=opts["layers"] or opts["preset"]))
        energy = functools.partial(objective_map, dreamer)
    if stills[0]:
        if opts["start"] or opts["end"] is not None or opts["fps"] is not None:
            raise InputError("--start, --end and --fps pick a part of a source clip; drop them for a still")
        measures = measure_look(read_image(opts["output"]), read_image(opts["source"]), energy=energy)
    else:
        from .video import ClipSettings

        clip = ClipSettings(start=opts["start"], end=opts["end"], fps=opts["fps"])
        with VideoReader(opts["source"], start=clip.start, end=clip.end, fps=clip.fps) as source, \
                VideoReader(opts["output"]) as output:
            measures = measure_clip(iter(source), iter(output), method=opts["flow"], energy=energy)
    print("\n".join(measures.lines()))


COMMANDS = {"image": cmd_image, "video": cmd_video, "zoom": cmd_zoom, "sheet": cmd_sheet, "layers": cmd_layers,
            "metrics": cmd_metrics}  # command name -> what it does with (options, progress)


def run_command(opts: dict[str, Any], progress) -> None:
    """Run the command `opts` were parsed for (any but batch), reporting each frame or tile to `progress`."""
    COMMANDS[opts["command"]](opts, progress)
