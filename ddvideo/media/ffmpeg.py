"""The bundled ffmpeg executable, its command lines, its time limits and the line its failures are told by."""

from __future__ import annotations

import re
import signal
import subprocess
from fractions import Fraction
from typing import IO

import imageio_ffmpeg

from ddvideo.errors import DDVideoError

PROBE_TIMEOUT_S = 120.0  # ffmpeg -i and the packet count; both only demux
READ_TIMEOUT_S = 60.0  # no new frame from ffmpeg for this long means it is stuck
FINISH_TIMEOUT_S = 600.0  # flushing the encoder, muxing audio, joining segments

_GENERIC_FFMPEG_LINES = (
    "at least one output file must be specified",
    "conversion failed",
    "exiting normally",
    "error opening output files",
)


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (the only ffmpeg the project uses)."""
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:
        raise DDVideoError(
            f"ffmpeg not found ({err}); reinstall it: pip install --force-reinstall imageio-ffmpeg"
        ) from err


def ffmpeg_cmd(*args: str) -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", *args]


def run_ffmpeg(args: list[str], *, timeout: float) -> subprocess.CompletedProcess:
    """Run ffmpeg to completion; stderr comes back as text, TimeoutExpired propagates (the child is killed)."""
    return subprocess.run(
        ffmpeg_cmd(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timeout,
        text=True,
        errors="replace",
    )


def ffmpeg_reason(stderr: str) -> str:
    """The last meaningful line of ffmpeg's stderr, without the '[codec @ 0x...]' prefixes."""
    lines = [re.sub(r"^(\[[^\]]*\]\s*)+", "", line).strip() for line in stderr.splitlines()]
    lines = [line for line in lines if line and not line.lower().startswith(_GENERIC_FFMPEG_LINES)]
    reason = lines[-1] if lines else "no error message"
    return reason if len(reason) <= 200 else reason[:197] + "..."


def encoder_log(text: str) -> tuple[str, str | None]:
    """An encoder's log, written with `-v level+info`: its error lines (what `-v error` shows), and 'ffmpeg was
    stopped by SIGINT' if it says it received a signal (it catches SIGINT and SIGTERM, and exits with status 255)."""
    levelled = re.compile(r"\[(error|fatal|panic)\] ")
    errors = "\n".join(levelled.sub("", line, count=1) for line in text.splitlines() if levelled.search(line))
    received = re.search(r"received signal (\d+)", text)
    return errors, stopped_by_signal(-int(received[1])) if received else None


def stopped_by_signal(code: int | None) -> str | None:
    """'ffmpeg was stopped by SIGKILL' for the exit status of a process a signal ended, else None."""
    if code is None or code >= 0:
        return None
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"ffmpeg was stopped by {name}"


def fps_fraction(fps: float) -> Fraction:
    """Exact rational for an fps; 29.97, 23.976 and 59.94 are taken as the NTSC rates (30000/1001, ...)."""
    ntsc = fps * 1.001
    if abs(ntsc - round(ntsc)) < 0.002 and abs(fps - round(fps)) > 0.001:
        return Fraction(round(ntsc) * 1000, 1001)
    return Fraction(fps).limit_denominator(1001)


def read_log(log: IO[bytes]) -> str:
    log.seek(0)
    return log.read().decode("utf-8", "replace")
