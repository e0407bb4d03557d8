"""Quick previews: the first seconds of a video or zoom render at a reduced size, written beside the output."""

from __future__ import annotations

import os
from dataclasses import replace

from .errors import SettingsError
from .video import ClipSettings
from .zoom import ZoomSettings

PREVIEW_SECONDS = 3.0
# Long side of a preview: the dream's base size (640), so a preview has every octave that sets the look and shows
# the dream a larger render will show, only with less fine detail (a render up to this size is previewed at its own).
PREVIEW_SIZE = 640


def preview_path(output: str) -> str:
    """Where the preview of `output` goes: clip.mp4 -> clip.preview.mp4, frames/ -> frames.preview/."""
    stripped = output.rstrip("/\\")
    root, ext = os.path.splitext(stripped)
    if stripped != output:
        return stripped + ".preview" + output[len(stripped):]
    return f"{root}.preview{ext}"


def _check(seconds: float) -> None:
    if not seconds > 0:
        raise SettingsError(f"--preview takes a positive number of seconds, e.g. --preview 3, got {seconds:g}")


def preview_clip(clip: ClipSettings, *, seconds: float = PREVIEW_SECONDS, size: int = PREVIEW_SIZE) -> ClipSettings:
    """The first `seconds` of `clip`, its long side at most `size`."""
    _check(seconds)
    end = clip.start + seconds if clip.end is None else min(clip.end, clip.start + seconds)
    return replace(clip, end=end, max_size=min(clip.max_size or size, size))


def preview_zoom(zoom: ZoomSettings, *, frame_size: tuple[int, int], seconds: float = PREVIEW_SECONDS,
                 size: int = PREVIEW_SIZE) -> ZoomSettings:
    """The first `seconds` of a zoom whose full frames are `frame_size` (width, height), its long side at most
    `size`: the pan shrinks with the frame, so the camera moves over the same part of the picture."""
    _check(seconds)
    scale = min(1.0, size / max(frame_size))
    frames = max(1, min(zoom.frames, round(seconds * zoom.fps)))
    return replace(zoom, frames=frames, loop=zoom.loop and frames == zoom.frames,
                   max_size=max(16, round(max(frame_size) * scale)),
                   pan_scale=zoom.pan_scale * scale)
