"""What each command but batch does with its parsed options: check the paths, build the settings, call the library."""

from __future__ import annotations

import sys
from typing import Any

from .options import (PROG, dream_settings, guide_option, make_dreamer, model_settings, run_settings, video_settings,
                      zoom_settings)


def cmd_image(opts: dict[str, Any], progress) -> None:
    from .media import check_not_source, check_writable, read_image, write_image
    from .transforms import resize_to_fit

    check_not_source(opts["output"], [opts["input"]])
    check_writable(opts["output"])
    # the picture first: a bad input fails before the model loads
    frame = resize_to_fit(read_image(opts["input"]), max_size=opts["max_size"])
    result = make_dreamer(opts).dream(frame, seed=opts["seed"])
    write_image(opts["output"], result.frame)
    progress(0, 1, result.loss)


def cmd_video(opts: dict[str, Any], progress) -> None:
    from .media import check_unlocked, check_writable, probe_video
    from .render import check_paths, default_work_dir
    from .video import render_video

    flow, clip = video_settings(opts)
    run, out = run_settings(opts)
    output = opts["output"]
    if opts.get("preview") is not None:
        from .preview import preview_clip, preview_path

        clip, output, run = preview_clip(clip, seconds=opts["preview"]), preview_path(output), _preview_run(run)
    info = probe_video(opts["input"])  # a missing or unreadable clip fails before the model loads
    check_writable(output)
    check_paths(output, run.work_dir, sources=[opts["input"]])
    check_unlocked(run.work_dir or default_work_dir(output), output=output)  # another render of it: say so now
    opts["progress_label"] = rate_label(info, fps=clip.fps)
    summary = render_video(opts["input"], output, dreamer=make_dreamer(opts), flow=flow, clip=clip,
                           out=out, run=run, progress=progress)
    for warning in summary.warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


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

    zoom = zoom_settings(opts)
    run, out = run_settings(opts)
    start = start_frame(opts["input"], zoom, seed=run.seed)  # a missing input or impossible move fails before the model loads
    output = opts["output"]
    if opts.get("preview") is not None:
        from .preview import preview_path, preview_zoom

        zoom = preview_zoom(zoom, frame_size=(start.shape[1], start.shape[0]), seconds=opts["preview"])
        output, run = preview_path(output), _preview_run(run)
        start_frame(opts["input"], zoom, seed=run.seed)
    check_writable(output)
    check_paths(output, run.work_dir, sources=[opts["input"]])
    check_unlocked(run.work_dir or default_work_dir(output), output=output)
    render_zoom(opts["input"], output, dreamer=make_dreamer(opts), zoom=zoom, out=out, run=run, progress=progress)


def _preview_run(run):
    """A preview keeps its frames in a work folder of its own (beside the preview), never the render's."""
    from dataclasses import replace

    return replace(run, work_dir=None, keep_work=False)


def cmd_sheet(opts: dict[str, Any], progress) -> None:
    from .media import check_image_output, write_image
    from .models import load_model
    from .sheet import SheetDreamer, SheetSettings, block_entries, compose_sheet, parse_entries, sheet_frame

    check_image_output(opts["output"])
    sheet = SheetSettings(columns=opts["columns"], max_size=opts["max_size"], at=opts["at"])
    entries = parse_entries(layers=opts["layers"] or opts["preset"], presets=opts["presets"],
                            strengths=opts["strengths"], channels=opts["channels"])
    frame = sheet_frame(opts["input"], sheet=sheet)  # a missing or unreadable input fails before the model loads
    dream, guide = dream_settings(opts), guide_option(opts)
    loaded = load_model(model_settings(opts))
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
    from .media import VideoReader
    from .metrics import measure_clip

    with VideoReader(opts["source"]) as source, VideoReader(opts["output"]) as output:
        measures = measure_clip(iter(source), iter(output), method=opts["flow"])
    print("\n".join(measures.lines()))


COMMANDS = {"image": cmd_image, "video": cmd_video, "zoom": cmd_zoom, "sheet": cmd_sheet, "layers": cmd_layers,
            "metrics": cmd_metrics}  # command name -> what it does with (options, progress)


def run_command(opts: dict[str, Any], progress) -> None:
    """Run the command `opts` were parsed for (any but batch), reporting each frame or tile to `progress`."""
    COMMANDS[opts["command"]](opts, progress)
