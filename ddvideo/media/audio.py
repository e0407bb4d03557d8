"""Audio decoding: any file ffmpeg reads, as mono float samples for the music analysis."""

from __future__ import annotations

import hashlib
import subprocess

import numpy as np

from ddvideo.errors import InputError

from .ffmpeg import FINISH_TIMEOUT_S, ffmpeg_cmd, ffmpeg_reason
from .paths import PathLike, existing_input


def read_audio(path: PathLike, *, sample_rate: int, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """(N,) float32 mono samples at `sample_rate` of the audio of `path` from `start` seconds, `seconds` long
    (None: to the end). Raises InputError for a missing or unreadable file, or one without audio there."""
    p = existing_input(path)
    span = (["-ss", f"{start:.6f}"] if start > 0 else []) + ([] if seconds is None else ["-t", f"{seconds:.6f}"])
    args = ffmpeg_cmd("-v", "error", *span, "-i", str(p), "-map", "0:a:0", "-vn", "-ac", "1",
                      "-ar", str(sample_rate), "-f", "f32le", "-")
    try:
        result = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=FINISH_TIMEOUT_S)
    except subprocess.TimeoutExpired as err:
        raise InputError(f"cannot read the audio of {p}: ffmpeg gave no answer in {FINISH_TIMEOUT_S:.0f} s") from err
    stderr = result.stderr.decode("utf-8", "replace")
    if result.returncode != 0:
        if "matches no streams" in stderr:
            raise InputError(f"{p} has no audio; give a file with sound (any format ffmpeg reads)")
        raise InputError(f"cannot read the audio of {p} (ffmpeg: {ffmpeg_reason(stderr)})")
    samples = np.frombuffer(result.stdout, np.float32)
    if samples.size == 0:
        raise InputError(f"{p} has no audio from {start:g} s on; give a file with sound (any format ffmpeg reads)")
    return samples


def file_fingerprint(path: PathLike) -> str:
    """SHA-256 of a file's bytes: a render's settings record names its music by it, so other music is noticed."""
    digest = hashlib.sha256()
    with open(existing_input(path), "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
