"""Segment joins: encoded segments concatenated by stream copy, with the source audio muxed in."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Sequence

from ddvideo.errors import OutputError

from .ffmpeg import FINISH_TIMEOUT_S, ffmpeg_reason, run_ffmpeg
from .paths import PathLike, atomic_path
from .writer import AUDIO_ENCODE, faststart

def join_segments(
    segments: Sequence[PathLike],
    output: PathLike,
    *,
    audio_from: PathLike | None = None,
    audio_start: float = 0.0,
    duration: float | None = None,
) -> None:
    """Concatenate encoded segments into `output` without re-encoding (ffmpeg's concat demuxer), atomically.

    The segments must share codec settings and each start with a keyframe (separate encodes of one writer
    do). The audio of `audio_from` from `audio_start` for `duration` seconds is muxed in, copied when the
    container takes it, else re-encoded.
    """
    kind = os.path.splitext(os.fspath(output))[1].lower()[1:]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as listing:
        for path in segments:
            escaped = os.path.abspath(path).replace("'", "'\\''")
            listing.write(f"file '{escaped}'\n")
    try:
        inputs = ["-f", "concat", "-safe", "0", "-i", listing.name]
        maps = ["-map", "0:v:0"]
        if audio_from is not None:
            length = ["-t", f"{duration:.6f}"] if duration else []
            inputs += ["-ss", f"{audio_start:.6f}", *length, "-i", os.fspath(audio_from)]
            maps += ["-map", "1:a:0?", *length]  # `?`: a source without audio gives a file without audio
        encode = AUDIO_ENCODE.get(kind, AUDIO_ENCODE["mp4"])  # AAC, or Opus for WebM
        with atomic_path(output) as tmp:
            for audio_args in (["-c:a", "copy"], encode):
                args = ["-v", "error", "-y", *inputs, *maps, "-c:v", "copy", *audio_args, *faststart(kind), str(tmp)]
                try:
                    result = run_ffmpeg(args, timeout=FINISH_TIMEOUT_S)
                except subprocess.TimeoutExpired as err:
                    msg = f"ffmpeg did not join the segments of {output} within {FINISH_TIMEOUT_S:.0f} s"
                    raise OutputError(msg) from err
                if result.returncode == 0:
                    break
            else:
                raise OutputError(f"cannot join the segments of {output} (ffmpeg: {ffmpeg_reason(result.stderr)})")
    finally:
        os.unlink(listing.name)
